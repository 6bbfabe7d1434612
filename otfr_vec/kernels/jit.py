"""The one place that sets Numba's options for every kernel.

``cache=True`` so a second process (a Dask worker, the next CLI call) loads the compiled
kernels from the on-disk cache (see :func:`_cache_dir`) instead of compiling;
``nogil=True`` so threads can run kernels side by side; ``fastmath`` stays off:
reductions must be bit-reproducible.

``kernel`` compiles without Numba's runtime (``_nrt=False``): no reference counting.
With it, every non-inlined call increfs and decrefs each array argument (an atomic
operation each), which was 38 % of a default run's samples; the kernels never allocate
and never return an array, and every array they touch belongs to the engine, which
outlives the call. A kernel compiles what it calls under its own flags, so everything
:func:`.step.advance` reaches is allocation-free: the sorts and the invariant check
work in scratch rows of the state. Numba refuses to compile an allocation in a
``kernel``; the two sorts the Python side calls (:mod:`.order`), which return new
arrays, are ``alloc_kernel``.

``inline_kernel`` is a ``kernel`` that Numba copies into each caller (``inline="always"``)
instead of calling: a call passes every array as its data pointer, shape, strides and
two more words, so a per-request helper that takes ten arrays and does a few loads pays
more for the call than for its work. The per-request phases (``arrive``,
``prefill_done``, ``to_decode``, ``first_token``, the transfer and slot helpers,
``charge_policy``), the policy dispatch (``policy_choose``, ``policy_routed``,
``policy_outcome``) and the route (``scoring.choose``) are inline: with reference counts
gone, that took 12-16 % off the study's five and 25-40 % off the production policies
(benchmarks/PROFILE.md, eleventh round; with them, in earlier rounds, it had made
``advance`` slower). Only helpers where a timed run got faster are inline: the fault and
timeout paths and the once-per-step passes gained nothing, and every inline copy
lengthens the first compile (about 1.5 s more for ``advance``; Numba's own copies of
each inlined body, which grew with the nesting, are skipped: :mod:`.inline_copies`).
"""

import hashlib
import os
from pathlib import Path

import numba
from numba import njit

from . import inline_copies


def _cache_dir() -> str:
    """Numba's on-disk cache, in a folder named by a hash of every kernel source file.

    Numba invalidates a cached function only when its *own* file changes: ``advance``
    (step.py) calling an edited policy kernel (policy/*.py) would otherwise load its old
    compiled copy, old policy code included. A new hash means a new folder, so an update
    of any kernel file recompiles everything that calls it. The folder sits beside the
    kernels (or under ``NUMBA_CACHE_DIR``, or ``~/.cache/otfr_vec`` where the package is
    not writable); every process of a sweep computes the same name.
    """
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(here.rglob("*.py")):
        h.update(f.relative_to(here).as_posix().encode() + b"\0" + f.read_bytes())
    name = f"otfr_vec-kernels-{h.hexdigest()[:16]}"
    for base in (os.environ.get("NUMBA_CACHE_DIR"), here / "__pycache__"):
        if not base:
            continue
        base = Path(base)
        if os.access(base if base.exists() else base.parent, os.W_OK):
            return str(base / name)
    return str(Path.home() / ".cache" / "otfr_vec" / name)


numba.config.CACHE_DIR = _cache_dir()  # before any @njit below registers its cache
inline_copies.install()  # a faster first compile of the inline kernels, same machine code

JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}

kernel = njit(**JIT_OPTIONS, _nrt=False)
alloc_kernel = njit(**JIT_OPTIONS)
inline_kernel = njit(**JIT_OPTIONS, _nrt=False, inline="always")
