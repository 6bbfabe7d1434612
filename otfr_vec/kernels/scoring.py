"""The scoring kernel shared by the five schedulers (docs/MODEL.md section 5).

    S_j = load_j + lambda_f * health_j + lambda_r * pi_j + lambda_p * path_cost_j

``base_j = lambda_f * health_j + lambda_r * pi_j`` is fixed within a step;
``load_j = count_j * scale`` changes after every decision. A scheduler is a setting of
the weights (see :mod:`otfr_vec.policies.otfr`), not a separate code path; the production
mechanisms add their own terms through the hooks of :mod:`.policy.hooks`.
"""

import numpy as np

from .decision import tree_argmin, tree_build, tree_set
from .jit import inline_kernel, kernel
from .structs import W_BUSY, W_FAIL, W_OUTC, W_PI, W_TOUT, W_UTIL

# the routing caches, by ``Params.tree``:
#   per-pod minima: g_min[g, q] the lowest score of pod q in group g, g_dirty[g, q] = 1
#     where it is stale;
#   tree (one O(log N) tournament tree per group, kernels/decision.py): g_min[g] is the
#     tree, g_dirty[g, 0] the number of workers listed in g_dirty[g, 1:] whose score
#     changed since (-1: rebuild the whole tree)


@kernel
def score(count, scale, base, pod, j, home, path):
    s = count[j] * scale + base[j]
    if pod[j] != home:
        s += path
    return s


@kernel
def score_min(lo, hi, count, scale, base, pod, home, path):
    """Lowest score over ``[lo, hi)`` (no index to carry, so no data-dependent branch)."""
    m = np.inf
    for j in range(lo, hi):
        m = min(m, count[j] * scale + base[j] + (path if pod[j] != home else 0.0))
    return m


@kernel
def pod_min(count, scale, base, lo, hi):
    m = np.inf
    for j in range(lo, hi):
        s = count[j] * scale + base[j]
        if s < m:
            m = s
    return m


@kernel
def first_equal(count, scale, base, pod, home, path, lo, hi, target):
    for j in range(lo, hi):
        if score(count, scale, base, pod, j, home, path) == target:
            return j
    return -1


@kernel
def argmin_score(lo, hi, count, scale, base, pod, home, path, start):
    """Index in ``[lo, hi)`` of the lowest score: the first one in cyclic order from
    ``lo + start % n``.

    Starting at a seeded offset and keeping the first minimum in cyclic order breaks ties
    at random, reproducibly (the offset is drawn outside the kernel). Two passes: the
    minimum, then the first target that reaches it: about 1.4x faster at 1024 targets than
    one pass carrying the index through a data-dependent branch.
    """
    n = hi - lo
    k0 = lo + start % n
    best = score_min(lo, hi, count, scale, base, pod, home, path)
    j = first_equal(count, scale, base, pod, home, path, k0, hi, best)
    if j < 0:
        j = first_equal(count, scale, base, pod, home, path, lo, k0, best)
    return j if j >= 0 else k0


@kernel
def argmin_pods(g_min, g_dirty, g, lo, k, n_pods, count, scale, base, pod, home, path, start):
    """The target :func:`argmin_score` picks, found through per-pod minima.

    Workers ``[lo, lo + k * n_pods)`` form ``n_pods`` contiguous groups of ``k``; the path
    cost depends only on the pod, so the lowest score is the lowest ``g_min[g, q] +
    path_q`` over pods. Pods whose count or base changed are marked in ``g_dirty`` and
    re-scanned lazily. Ties are resolved exactly as the full scan does: the first worker
    at the minimum in cyclic order from the seeded start. Cost per decision:
    O(n_pods + k) instead of O(n_pods * k).
    """
    n = k * n_pods
    k0 = lo + start % n
    best = np.inf
    for q in range(n_pods):
        if g_dirty[g, q]:
            g_min[g, q] = pod_min(count, scale, base, lo + q * k, lo + (q + 1) * k)
            g_dirty[g, q] = 0
        v = g_min[g, q]
        if q != home:
            v += path
        if v < best:
            best = v
    q0 = (k0 - lo) // k
    for step in range(n_pods + 1):
        q = (q0 + step) % n_pods
        v = g_min[g, q]
        if q != home:
            v += path
        if v != best:
            continue
        a = lo + q * k
        b = a + k
        if step == 0:
            a = k0  # the start pod: first the part from the start on ...
        elif step == n_pods:
            b = k0  # ... and, last, the part before it
        j = first_equal(count, scale, base, pod, home, path, a, b, best)
        if j >= 0:
            return j
    return k0  # not reached: some pod holds the minimum


@kernel
def mark(g_dirty, pr, pod, j):
    """Worker ``j``'s score changed: its pod's minimum, or its tree leaf, is stale."""
    g = 0 if j < pr.n_prefill else 1
    if not pr.tree:
        g_dirty[g, pod[j]] = 1
        return
    n = g_dirty[g, 0]
    if n < 0:
        return  # a rebuild is due anyway
    if n + 1 >= g_dirty.shape[1]:
        g_dirty[g, 0] = -1  # the list is full: rebuild instead
        return
    g_dirty[g, n + 1] = j
    g_dirty[g, 0] = n + 1


@inline_kernel
def choose(count, base, g_min, g_dirty, pr, pod, g, lo, hi, scale, home, start):
    """Route among workers ``[lo, hi)`` (group ``g``: 0 prefill, 1 decode) by the
    study's score, through the run's routing cache (or a full scan, ``incremental=0``);
    every route picks the same worker."""
    path = pr.lambda_p * pr.cross_pod_cost
    k = (hi - lo) // pr.n_pods
    if pr.tree:
        t = g_min[g]
        n = g_dirty[g, 0]
        if n < 0:
            tree_build(t, lo, hi, count, scale, base)
        else:
            for m in range(1, n + 1):
                tree_set(t, lo, count, scale, base, g_dirty[g, m])
        g_dirty[g, 0] = 0
        return tree_argmin(t, lo, hi, lo + home * k, lo + (home + 1) * k, path, start)
    if pr.incremental:
        return argmin_pods(
            g_min, g_dirty, g, lo, k, pr.n_pods, count, scale, base, pod, home, path, start
        )
    return argmin_score(lo, hi, count, scale, base, pod, home, path, start)


@kernel
def pod_means(pi, n_pods, n_prefill, kp, kd, pod_n, out):
    """``out[q]``: the mean of ``pi`` over pod ``q`` (its ``kp`` prefill workers from
    ``q * kp``, then its ``kd`` decode workers from ``n_prefill + q * kd``), each sum in
    worker order.

    Four pods at a time, each summed in its own variable: four independent chains of
    additions over four contiguous runs. One pod at a time makes a single chain of
    dependent additions; all pods side by side (the former loop) stride across the
    whole row, which thrashes the cache once pods are large: at 65,536 workers in 32
    pods it took half of the price update's time (benchmarks/PROFILE.md, thirteenth
    round).
    """
    q = 0
    while q + 4 <= n_pods:
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        a = q * kp
        for m in range(kp):
            s0 += pi[a + m]
            s1 += pi[a + kp + m]
            s2 += pi[a + 2 * kp + m]
            s3 += pi[a + 3 * kp + m]
        a = n_prefill + q * kd
        for m in range(kd):
            s0 += pi[a + m]
            s1 += pi[a + kd + m]
            s2 += pi[a + 2 * kd + m]
            s3 += pi[a + 3 * kd + m]
        out[q] = s0 / pod_n[q]
        out[q + 1] = s1 / pod_n[q + 1]
        out[q + 2] = s2 / pod_n[q + 2]
        out[q + 3] = s3 / pod_n[q + 3]
        q += 4
    while q < n_pods:
        s = 0.0
        a = q * kp
        for m in range(kp):
            s += pi[a + m]
        a = n_prefill + q * kd
        for m in range(kd):
            s += pi[a + m]
        out[q] = s / pod_n[q]
        q += 1


@kernel
def update_prices(wf, base, g_dirty, pr, pod, pod_n, f_price, health, pod_sum, pw_f):
    """Decay the symptom charges, recompute ``pi`` and the base score of every worker.

    ``f_price``: bandwidth factor per pod as this scheduler observes it; ``health``: 0/1
    per worker; ``pod_sum``: scratch of length n_pods, left holding the mean raw price of
    every pod; ``pw_f``: the policy's state, whose row 0 is its own term of the base
    score when ``pr.has_extra`` (a mask, a scorer's value).

    A policy that does not use the price (``pr.price_on == 0``: ``lambda_r`` is 0 and it
    reads no utilisation) skips it: its base is ``lambda_f * health (+ its own term)``,
    and only pods where a base changed lose their cached minimum.
    """
    if not pr.price_on:
        for j in range(pr.n_workers):
            b = pr.lambda_f * health[j]
            if pr.has_extra:
                b += pw_f[0, j]
            if b != base[j]:
                base[j] = b
                mark(g_dirty, pr, pod, j)
        return
    # workers are numbered prefill then decode, each group pod by pod. Each pass is one
    # loop over every worker (a loop per pod costs more to enter than its 16 workers at
    # the default), with the pod's constant written beforehand where the loop reads it:
    # the same operations in the same order as the model's per-worker formula
    n_pods, n_prefill, n = pr.n_pods, pr.n_prefill, pr.n_workers
    kp = n_prefill // n_pods
    kd = (n - n_prefill) // n_pods
    d, alpha, gamma, eta = pr.decay, pr.alpha, pr.gamma, pr.eta
    util, busy, tout = wf[W_UTIL], wf[W_BUSY], wf[W_TOUT]
    fail, outc, pi = wf[W_FAIL], wf[W_OUTC], wf[W_PI]
    for q in range(2 * n_pods):  # the prefill group's pods, then the decode group's
        lo = q * kp if q < n_pods else n_prefill + (q - n_pods) * kd
        hi = lo + (kp if q < n_pods else kd)
        pi[lo:hi] = pr.beta * (1.0 - f_price[q % n_pods])  # the pod's bandwidth deficit
    for j in range(n):
        u = d * util[j] + (1.0 - d) * busy[j]
        t = tout[j] * d
        f = fail[j] * d
        o = outc[j] * d
        util[j] = u
        tout[j] = t
        fail[j] = f
        outc[j] = o
        inv = 1.0 / (o + 1.0)
        pi[j] = alpha * u + pi[j] + gamma * t * inv + eta * f * inv
    pod_means(pi, n_pods, n_prefill, kp, kd, pod_n, pod_sum)
    keep, lf, lr = 1.0 - pr.kappa, pr.lambda_f, pr.lambda_r
    for q in range(2 * n_pods):
        lo = q * kp if q < n_pods else n_prefill + (q - n_pods) * kd
        hi = lo + (kp if q < n_pods else kd)
        base[lo:hi] = pr.kappa * pod_sum[q % n_pods]  # the pod's share of the blend
    for j in range(n):
        p = keep * pi[j] + base[j]
        pi[j] = p
        base[j] = lf * health[j] + lr * p
    if pr.has_extra:
        x = pw_f[0]
        for j in range(n):
            base[j] += x[j]
    if pr.tree:
        g_dirty[:, 0] = -1  # every score moved: rebuild both trees at their next decision
    else:
        g_dirty[:, :] = 1
