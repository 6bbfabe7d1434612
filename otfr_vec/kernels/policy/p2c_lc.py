"""Least-request power of d choices (``p2c_lc``): the worked example of docs/POLICIES.md.

A decision draws ``choices`` workers of the group uniformly with replacement (one draw
each from the decision's uniforms) and keeps the one holding the fewest requests; on a
tie the earlier draw wins. No state of its own, no outcome hook: it only picks.
"""

from ..jit import kernel
from .common import index_of

K_CHOICES, N_KNOBS = range(2)


@kernel
def choose(count, kn, lo, hi, u0, u1, u2, u3):
    n = hi - lo
    best = lo + index_of(u0, n)
    for k in range(1, int(kn[K_CHOICES])):
        u = u1 if k == 1 else (u2 if k == 2 else u3)
        j = lo + index_of(u, n)
        if count[j] < count[best]:
            best = j
    return best
