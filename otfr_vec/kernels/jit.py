"""The one place that sets Numba's options for every kernel.

``cache=True`` so a second process (a Dask worker, the next CLI call) loads the compiled
kernels from ``__pycache__`` instead of compiling; ``nogil=True`` so threads can run
kernels side by side; ``fastmath`` stays off: reductions must be bit-reproducible.
"""

from numba import njit

JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}

kernel = njit(**JIT_OPTIONS)
# for a small helper on the per-request path whose array arguments would otherwise be
# reference-counted at every call: Numba inlines it into its callers at the IR level
inline_kernel = njit(**JIT_OPTIONS, inline="always")
