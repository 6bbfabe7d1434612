"""Kernel state as a structure of arrays, declared once.

Fields of the same owner and dtype are rows of one 2-D array (``wi[W_SLOTS, j]`` is
worker ``j``'s reserved slots, ``qf[Q_ARR, i]`` request ``i``'s arrival time), and kernels
receive those few arrays explicitly. Why not one NamedTuple argument: Numba increfs and
decrefs every array of a tuple on each call that is not inlined (an atomic operation
each); with ~50 arrays that was 330 ns per call and two thirds of the run time.

``State`` (Python side) bundles the arrays of one scheduler; ``Params`` holds the
scalars of its run, and reaches the kernels as a NumPy record (:func:`params_array`).
"""

from __future__ import annotations

from typing import NamedTuple, get_type_hints

import numpy as np

# request states
FREE, PQ, DWAIT, TX, FTWAIT, DEC = 0, 1, 2, 3, 4, 5
# sim.timeout_scope
SCOPE_TTFT, SCOPE_QUEUE, SCOPE_E2E = 0, 1, 2
# health source
HEALTH_OFF, HEALTH_LABELS, HEALTH_TRUTH = 0, 1, 2
# outcome kinds charged to a worker
OUT_SUCCESS, OUT_TIMEOUT, OUT_FAILURE = 0, 1, 2

# wi rows (int64 per worker)
W_HEAD, W_TAIL = 0, 1  # FIFO: prefill queue (prefill workers) or slot wait (decode workers)
W_SLOTS = 2  # decode slots reserved (transfer, first token, decoding)
W_DEC = 3  # sequences decoding (compute busy)
W_NTX = 4  # transfers on the interface
W_DOWN = 5
# prefill workers: the calendar of prefill ends (one entry per worker, for its FIFO head)
W_PCAL = 6  # the step its head's prefill ends in (its bucket), -1: none
W_PNEXT, W_PPREV = 7, 8  # links within that bucket
W_ASTEP = 9  # prefill workers: the step W_ACC belongs to (-1: none yet)
W_CHK, W_CHKTX = 10, 11  # scratch of the invariant check (sim.check): a recount
N_WI = 12
# wf rows (float64 per worker)
W_BUSY = 0  # compute busy fraction of the last step (prefill: kept only where a price reads it)
W_UTIL = 1  # its EWMA
W_TOUT, W_FAIL, W_OUTC = 2, 3, 4  # time-decayed timeout, failure and outcome charges
W_PI = 5  # risk price after the locational blend
W_HSTART = 6  # prefill workers: when the FIFO head's service started (inf: no head)
W_ACC = 7  # prefill workers: busy time in step W_ASTEP of heads that have left
N_WF = 8
# qi rows (int64 per request place in the pool)
Q_ING, Q_TIE, Q_STATE, Q_P, Q_D = 0, 1, 2, 3, 4
Q_NEXT, Q_PREV = 5, 6  # FIFO links
Q_TXPOS = 7  # place in the list of active transfers
Q_SEQ = 8  # arrival sequence number, -1 when free (stale ring entries are skipped)
Q_WIN = 9  # arrival window, -1 if outside the measured window
FREE_IDS, TX_IDS, BUF_ID = 10, 11, 12  # free stack, active transfers, per-step scratch
Q_RIF_P, Q_RIF_D = 13, 14  # the prefill / decode worker's load when the request was routed
Q_CAL = 15  # while decoding: the step whose decode ends hold it (its calendar bucket)
BUF_ORD, BUF_AUX = 16, 17  # scratch of the buffer's sort (its order, the buckets' starts)
# the active transfers, by place k in the list (column k, k < ctr[N_TX], beside TX_IDS):
# prefill and decode worker, so the per-step pass over transfers reads these rows in order
# rather than each request's pool column
TX_P, TX_D = 18, 19
N_QI = 20
# qf rows (float64 per request place)
Q_ARR, Q_PROMPT, Q_OUT = 0, 1, 2
TX_REM = 3  # by list place k, as TX_P: KV bytes the transfer still has to send
Q_T = 4  # when it joined its queue / started its transfer / got its first token
Q_END = 5  # the FIFO head's prefill end, then the last token
BUF_T = 6  # per-step scratch: event times
Q_TD = 7  # when the decode decision was made (prefill end): start of the decode leg
Q_U = 8  # first of the request's policy draws kept for later (decode decision, outcomes)
BUF_TF = Q_U + 8  # scratch of the buffer's sort (the times in order)
TX_T = BUF_TF + 1  # by list place k, as TX_P: when the transfer started
N_QF = TX_T + 1
# the per-request policy draws (``Requests.u`` columns, uniforms in [0, 1)): four for the
# prefill decision, four for the decode decision, two per worker for outcome-driven draws
U_PREFILL, U_DECODE, U_OUT_P, U_OUT_D, N_U = 0, 4, 8, 10, 12
# ev rows: deadline ring (arrival order is deadline order)
EV_ID, EV_SEQ = 0, 1

# ctr: bookkeeping of the containers
# LABEL_ROW: the label refresh the health scratch holds (-1: none yet)
N_FREE, N_TX, DL_HEAD, DL_LEN, N_DEC, SEQ, ERR, ERR_STEP, NEXT_TICK, LABEL_ROW, N_CTR = range(11)
# the decode-end calendar: one bucket per step, CAL_SIZE buckets in a ring (a power of two;
# a decode longer than the ring waits in its bucket for a later lap)
CAL_SIZE = 4096
# cnt: outcome counters; *_M are over requests arriving in the measured window
(
    ARRIVED,
    COMPLETED,
    TIMED_OUT,
    FAILED,
    ARRIVED_M,
    COMPLETED_M,
    TIMED_OUT_M,
    FAILED_M,
    DECISIONS,
    N_CNT,
) = range(10)
# win rows (by arrival window), ts rows (by window and pod), hist rows
WIN_ARR, WIN_FAIL = 0, 1
TS_ROUTED, TS_FAIL = 0, 1
H_TTFT, H_E2E = 0, 1

# latency histograms: log-spaced bins, HIST_PER_DECADE per decade from HIST_LO seconds
HIST_LO, HIST_PER_DECADE, HIST_BINS = 1e-4, 200, 1800
LOG10_HIST_LO = float(np.log10(HIST_LO))  # a constant, not a log10 per completion


class Params(NamedTuple):
    dt: float
    timeout: float
    scope: int
    prefill_rate: float  # tokens/s
    tpot: float
    slots: int
    bw0: float
    kv_bytes: float
    decay: float  # EWMA factor per step, 0.5 ** (dt / halflife)
    alpha: float
    beta: float  # 0 when the scheduler does not observe bandwidth
    gamma: float
    eta: float
    kappa: float
    lambda_f: float  # 0 for schedulers without a health penalty
    lambda_r: float  # 0 for schedulers without a risk price
    lambda_p: float
    cross_pod_cost: float
    health: int  # HEALTH_OFF / HEALTH_LABELS / HEALTH_TRUTH
    true_bw: int  # 1: the price sees the true factor (oracle), 0: the observed one
    threshold: float
    prefill_load_scale: float  # mean prefill time / timeout
    refresh: float
    warmup: float
    measure_end: float
    window: float
    n_pods: int
    n_prefill: int
    n_workers: int
    check: int  # 1: verify conservation and non-negativity at every step
    incremental: int  # 1: route through per-pod cached minima, 0: full scan (same choices)
    # the policy (otfr_vec.policies): which kernel hooks run, and the score's pieces
    policy: int  # policy kernel id (kernels/policy/ids.py); one compiled kernel serves all
    load_weight: float  # multiplies the load term (0: the score ignores live load)
    decode_load_scale: float  # load per decode request: load_weight / slots
    has_extra: int  # 1: base_j also adds the policy's own term (pw_f[EXTRA, j])
    hooks: int  # 1: the policy has outcome / refresh / routed hooks (0 for the study's five)
    keep_draws: int  # 1: keep each request's decode and outcome draws (qf[Q_U:])
    tick: float  # s between the policy's timer ticks (0: none)
    price_on: int  # 1: compute the risk price every step (the policy pays it or reads util)
    tree: int  # 1: route through one tournament tree per group, 0: per-pod minima
    tracing: int  # 1: write the decision trace (kernels/trace.py; the hook path for all)


def params_array(p: Params) -> np.recarray:
    """``p`` as a one-element record array; ``params_array(p)[0]`` is the form kernels
    receive (:func:`params_record`).

    Numba passes a record between compiled functions by pointer; a NamedTuple it passes
    field by field, so every kernel call copied the ~45 scalars (5 % of a default run's
    CPU time: benchmarks/PROFILE.md). Values are the same, integers as int64 and the rest
    as float64. From Python, a record argument costs ~3 us a call to check (its dtype) and
    the array ~0.1 us: entry points called per event take the array and index it.
    Python code reads the NamedTuple (a record's attributes are slow to read there).
    """
    return np.rec.array([tuple(p)], dtype=_PARAMS_DTYPE)


def params_record(p: Params) -> np.record:
    """``p`` as the NumPy record the kernels receive (see :func:`params_array`)."""
    return params_array(p)[0]


_PARAMS_DTYPE = [
    (f, np.int64 if t is int else np.float64) for f, t in get_type_hints(Params).items()
]


class State(NamedTuple):
    wi: np.ndarray  # int64[N_WI, n_workers]
    wf: np.ndarray  # float64[N_WF, n_workers]
    # the two inputs of every routing decision, kept apart so kernels get them as 1-D arrays
    count: np.ndarray  # int64: load numerator: prefill queued+serving+KV unsent; decode
    #                    slots used + waiting
    base: np.ndarray  # float64: lambda_f * health + lambda_r * price, fixed within a step
    g_min: np.ndarray  # float64[2, n_pods]: cached lowest score per role and pod
    g_dirty: np.ndarray  # int64[2, n_pods]: 1 where the cache is stale
    qi: np.ndarray  # int64[N_QI, capacity]
    qf: np.ndarray  # float64[N_QF, capacity]
    dl_i: np.ndarray  # int64[2, ring]: deadline ring ids and sequence numbers
    dl_t: np.ndarray  # float64[ring]: deadlines
    cal: np.ndarray  # int64[CAL_SIZE]: first request of each decode-end bucket, -1: none
    ctr: np.ndarray  # int64[N_CTR]
    cnt: np.ndarray  # int64[N_CNT]
    win: np.ndarray  # int64[2, n_win]: arrivals and failures by arrival window
    ts: np.ndarray  # int64[2, n_win, n_pods]: routing decisions and failures charged
    ts_price: np.ndarray  # float64[n_win, n_pods]: sum over steps of the pod mean price
    hist: np.ndarray  # int64[2, HIST_BINS]: TTFT and e2e of completed measured requests
    lat_sum: np.ndarray  # float64[2]: their sums (for the means)
    pcal: np.ndarray  # int64[CAL_SIZE]: first prefill worker of each prefill-end bucket
    # the policy's own state, shapes declared by the policy (otfr_vec.policies)
    pw_i: np.ndarray  # int64[rows, n_workers]
    pw_f: np.ndarray  # float64[rows, n_workers]
    pg_i: np.ndarray  # int64[rows, width]
    pg_f: np.ndarray  # float64[rows, width]


TREE_LIST = 256  # tree routing: workers listed as changed before a rebuild is cheaper


def new_state(
    n_workers: int,
    n_pods: int,
    n_win: int,
    capacity: int,
    policy_shape=(0, 0, 0, 0, 0),
    tree_len: int = 0,
    cal_size: int | None = None,
) -> State:
    """A fresh state; ``policy_shape``: the policy's (int rows, float rows per worker,
    global int rows, global float rows, global width); ``tree_len`` > 0: the routing
    caches hold two tournament trees of that length (kernels/scoring.py); ``cal_size``:
    buckets of the decode-end and of the prefill-end calendar (a power of two, default
    ``CAL_SIZE``; results do not depend on it)."""
    i8, f8 = np.int64, np.float64
    cap = max(int(capacity), 16)
    wi = np.zeros((N_WI, n_workers), i8)
    wi[[W_HEAD, W_TAIL, W_PCAL, W_PNEXT, W_PPREV, W_ASTEP]] = -1
    wf = np.zeros((N_WF, n_workers), f8)
    wf[W_HSTART] = np.inf
    qi = np.zeros((N_QI, cap), i8)
    qi[[Q_NEXT, Q_PREV, Q_SEQ]] = -1
    qi[FREE_IDS] = np.arange(cap)[::-1]
    ctr = np.zeros(N_CTR, i8)
    ctr[N_FREE] = cap
    ctr[ERR_STEP] = -1
    ctr[LABEL_ROW] = -1
    return State(
        wi=wi,
        wf=wf,
        count=np.zeros(n_workers, i8),
        base=np.zeros(n_workers, f8),
        g_min=np.zeros((2, tree_len or n_pods), f8),
        g_dirty=np.full((2, 1 + TREE_LIST), -1, i8) if tree_len else np.ones((2, n_pods), i8),
        qi=qi,
        qf=np.zeros((N_QF, cap), f8),
        dl_i=np.zeros((2, cap), i8),
        dl_t=np.zeros(cap, f8),
        cal=np.full(cal_size or CAL_SIZE, -1, i8),
        ctr=ctr,
        cnt=np.zeros(N_CNT, i8),
        win=np.zeros((2, n_win), i8),
        ts=np.zeros((2, n_win, n_pods), i8),
        ts_price=np.zeros((n_win, n_pods), f8),
        hist=np.zeros((2, HIST_BINS), i8),
        lat_sum=np.zeros(2, f8),
        pcal=np.full(cal_size or CAL_SIZE, -1, i8),
        pw_i=np.zeros((policy_shape[0], n_workers), i8),
        pw_f=np.zeros((policy_shape[1], n_workers), f8),
        pg_i=np.zeros((policy_shape[2], max(policy_shape[4], 1)), i8),
        pg_f=np.zeros((policy_shape[3], max(policy_shape[4], 1)), f8),
    )


def _widen(arr: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(arr.shape[:-1] + (size,), arr.dtype)
    out[..., : arr.shape[-1]] = arr
    return out


def grow(state: State, need: int) -> State:
    """A state whose pool and deadline ring each have room for ``need`` more requests.

    Each request takes one pool place and one ring entry (its decode end is linked
    through its pool place), so the engine calls this before every block with the
    block's arrival count: memory follows the number of requests in flight, not the
    length of the run.
    """
    ctr = state.ctr
    changes = {}
    cap = state.qi.shape[1]
    if ctr[N_FREE] < need:
        new_cap = max(2 * cap, cap - ctr[N_FREE] + need + 16)
        qi = _widen(state.qi, new_cap)
        qi[[Q_NEXT, Q_PREV, Q_SEQ], cap:] = -1
        nf = ctr[N_FREE]
        qi[FREE_IDS, nf : nf + new_cap - cap] = np.arange(cap, new_cap)[::-1]
        ctr[N_FREE] = nf + new_cap - cap
        changes.update(qi=qi, qf=_widen(state.qf, new_cap))
    ring = state.dl_t.size
    if ring - ctr[DL_LEN] < need:
        new_r = max(2 * ring, ctr[DL_LEN] + need + 16)
        order = (ctr[DL_HEAD] + np.arange(ctr[DL_LEN])) % ring  # unwrap the ring
        changes.update(
            dl_i=_widen(state.dl_i[:, order], new_r), dl_t=_widen(state.dl_t[order], new_r)
        )
        ctr[DL_HEAD] = 0
    return state._replace(**changes) if changes else state
