"""The latency histogram's bin of a value, by table lookup instead of a logarithm.

The bins are log-spaced (:data:`.structs.HIST_PER_DECADE` per decade from
:data:`.structs.HIST_LO` seconds): the bin of ``x > 0`` is
``floor((log10(x) - log10(HIST_LO)) * HIST_PER_DECADE)``, clamped to the bin range
(:func:`hist_bin_log`, the definition). Two completions a request cost two logarithms,
7 % of a join-shortest-queue run's samples (benchmarks/PROFILE.md, ninth round).

The bin is a non-decreasing function of ``x``, so it is fixed by the smallest double at
which each bin starts. :func:`_thresholds` finds those by bisection over the bit
patterns of positive doubles (ordered as their values) with :func:`hist_bin_log` itself,
so the table reproduces the logarithm's rounding exactly, ulp for ulp. At run time
:func:`hist_bin` takes the double's exponent and its top :data:`MANT_BITS` mantissa bits
as an index: each such slice of the line is narrower than a bin (a ratio of at most
``1 + 2**-MANT_BITS``, against ``10 ** (1 / HIST_PER_DECADE)`` for a bin), so it holds at
most one threshold, and the bin is the slice's first bin plus one if ``x`` reaches that
threshold. The tables are module constants that Numba compiles into the kernels.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .jit import alloc_kernel, inline_kernel, kernel
from .structs import HIST_BINS, HIST_PER_DECADE, LOG10_HIST_LO

MANT_BITS = 7  # 2 ** -7 < 10 ** (1 / 200) - 1: one threshold at most per slice
_SHIFT = 52 - MANT_BITS


@intrinsic
def _bitcast(typingctx, x):
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


if numba.config.DISABLE_JIT:  # the kernels as plain Python (an intrinsic cannot run there)

    def _bits(x):
        return int(np.float64(x).view(np.int64))

else:

    @inline_kernel
    def _bits(x):
        """The IEEE-754 bit pattern of a float64, as an int64 (no memory round trip)."""
        return _bitcast(x)


@kernel
def hist_bin_log(x):
    """The definition: the clamped log-spaced bin of ``x`` (0 for ``x <= 0`` or NaN)."""
    b = 0
    if x > 0.0:
        b = int(np.floor((np.log10(x) - LOG10_HIST_LO) * HIST_PER_DECADE))
    return min(max(b, 0), HIST_BINS - 1)


@alloc_kernel
def _thresholds():
    """``t[k]``: the smallest double whose bin is ``k`` or more, for ``k = 1 .. BINS-1``.

    Bisection over the int64 bit patterns of positive finite doubles, which order as
    their values; 64 halvings per bin.
    """
    t = np.empty(HIST_BINS, np.float64)
    t[0] = 0.0
    one = np.empty(1, np.int64)
    val = one.view(np.float64)
    for k in range(1, HIST_BINS):
        lo, hi = np.int64(1), np.int64(0x7FEFFFFFFFFFFFFF)  # bin(lo) < k <= bin(hi)
        while hi - lo > 1:
            mid = lo + (hi - lo) // 2
            one[0] = mid
            if hist_bin_log(val[0]) >= k:
                hi = mid
            else:
                lo = mid
        one[0] = hi
        t[k] = val[0]
    return t


def _tables():
    t = _thresholds()
    if not np.all(np.diff(t) > 0):
        raise RuntimeError("histogram bins are not increasing: the table cannot be exact")
    key_t = t[1:].view(np.int64) >> _SHIFT  # the slice of each threshold
    if np.any(np.diff(key_t) == 0):
        raise RuntimeError(f"two histogram thresholds in one slice: raise MANT_BITS ({MANT_BITS})")
    key0 = int(key_t[0])
    n_key = int(key_t[-1]) - key0 + 1
    # first bin of each slice: thresholds whose slice starts at or below it
    starts = (np.arange(n_key, dtype=np.int64) + key0) << _SHIFT
    first = np.searchsorted(t[1:].view(np.int64), starts, side="right").astype(np.int32)
    nxt = np.append(t[1:], np.inf)[first]  # the next bin's threshold (inf past the last)
    return key0, n_key, first, nxt


HIST_KEY0, HIST_NKEY, HIST_FIRST, HIST_NEXT = _tables()


@inline_kernel
def hist_bin(x):
    """:func:`hist_bin_log` of ``x``, by the tables (bit-identical, no logarithm)."""
    if not x > 0.0:
        return 0
    key = (_bits(x) >> _SHIFT) - HIST_KEY0
    if key < 0:
        return 0
    if key >= HIST_NKEY:
        return HIST_BINS - 1
    return HIST_FIRST[key] + (1 if x >= HIST_NEXT[key] else 0)


@alloc_kernel
def hist_of(x):
    """The histogram (``HIST_BINS`` counts) of the finite values of ``x``, as the kernel bins."""
    h = np.zeros(HIST_BINS, np.int64)
    for v in x:
        if np.isfinite(v):
            h[hist_bin(v)] += 1
    return h
