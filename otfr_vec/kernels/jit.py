"""The one place that sets Numba's options for every kernel.

``cache=True`` so a second process (a Dask worker, the next CLI call) loads the compiled
kernels from ``__pycache__`` instead of compiling; ``nogil=True`` so threads can run
kernels side by side; ``fastmath`` stays off: reductions must be bit-reproducible.
"""

from numba import njit

JIT_OPTIONS = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}

kernel = njit(**JIT_OPTIONS)
