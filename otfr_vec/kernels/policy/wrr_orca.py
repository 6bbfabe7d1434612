"""gRPC weighted round robin from per-call load reports (``wrr_orca``, gRPC A58).

Each worker counts the requests it finished and those that failed or were cancelled at
their deadline, as exponentially decayed sums over ``rate_window`` (rate = sum /
window); a success carries the worker's report back (qps, eps, and the utilisation it
measures: the EWMA of its compute busy fraction). Every ``weight_update_period`` the
router recomputes each weight, ``qps / (util + eps / qps * error_utilization_penalty)``
(0 if a report is older than ``weight_expiration_period`` or the worker reported non-zero
weights for less than ``blackout_period``; zero weights take the mean of the others; with
fewer than two weights, plain round robin), and rebuilds an earliest-deadline-first
schedule per group: period ``1 / weight``, first deadlines uniform in [0, period] (the
tick's draws). A decision takes the earliest deadline and adds its period.
"""

import numpy as np

from ..containers import heap_pop, heap_push
from ..jit import kernel
from ..structs import OUT_SUCCESS, W_UTIL
from .common import group_hi, group_lo

K_UPDATE, K_BLACKOUT, K_EXPIRE, K_PENALTY, K_WINDOW, N_KNOBS = range(6)
# pw_f rows
QPS_C, EPS_C, T_C, R_QPS, R_EPS, R_UTIL, T_REPORT, T_NONEMPTY, PERIOD, N_F = range(10)
N_I = 0
# pg rows: per group a heap (deadline, (worker, worker)) in the containers' layout
HEAP_T, N_GF = 0, 2  # pg_f rows 0-1: deadlines of group 0 and 1
HEAP_I, META, N_GI = 0, 4, 5  # pg_i rows 0-1 and 2-3: ids and tie keys of group 0 and 1
M_LEN = 0  # META: heap length per group (cols 0-1)


@kernel
def init(pr, pw_f):
    for j in range(pr.n_workers):
        pw_f[T_REPORT, j] = -np.inf
        pw_f[T_NONEMPTY, j] = -np.inf


@kernel
def report_weight(pw_f, kn, j):
    qps, eps, util = pw_f[R_QPS, j], pw_f[R_EPS, j], pw_f[R_UTIL, j]
    if qps <= 0.0 or util <= 0.0:
        return 0.0
    return qps / (util + eps / qps * kn[K_PENALTY])


@kernel
def outcome(wf, pw_f, kn, j, kind, t):
    w = np.exp(-max(t - pw_f[T_C, j], 0.0) / kn[K_WINDOW])
    pw_f[QPS_C, j] = pw_f[QPS_C, j] * w + 1.0
    pw_f[EPS_C, j] = pw_f[EPS_C, j] * w + (0.0 if kind == OUT_SUCCESS else 1.0)
    pw_f[T_C, j] = t
    if kind != OUT_SUCCESS:
        return  # no response, no report
    pw_f[R_QPS, j] = pw_f[QPS_C, j] / kn[K_WINDOW]
    pw_f[R_EPS, j] = pw_f[EPS_C, j] / kn[K_WINDOW]
    pw_f[R_UTIL, j] = wf[W_UTIL, j]
    pw_f[T_REPORT, j] = t
    if report_weight(pw_f, kn, j) > 0.0 and pw_f[T_NONEMPTY, j] == -np.inf:
        pw_f[T_NONEMPTY, j] = t


@kernel
def rebuild(pr, pw_f, pg_i, pg_f, kn, t, u_tick, row):
    for g in range(2):
        lo = group_lo(pr, g)
        hi = group_hi(pr, g)
        n_w, total = 0, 0.0
        for j in range(lo, hi):
            w = 0.0
            if t - pw_f[T_REPORT, j] >= kn[K_EXPIRE]:
                pw_f[T_NONEMPTY, j] = -np.inf
            elif t - pw_f[T_NONEMPTY, j] >= kn[K_BLACKOUT]:
                w = report_weight(pw_f, kn, j)
            pw_f[PERIOD, j] = w  # the weight, for now
            if w > 0.0:
                n_w += 1
                total += w
        mean = total / n_w if n_w > 0 else 1.0
        n = 0
        for j in range(lo, hi):
            w = pw_f[PERIOD, j]
            if n_w < 2:
                w = 1.0  # plain round robin
            elif w <= 0.0:
                w = mean
            pw_f[PERIOD, j] = 1.0 / w
            n = heap_push(
                pg_f[HEAP_T + g],
                pg_i[HEAP_I + 2 * g : HEAP_I + 2 * g + 2],
                n,
                u_tick[row, j] * pw_f[PERIOD, j],
                j,
                j,
            )
        pg_i[META, M_LEN + g] = n


@kernel
def choose(pw_f, pg_i, pg_f, g):
    ht = pg_f[HEAP_T + g]
    hi = pg_i[HEAP_I + 2 * g : HEAP_I + 2 * g + 2]
    n = pg_i[META, M_LEN + g]
    j = hi[0, 0]
    d = ht[0]
    n = heap_pop(ht, hi, n)
    n = heap_push(ht, hi, n, d + pw_f[PERIOD, j], j, j)
    pg_i[META, M_LEN + g] = n
    return j
