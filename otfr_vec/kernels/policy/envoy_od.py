"""Envoy outlier detection over least-request power of two choices (``envoy_od``).

Outcome-driven: consecutive 5xx / gateway errors eject inline; an interval timer releases
ejections, swaps the success-rate buckets, applies success-rate and failure-percentage
ejection and decays the back-off. The two role groups are two Envoy clusters (prefill
pool, decode pool): ejection caps and panic are per group. The algorithm and defaults
follow ``source/common/upstream/outlier_detection_impl.cc`` (see the Python side,
:mod:`otfr_vec.policies.envoy_od`, for sources and knobs).
"""

import numpy as np

from ..jit import kernel
from ..structs import NEXT_TICK, OUT_SUCCESS, W_PI
from .common import EXTRA, MASK, group_hi, group_lo, group_of, index_of, rebase

# knobs (kn), in the order of the Python dataclass's fields
(
    K_C5XX,
    K_ENF_C5XX,
    K_CGW,
    K_ENF_CGW,
    K_INTERVAL,
    K_BASE_EJECT,
    K_MAX_EJECT,
    K_JITTER,
    K_MAX_PCT,
    K_ALWAYS_ONE,
    K_SR_MIN_HOSTS,
    K_SR_VOLUME,
    K_SR_STDEV,
    K_ENF_SR,
    K_FP_THRESHOLD,
    K_FP_MIN_HOSTS,
    K_FP_VOLUME,
    K_ENF_FP,
    K_PANIC,
    K_CHOICES,
    N_KNOBS,
) = range(21)
# pw_i rows
C5XX, CGW, EJECTED, BACKOFF, SR_S, SR_T, SR_S_LAST, SR_T_LAST, HPOS, N_I = range(10)
# pw_f rows (EXTRA = 0: the mask of an ejected worker, for the full-scan pick)
T_EJECT, T_UNEJECT, JITTER, N_F = 1, 2, 3, 4
# pg_i rows: HLIST holds each group's non-ejected workers at positions [lo, lo + n_healthy)
HLIST, META, N_GI = 0, 1, 2
# META columns, per group g: M_HEALTHY + g, M_EJECTED + g
M_HEALTHY, M_EJECTED = 0, 2


@kernel
def init(pr, pw_i, pw_f, pg_i, ctr):
    for j in range(pr.n_workers):
        pg_i[HLIST, j] = j
        pw_i[HPOS, j] = j
        pw_f[T_UNEJECT, j] = -np.inf
    ctr[NEXT_TICK] = 1  # the first interval ends at `interval`
    pg_i[META, M_HEALTHY] = pr.n_prefill
    pg_i[META, M_HEALTHY + 1] = pr.n_workers - pr.n_prefill


@kernel
def eject(pr, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, kn, j, t, u_enf, enforcing, u_jit):
    """``ejectHost``: respect max_ejection_percent (and always_eject_one_host), enforce
    with probability enforcing/100; return whether ``j`` was ejected."""
    g = group_of(pr, j)
    lo = group_lo(pr, g)
    n = group_hi(pr, g) - lo
    ne = pg_i[META, M_EJECTED + g]
    allowed = 100.0 * (ne + 1) / n <= kn[K_MAX_PCT] or (kn[K_ALWAYS_ONE] > 0.0 and ne == 0)
    if not allowed or not u_enf < enforcing / 100.0:
        return False
    pw_i[EJECTED, j] = 1
    pw_f[T_EJECT, j] = t
    pw_f[JITTER, j] = u_jit * kn[K_JITTER]
    if pw_i[BACKOFF, j] * kn[K_BASE_EJECT] < kn[K_MAX_EJECT] + kn[K_BASE_EJECT]:
        pw_i[BACKOFF, j] += 1
    nh = pg_i[META, M_HEALTHY + g]  # swap-remove from the healthy list
    pos = pw_i[HPOS, j]
    last = pg_i[HLIST, lo + nh - 1]
    pg_i[HLIST, pos] = last
    pw_i[HPOS, last] = pos
    pw_i[HPOS, j] = -1
    pg_i[META, M_HEALTHY + g] = nh - 1
    pg_i[META, M_EJECTED + g] = ne + 1
    pw_f[EXTRA, j] = MASK
    rebase(base, g_dirty, pr, pod, wf, health, pw_f, j)
    return True


@kernel
def uneject(pr, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, j, t):
    g = group_of(pr, j)
    lo = group_lo(pr, g)
    nh = pg_i[META, M_HEALTHY + g]
    pg_i[HLIST, lo + nh] = j
    pw_i[HPOS, j] = lo + nh
    pg_i[META, M_HEALTHY + g] = nh + 1
    pg_i[META, M_EJECTED + g] -= 1
    pw_i[EJECTED, j] = 0
    pw_i[C5XX, j] = 0
    pw_i[CGW, j] = 0
    pw_f[T_UNEJECT, j] = t
    pw_f[EXTRA, j] = 0.0
    rebase(base, g_dirty, pr, pod, wf, health, pw_f, j)


@kernel
def outcome(pr, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, kn, j, kind, t, u_enf, u_jit):
    """``putHttpResponseCode``: success 200; a timeout counts as 504 and a hard-fault
    failure as 503, both 5xx and gateway failures. A consecutive-error event is ignored
    while the worker is ejected; otherwise ejection is tried and the counter reset."""
    if kind == OUT_SUCCESS:
        pw_i[SR_S, j] += 1
        pw_i[SR_T, j] += 1
        pw_i[C5XX, j] = 0
        pw_i[CGW, j] = 0
        return
    pw_i[SR_T, j] += 1
    # gateway failures first, then 5xx: Envoy's order; each counter resets once it ejects
    for c, k_n, k_enf in ((CGW, K_CGW, K_ENF_CGW), (C5XX, K_C5XX, K_ENF_C5XX)):
        pw_i[c, j] += 1
        if pw_i[c, j] == kn[k_n] and pw_i[EJECTED, j] == 0:
            eject(pr, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, kn, j, t, u_enf,
                  kn[k_enf], u_jit)  # fmt: skip
            pw_i[c, j] = 0


@kernel
def interval_tick(pr, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, kn, t, u_tick, row):
    """One interval timer event, in Envoy's order: release due ejections, swap the
    success-rate buckets, success-rate and failure-percentage ejection, back-off decay."""
    for j in range(pr.n_workers):
        if pw_i[EJECTED, j]:
            due = min(kn[K_BASE_EJECT] * pw_i[BACKOFF, j], kn[K_MAX_EJECT]) + pw_f[JITTER, j]
            if due <= t - pw_f[T_EJECT, j]:
                uneject(pr, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, j, t)
        pw_i[SR_S_LAST, j] = pw_i[SR_S, j]
        pw_i[SR_T_LAST, j] = pw_i[SR_T, j]
        pw_i[SR_S, j] = 0
        pw_i[SR_T, j] = 0
    for g in range(2):
        lo = group_lo(pr, g)
        hi = group_hi(pr, g)
        n = hi - lo
        if n < kn[K_SR_MIN_HOSTS] and n < kn[K_FP_MIN_HOSTS]:
            continue
        m, s1, s2 = 0, 0.0, 0.0  # success rate over hosts with enough requests
        m_fp = 0
        for j in range(lo, hi):
            tot = pw_i[SR_T_LAST, j]
            if pw_i[EJECTED, j] or tot == 0:
                continue
            sr = 100.0 * pw_i[SR_S_LAST, j] / tot
            if tot >= kn[K_SR_VOLUME]:
                m += 1
                s1 += sr
                s2 += sr * sr
            if tot >= kn[K_FP_VOLUME]:
                m_fp += 1
        if m >= kn[K_SR_MIN_HOSTS] and m > 0:
            mean = s1 / m
            sd = np.sqrt(max(s2 / m - mean * mean, 0.0))
            threshold = mean - kn[K_SR_STDEV] / 1000.0 * sd
            for j in range(lo, hi):
                tot = pw_i[SR_T_LAST, j]
                if pw_i[EJECTED, j] or tot < kn[K_SR_VOLUME]:
                    continue
                if 100.0 * pw_i[SR_S_LAST, j] / tot < threshold:
                    eject(
                        pr,
                        pod,
                        wf,
                        base,
                        g_dirty,
                        health,
                        pw_i,
                        pw_f,
                        pg_i,
                        kn,
                        j,
                        t,
                        u_tick[row, j],
                        kn[K_ENF_SR],
                        0.0,
                    )
        if m_fp >= kn[K_FP_MIN_HOSTS] and m_fp > 0:
            for j in range(lo, hi):
                tot = pw_i[SR_T_LAST, j]
                if pw_i[EJECTED, j] or tot < kn[K_FP_VOLUME] or tot == 0:
                    continue
                if 100.0 - 100.0 * pw_i[SR_S_LAST, j] / tot >= kn[K_FP_THRESHOLD]:
                    eject(
                        pr,
                        pod,
                        wf,
                        base,
                        g_dirty,
                        health,
                        pw_i,
                        pw_f,
                        pg_i,
                        kn,
                        j,
                        t,
                        u_tick[row, j],
                        kn[K_ENF_FP],
                        0.0,
                    )
    for j in range(pr.n_workers):
        if pw_i[EJECTED, j] == 0 and pw_i[BACKOFF, j] > 0:
            if t - pw_f[T_UNEJECT, j] >= kn[K_INTERVAL]:
                pw_i[BACKOFF, j] -= 1


@kernel
def lr_score(pr, count, wf, health, j, scale):
    """least_request's comparison: active requests (times the load scale), plus the
    risk price where composed with it (``lambda_r`` > 0) and labels (``lambda_f``)."""
    return count[j] * scale + pr.lambda_f * health[j] + pr.lambda_r * wf[W_PI, j]


@kernel
def choose(pr, count, wf, health, pw_i, pg_i, kn, g, lo, hi, scale, start, u0, u1, u2, u3):
    """least_request over the non-ejected workers of group ``g``: ``choice_count`` draws
    with replacement, the first strictly lowest wins; ``choice_count = 0`` scans them all
    (Envoy's FULL_SCAN, ties broken from the seeded start). Below the panic threshold
    (share of non-ejected workers, %) every worker is a candidate again."""
    n = hi - lo
    nh = pg_i[META, M_HEALTHY + g]
    panic = nh == 0 or 100.0 * nh / n < kn[K_PANIC]
    c = int(kn[K_CHOICES])
    if c == 0:
        best, best_j = np.inf, -1
        k0 = start % n
        for step in range(n):
            j = lo + (k0 + step) % n
            if not panic and pw_i[EJECTED, j]:
                continue
            s = lr_score(pr, count, wf, health, j, scale)
            if s < best:
                best, best_j = s, j
        return best_j
    best, best_j = np.inf, -1
    for k in range(c):
        u = u0 if k == 0 else (u1 if k == 1 else (u2 if k == 2 else u3))
        j = lo + index_of(u, n) if panic else pg_i[HLIST, lo + index_of(u, nh)]
        s = lr_score(pr, count, wf, health, j, scale)
        if s < best:
            best, best_j = s, j
    return best_j


__all__ = ["choose", "init", "interval_tick", "outcome"]
