"""The one place that sets Numba's options for every kernel.

``cache=True`` so a second process (a Dask worker, the next CLI call) loads the compiled
kernels from ``__pycache__`` instead of compiling; ``nogil=True`` so threads can run
kernels side by side; ``fastmath`` stays off: reductions must be bit-reproducible.

``kernel`` compiles without Numba's runtime (``_nrt=False``): no reference counting.
With it, every non-inlined call increfs and decrefs each array argument (an atomic
operation each), which was 38 % of a default run's samples; the kernels never allocate
and never return an array, and every array they touch belongs to the engine, which
outlives the call. The few that allocate (a sort's scratch, a recount) are
``alloc_kernel``; Numba refuses to compile an allocation in a ``kernel``.
"""

from numba import njit

JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}

kernel = njit(**JIT_OPTIONS, _nrt=False)
alloc_kernel = njit(**JIT_OPTIONS)
