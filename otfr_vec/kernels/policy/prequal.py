"""Prequal (``prequal``): asynchronous probes into a pool, hot-cold lexicographic pick.

Per decision the router probes ``probes_per_query`` distinct random workers of the group;
a probe answers at once (probes are small; the model has no probe latency) with the
worker's requests in flight (RIF) and its latency estimate at that RIF: the median of
the last ``latency_samples`` completed requests that arrived when the worker's RIF was
the same (RIF levels above ``rif_levels - 1`` share the last level), or, if it has none
there, at the nearest RIF level with samples (0 with none at all). Each group has a pool
of at most ``pool_size`` probes, the newest per worker, dropped after ``max_age``; a
probe serves ``b_reuse`` decisions, randomly rounded. A probe is hot when its RIF
exceeds the ``q_rif`` quantile of the last ``rif_history`` probed RIFs: the cold probe
with the lowest latency wins, or, when all are hot, the lowest RIF. After each decision
``remove_per_query`` probes leave the pool, alternately the worst (hottest; the slowest
if none is hot) and the oldest. The chosen worker's pooled RIF is raised by one when the
request is routed (as prequal-rs does).
"""

from ..jit import kernel
from ..order import insertion_sort
from ..structs import OUT_SUCCESS
from .common import index_of

(
    K_PROBES,
    K_POOL,
    K_MAX_AGE,
    K_QRIF,
    K_RING,
    K_DELTA,
    K_REMOVE,
    K_LAT_N,
    K_LEVELS,
    N_KNOBS,
) = range(10)
# per worker and RIF level b: pw_i rows 2b (samples held) and 2b + 1 (ring position),
# pw_f rows b * latency_samples ... (b + 1) * latency_samples - 1 (the ring); the last
# pw_i row (2 * levels) counts the levels holding samples
# pg_i rows (group g: row + g) and META columns; RIF_HIST counts the ring's RIFs per
# value (RIF_BINS of them, the last one for every RIF above), for its quantile
POOL_W, POOL_RIF, POOL_USES, RING, META, RIF_HIST, N_GI = 0, 2, 4, 6, 8, 9, 11
RIF_BINS = 4096
M_RING_POS, M_RING_N, M_TOGGLE = 0, 2, 4
# pg_f rows
POOL_T, POOL_LAT, SCRATCH, N_GF = 0, 2, 4, 5


@kernel
def init(pg_i):
    pg_i[POOL_W : POOL_W + 2, :] = -1


@kernel
def median_at(pw_i, pw_f, pg_f, kn, j, b):
    n = pw_i[2 * b, j]
    s = int(kn[K_LAT_N])
    for k in range(n):
        pg_f[SCRATCH, k] = pw_f[b * s + k, j]
    insertion_sort(pg_f[SCRATCH], n, n * n)  # (n is small: the ring or sample size)
    h = n // 2
    if n % 2:
        return pg_f[SCRATCH, h]
    return 0.5 * (pg_f[SCRATCH, h - 1] + pg_f[SCRATCH, h])


@kernel
def latency_estimate(pw_i, pw_f, pg_f, kn, j, rif):
    """The median latency at RIF level ``rif``, or at the nearest level with samples."""
    levels = int(kn[K_LEVELS])
    if pw_i[2 * levels, j] == 0:
        return 0.0  # no completion measured yet
    b0 = min(rif, levels - 1)
    for d in range(levels):
        for b in (b0 - d, b0 + d):
            if 0 <= b < levels and pw_i[2 * b, j] > 0:
                return median_at(pw_i, pw_f, pg_f, kn, j, b)
    return 0.0


@kernel
def outcome(pw_i, pw_f, kn, j, kind, latency, rif):
    """A completed request's latency joins the ring of the RIF level it arrived at."""
    if kind != OUT_SUCCESS:
        return  # the server measures the latencies of the requests it completes
    b = min(rif, int(kn[K_LEVELS]) - 1)
    s = int(kn[K_LAT_N])
    pos = pw_i[2 * b + 1, j]
    pw_f[b * s + pos, j] = latency
    pw_i[2 * b + 1, j] = (pos + 1) % s
    if pw_i[2 * b, j] == 0:
        pw_i[2 * int(kn[K_LEVELS]), j] += 1
    pw_i[2 * b, j] = min(pw_i[2 * b, j] + 1, s)


@kernel
def threshold(pg_i, pg_f, kn, g):
    """The ``q_rif`` quantile of the RIF history: element ``int(q (n - 1))`` of its sorted
    values, read off the per-value counts (exact for RIFs below RIF_BINS - 1)."""
    n = pg_i[META, M_RING_N + g]
    rank = int(kn[K_QRIF] * (n - 1))
    seen = 0
    for v in range(RIF_BINS):
        seen += pg_i[RIF_HIST + g, v]
        if seen > rank:
            return float(v)
    return float(RIF_BINS - 1)


@kernel
def insert(pg_i, pg_f, kn, g, x, rif, lat, t, uses):
    pool = int(kn[K_POOL])
    slot, oldest, t_old = -1, -1, 0.0
    for k in range(pool):
        w = pg_i[POOL_W + g, k]
        if w == x:
            slot = k
            break
        if w < 0:
            if slot < 0:
                slot = k
        elif oldest < 0 or pg_f[POOL_T + g, k] < t_old:
            oldest, t_old = k, pg_f[POOL_T + g, k]
    if slot < 0:
        slot = oldest
    pg_i[POOL_W + g, slot] = x
    pg_i[POOL_RIF + g, slot] = rif
    pg_i[POOL_USES + g, slot] = uses
    pg_f[POOL_T + g, slot] = t
    pg_f[POOL_LAT + g, slot] = lat
    ring = int(kn[K_RING])  # the RIF history behind the hot/cold threshold
    pos = pg_i[META, M_RING_POS + g]
    if pg_i[META, M_RING_N + g] == ring:  # full: the oldest value leaves the counts
        pg_i[RIF_HIST + g, min(pg_i[RING + g, pos], RIF_BINS - 1)] -= 1
    pg_i[RIF_HIST + g, min(rif, RIF_BINS - 1)] += 1
    pg_i[RING + g, pos] = rif
    pg_i[META, M_RING_POS + g] = (pos + 1) % ring
    pg_i[META, M_RING_N + g] = min(pg_i[META, M_RING_N + g] + 1, ring)


@kernel
def hot_cold(pg_i, pg_f, kn, g, thr):
    """The pool slot the hot-cold rule picks: of the probes with RIF <= ``thr`` (cold) the
    lowest latency, else the lowest RIF; the first in pool order on ties; -1 if empty."""
    cold, hot = -1, -1
    for s in range(int(kn[K_POOL])):
        if pg_i[POOL_W + g, s] < 0:
            continue
        if pg_i[POOL_RIF + g, s] <= thr:
            if cold < 0 or pg_f[POOL_LAT + g, s] < pg_f[POOL_LAT + g, cold]:
                cold = s
        elif hot < 0 or pg_i[POOL_RIF + g, s] < pg_i[POOL_RIF + g, hot]:
            hot = s
    return cold if cold >= 0 else hot


@kernel
def probe_targets(n, k, u0, u1, u2):
    """``k`` (<= 3) distinct indices in [0, n), uniformly, from three uniforms."""
    a = index_of(u0, n)
    if k < 2:
        return a, -1, -1
    b = index_of(u1, n - 1)
    if b >= a:
        b += 1
    if k < 3:
        return a, b, -1
    c = index_of(u2, n - 2)
    lo_, hi_ = min(a, b), max(a, b)
    if c >= lo_:
        c += 1
    if c >= hi_:
        c += 1
    return a, b, c


@kernel
def probe(pw_i, pw_f, pg_i, pg_f, count, kn, g, w, t, uses):
    """Worker ``w`` answers a probe (its RIF and its latency at that RIF): into the pool."""
    lat = latency_estimate(pw_i, pw_f, pg_f, kn, w, count[w])
    insert(pg_i, pg_f, kn, g, w, count[w], lat, t, uses)


@kernel
def choose(pw_i, pw_f, pg_i, pg_f, count, kn, g, lo, hi, t, u0, u1, u2, u3):
    n = hi - lo
    pool = int(kn[K_POOL])
    k = min(int(kn[K_PROBES]), n, 3)
    m = min(pool, n)
    den = (1.0 - m / n) * k - kn[K_REMOVE]
    reuse = max(1.0, (1.0 + kn[K_DELTA]) / den) if den > 0 else 1.0
    uses = int(reuse) + (1 if u3 < reuse - int(reuse) else 0)
    a, b, c = probe_targets(n, k, u0, u1, u2)
    probe(pw_i, pw_f, pg_i, pg_f, count, kn, g, lo + a, t, uses)
    if b >= 0:
        probe(pw_i, pw_f, pg_i, pg_f, count, kn, g, lo + b, t, uses)
    if c >= 0:
        probe(pw_i, pw_f, pg_i, pg_f, count, kn, g, lo + c, t, uses)
    for s in range(pool):  # expire
        if pg_i[POOL_W + g, s] >= 0 and t - pg_f[POOL_T + g, s] > kn[K_MAX_AGE]:
            pg_i[POOL_W + g, s] = -1
    thr = threshold(pg_i, pg_f, kn, g)
    s = hot_cold(pg_i, pg_f, kn, g, thr)
    if s < 0:
        return lo + index_of(u0, n)  # empty pool: a random worker
    chosen = pg_i[POOL_W + g, s]
    pg_i[POOL_USES + g, s] -= 1
    if pg_i[POOL_USES + g, s] <= 0:
        pg_i[POOL_W + g, s] = -1
    for _ in range(int(kn[K_REMOVE])):
        worst = pg_i[META, M_TOGGLE + g] == 0
        pg_i[META, M_TOGGLE + g] = 1 - pg_i[META, M_TOGGLE + g]
        r = -1
        for s2 in range(pool):
            if pg_i[POOL_W + g, s2] < 0:
                continue
            if r < 0:
                r = s2
            elif worst:
                hot_r = pg_i[POOL_RIF + g, r] > thr
                hot_s = pg_i[POOL_RIF + g, s2] > thr
                if hot_s and not hot_r:
                    r = s2
                elif hot_s == hot_r:
                    if hot_s and pg_i[POOL_RIF + g, s2] > pg_i[POOL_RIF + g, r]:
                        r = s2
                    elif not hot_s and pg_f[POOL_LAT + g, s2] > pg_f[POOL_LAT + g, r]:
                        r = s2
            elif pg_f[POOL_T + g, s2] < pg_f[POOL_T + g, r]:
                r = s2
        if r >= 0:
            pg_i[POOL_W + g, r] = -1
    return chosen


@kernel
def routed(pg_i, kn, g, j):
    for s in range(int(kn[K_POOL])):
        if pg_i[POOL_W + g, s] == j:
            pg_i[POOL_RIF + g, s] += 1
            return
