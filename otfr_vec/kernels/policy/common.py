"""Pieces every policy kernel uses: the role group of a worker, re-scoring one worker,
uniform draws mapped to indices."""

from ..jit import kernel
from ..scoring import mark
from ..structs import W_PI

# a base term that takes a worker out of an argmin unless every candidate carries it
# (then the least loaded of them wins: the policies fall back to all workers, as stated)
MASK = 1.0e9
EXTRA = 0  # pw_f row of a policy's own score term, for policies with ``has_extra``


@kernel
def group_of(pr, j):
    return 0 if j < pr.n_prefill else 1


@kernel
def group_lo(pr, g):
    return 0 if g == 0 else pr.n_prefill


@kernel
def group_hi(pr, g):
    return pr.n_prefill if g == 0 else pr.n_workers


@kernel
def rebase(base, g_dirty, pr, pod, wf, health, pw_f, j):
    """Recompute worker ``j``'s base score after its policy term changed mid-step, with
    the operands :func:`..scoring.update_prices` uses (so the result is the same)."""
    base[j] = pr.lambda_f * health[j] + pr.lambda_r * wf[W_PI, j] + pw_f[EXTRA, j]
    mark(g_dirty, pr, pod, j)


@kernel
def index_of(u, n):
    """A uniform draw in [0, 1) -> an index in [0, n)."""
    k = int(u * n)
    return k if k < n else n - 1


@kernel
def distinct_pair(u0, u1, n):
    """Two distinct indices in [0, n) from two uniforms (n >= 2), uniformly over pairs."""
    a = index_of(u0, n)
    b = index_of(u1, n - 1)
    if b >= a:
        b += 1
    return a, b
