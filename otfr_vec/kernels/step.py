"""The time-stepped simulation kernel: one scheduler, a block of steps, all workers.

Step ``s`` covers ``[t0, t1) = [s*dt, (s+1)*dt)``. In order:

1. hard faults: a worker going down fails all it holds;
2. prices: EWMA decay and the base score of every worker (fixed within the step);
3. decode ends due before ``t1`` free their slots (the next waiter's transfer starts then);
4. arrivals before ``t1`` are routed to prefill workers one by one, in arrival order, the
   chosen worker's load updated before the next decision;
5. the prefill workers whose FIFO head ends within the step (a calendar of prefill ends:
   an end is known when service starts) end it and start the next, exactly in
   continuous time; the prefills that end are routed to decode workers in order of
   their end time;
6. KV transfers advance at ``min(bw_p / n_p, bw_d / n_d)`` with the step's counts;
7. deadlines due before ``t1`` time out whatever has not reached its goal;
8. where a reader needs them (the price, or the trace), every prefill worker's busy
   fraction of the step (one vectorised pass); other runs pay nothing per idle worker:
   a head's busy time is summed as it leaves, under the step it belongs to.

The policy acts at the seams of :mod:`.policy.hooks`: its timers before step 2's base
scores, its pick at every decision, its outcome hook whenever a request resolves.
Those calls are made from :func:`advance` itself, and only for policies that have hooks:
a call passes every array argument as five machine words, so the per-request helpers
keep the few arrays the study's schedulers need, return what happened (an outcome, or
that a decision is due), and :func:`advance` does the rest.

Nothing here allocates (so nothing is reference-counted: see :mod:`.jit`), draws random
numbers or raises: the engine (:mod:`otfr_vec.engine`) prepares every input and reads
every output. Helpers take the state arrays they touch explicitly (see :mod:`.structs`
for why).
"""

import numpy as np

from .containers import cal_push, cal_remove, fifo_push, fifo_remove, pcal_push, pcal_remove
from .hist import hist_bin
from .jit import inline_kernel, kernel
from .order import bucket_order_into
from .policy.hooks import policy_choose, policy_outcome, policy_refresh, policy_routed
from .scoring import choose, mark, update_prices
from .structs import (
    ARRIVED,
    ARRIVED_M,
    BUF_AUX,
    BUF_ID,
    BUF_ORD,
    BUF_T,
    BUF_TF,
    COMPLETED,
    COMPLETED_M,
    DEC,
    DECISIONS,
    DL_HEAD,
    DL_LEN,
    DWAIT,
    ERR,
    ERR_STEP,
    EV_ID,
    EV_SEQ,
    FAILED,
    FAILED_M,
    FREE,
    FREE_IDS,
    FTWAIT,
    H_E2E,
    H_TTFT,
    HEALTH_LABELS,
    HEALTH_TRUTH,
    LABEL_ROW,
    N_DEC,
    N_FREE,
    N_TX,
    OUT_FAILURE,
    OUT_SUCCESS,
    OUT_TIMEOUT,
    PQ,
    Q_ARR,
    Q_CAL,
    Q_D,
    Q_END,
    Q_ING,
    Q_NEXT,
    Q_OUT,
    Q_P,
    Q_PROMPT,
    Q_RIF_D,
    Q_RIF_P,
    Q_SEQ,
    Q_STATE,
    Q_T,
    Q_TD,
    Q_TIE,
    Q_TXPOS,
    Q_U,
    Q_WIN,
    SCOPE_E2E,
    SCOPE_QUEUE,
    SEQ,
    TIMED_OUT,
    TIMED_OUT_M,
    TS_FAIL,
    TS_ROUTED,
    TX,
    TX_D,
    TX_IDS,
    TX_P,
    TX_REM,
    TX_T,
    U_DECODE,
    U_PREFILL,
    W_ACC,
    W_ASTEP,
    W_BUSY,
    W_CHK,
    W_CHKTX,
    W_DEC,
    W_DOWN,
    W_FAIL,
    W_HEAD,
    W_HSTART,
    W_NTX,
    W_OUTC,
    W_PCAL,
    W_PNEXT,
    W_SLOTS,
    W_TOUT,
    WIN_ARR,
    WIN_FAIL,
)
from .trace import S_BUSY, trace_choice, trace_outcome, trace_step

# what a per-request helper reports back to advance: an outcome kind (OUT_*), none yet,
# or that the request now needs its decode worker
NO_OUTCOME, NEEDS_DECODE = -1, 3


@inline_kernel
def hist_add(hist, row, x):
    hist[row, hist_bin(x)] += 1


@inline_kernel
def add_count(count, g_dirty, pr, pod, j, delta):
    """Change worker ``j``'s load numerator and mark its routing cache stale."""
    count[j] += delta
    mark(g_dirty, pr, pod, j)


@inline_kernel
def add_busy(wi, wf, p, s, x):
    """Prefill worker ``p`` was busy ``x`` s of step ``s`` with a head that has left
    (the sum restarts at the first time of a step: no pass over idle workers)."""
    if wi[W_ASTEP, p] != s:
        wi[W_ASTEP, p] = s
        wf[W_ACC, p] = 0.0
    wf[W_ACC, p] += x


@inline_kernel
def start_tx(wi, qi, qf, ctr, pr, i, t):
    qi[Q_STATE, i] = TX
    qf[Q_T, i] = t
    n = ctr[N_TX]
    qi[TX_IDS, n] = i
    qi[Q_TXPOS, i] = n
    qi[TX_P, n] = qi[Q_P, i]
    qi[TX_D, n] = qi[Q_D, i]
    qf[TX_REM, n] = qf[Q_PROMPT, i] * pr.kv_bytes
    qf[TX_T, n] = t
    ctr[N_TX] = n + 1
    wi[W_NTX, qi[Q_P, i]] += 1
    wi[W_NTX, qi[Q_D, i]] += 1


@inline_kernel
def tx_remove(wi, qi, qf, ctr, i):
    n = ctr[N_TX] - 1
    k = qi[Q_TXPOS, i]
    last = qi[TX_IDS, n]
    qi[TX_IDS, k] = last
    qi[Q_TXPOS, last] = k
    qi[TX_P, k] = qi[TX_P, n]
    qi[TX_D, k] = qi[TX_D, n]
    qf[TX_REM, k] = qf[TX_REM, n]
    qf[TX_T, k] = qf[TX_T, n]
    ctr[N_TX] = n
    wi[W_NTX, qi[Q_P, i]] -= 1
    wi[W_NTX, qi[Q_D, i]] -= 1


@inline_kernel
def admit_next(wi, qi, qf, ctr, pr, d, t):
    """Give free slots of decode worker ``d`` to its waiters, FIFO, from time ``t``."""
    while wi[W_HEAD, d] >= 0 and wi[W_SLOTS, d] < pr.slots and wi[W_DOWN, d] == 0:
        i = wi[W_HEAD, d]
        fifo_remove(wi, qi, d, i)
        wi[W_SLOTS, d] += 1
        start_tx(wi, qi, qf, ctr, pr, i, t)


@inline_kernel
def free_request(qi, ctr, i):
    qi[Q_STATE, i] = FREE
    qi[Q_SEQ, i] = -1
    n = ctr[N_FREE]
    qi[FREE_IDS, n] = i
    ctr[N_FREE] = n + 1


@inline_kernel
def release_slot(wi, wf, count, g_dirty, qi, qf, ctr, pr, pod, d, decoding, t):
    if decoding:
        wi[W_DEC, d] -= 1
        wf[W_BUSY, d] = wi[W_DEC, d] / pr.slots
    wi[W_SLOTS, d] -= 1
    add_count(count, g_dirty, pr, pod, d, -1)
    admit_next(wi, qi, qf, ctr, pr, d, t)


@kernel
def detach(wi, wf, count, g_dirty, qi, qf, ctr, cal, pcal, pr, pod, i, t, step, t_res):
    """Take request ``i`` out of every queue, interface and slot it holds, at ``t`` in
    step ``step``. A prefill worker that loses its FIFO head serves until ``t_res`` (the
    step start for a hard fault, the step end for a deadline: what the step-wise service
    had done) and starts its next request then."""
    s = qi[Q_STATE, i]
    p = qi[Q_P, i]
    d = qi[Q_D, i]
    if s == PQ:
        head = wi[W_HEAD, p] == i
        fifo_remove(wi, qi, p, i)
        add_count(count, g_dirty, pr, pod, p, -1)
        if head:
            pcal_remove(pcal, wi, p)
            add_busy(wi, wf, p, step, max(0.0, t_res - max(step * pr.dt, wf[W_HSTART, p])))
            fin = begin_head(wi, wf, qi, qf, pr, p, t_res)
            if fin < np.inf:
                pcal_push(pcal, wi, p, end_step(fin, pr.dt, step + 1))
    elif s == DWAIT:
        fifo_remove(wi, qi, d, i)
        add_count(count, g_dirty, pr, pod, d, -1)
        add_count(count, g_dirty, pr, pod, p, -1)
    elif s == TX:
        tx_remove(wi, qi, qf, ctr, i)
        add_count(count, g_dirty, pr, pod, p, -1)
        release_slot(wi, wf, count, g_dirty, qi, qf, ctr, pr, pod, d, False, t)
    elif s == FTWAIT or s == DEC:
        if s == DEC:
            cal_remove(cal, qi, i)
            ctr[N_DEC] -= 1
        release_slot(wi, wf, count, g_dirty, qi, qf, ctr, pr, pod, d, s == DEC, t)


@kernel
def resolve_bad(wf, qi, ctr, cnt, win, ts, pod, i, timed_out, w):
    """Count a timeout or failure of request ``i``, charge it to its workers, free it."""
    meas = qi[Q_WIN, i] >= 0
    cnt[TIMED_OUT if timed_out else FAILED] += 1
    if meas:
        cnt[TIMED_OUT_M if timed_out else FAILED_M] += 1
        win[WIN_FAIL, qi[Q_WIN, i]] += 1
    for x in (qi[Q_P, i], qi[Q_D, i]):
        if x >= 0:
            wf[W_OUTC, x] += 1.0
            wf[W_TOUT if timed_out else W_FAIL, x] += 1.0
            ts[TS_FAIL, w, pod[x]] += 1
    free_request(qi, ctr, i)


@kernel
def charge_success(wf, qi, i):
    wf[W_OUTC, qi[Q_P, i]] += 1.0
    if qi[Q_D, i] >= 0:
        wf[W_OUTC, qi[Q_D, i]] += 1.0


@inline_kernel
def charge_policy(
    pr, pod, wf, base, g_dirty, health, qi, qf, pw_i, pw_f, pg_i, kn, i, kind, t, tr_e, tr_n
):
    """The policy's outcome hook for both workers of request ``i``, resolved at ``t``.

    Leg latencies as a router measures them: the prefill leg from arrival until the
    request resolves (a success resolves when its KV has left the prefill worker), the
    decode leg from the decode decision until its first token (a failure: until it
    resolved); both observed at ``t``. Called right after the request resolved (its pool
    place may be free, but no arrival can have reused it yet).
    """
    d = qi[Q_D, i]
    lat_p = t - qf[Q_ARR, i]
    if pr.tracing:
        trace_outcome(
            tr_e, tr_n, t, qi[Q_P, i], kind, lat_p, qi[Q_RIF_P, i], qf[Q_U + 4, i], qf[Q_U + 5, i]
        )
    policy_outcome(
        pr, qi[Q_P, i], kind, lat_p, qi[Q_RIF_P, i], t, qf[Q_U + 4, i], qf[Q_U + 5, i],
        pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, kn,
    )  # fmt: skip
    if d >= 0:
        lat_d = t - qf[Q_TD, i] + (pr.tpot if kind == OUT_SUCCESS else 0.0)
        if pr.tracing:
            trace_outcome(tr_e, tr_n, t, d, kind, lat_d, qi[Q_RIF_D, i], qf[Q_U + 6, i],
                          qf[Q_U + 7, i])  # fmt: skip
        policy_outcome(
            pr, d, kind, lat_d, qi[Q_RIF_D, i], t, qf[Q_U + 6, i], qf[Q_U + 7, i],
            pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, kn,
        )  # fmt: skip


@inline_kernel
def record_done(qi, qf, ctr, cnt, hist, lat_sum, i, ft, end):
    cnt[COMPLETED] += 1
    if qi[Q_WIN, i] >= 0:
        cnt[COMPLETED_M] += 1
        hist_add(hist, H_TTFT, ft - qf[Q_ARR, i])
        hist_add(hist, H_E2E, end - qf[Q_ARR, i])
        lat_sum[H_TTFT] += ft - qf[Q_ARR, i]
        lat_sum[H_E2E] += end - qf[Q_ARR, i]
    free_request(qi, ctr, i)


@inline_kernel
def first_token(wi, wf, qi, qf, ctr, cal, pr, i, fin, s):
    """The KV transfer of ``i`` ended at ``fin`` (in step ``s``): decide its fate and
    start decoding. Returns OUT_SUCCESS when a success was charged, else NO_OUTCOME."""
    ft = fin + pr.tpot
    end = fin + qf[Q_OUT, i] * pr.tpot
    deadline = qf[Q_ARR, i] + pr.timeout
    qf[Q_T, i] = ft
    qf[Q_END, i] = end
    if pr.scope != SCOPE_QUEUE and ft > deadline:
        qi[Q_STATE, i] = FTWAIT  # first token too late: it times out at its deadline
        return NO_OUTCOME
    qi[Q_STATE, i] = DEC
    d = qi[Q_D, i]
    wi[W_DEC, d] += 1
    wf[W_BUSY, d] = wi[W_DEC, d] / pr.slots  # the compute busy fraction, kept current
    charged = NO_OUTCOME
    if pr.scope != SCOPE_E2E or end <= deadline:
        charge_success(wf, qi, i)
        charged = OUT_SUCCESS
    # its decode end's step: the first whose t1 = (k + 1) * dt exceeds it, and at least
    # the next (this step's decode ends are done)
    k = int(end / pr.dt)
    while end >= (k + 1) * pr.dt:
        k += 1
    while k > 0 and end < k * pr.dt:
        k -= 1
    cal_push(cal, qi, i, max(k, s + 1))
    ctr[N_DEC] += 1
    return charged


@inline_kernel
def prefill_done(
    wi, wf, count, base, g_min, g_dirty, qi, qf, ctr, cnt, win, ts, hist, lat_sum, pr, pod, i, t, w
):
    """Prefill of ``i`` ended at ``t``: finish it (prefill-only), time it out, or route it
    to a decode worker. Returns an OUT_* kind, NO_OUTCOME, or, for a policy with hooks
    (which :func:`advance` asks), NEEDS_DECODE."""
    p = qi[Q_P, i]
    if pr.scope != SCOPE_QUEUE and t > qf[Q_ARR, i] + pr.timeout:
        add_count(count, g_dirty, pr, pod, p, -1)
        resolve_bad(wf, qi, ctr, cnt, win, ts, pod, i, True, w)
        return OUT_TIMEOUT
    if pr.n_prefill == pr.n_workers:  # prefill-only model: done when prefill ends
        add_count(count, g_dirty, pr, pod, p, -1)
        charge_success(wf, qi, i)
        record_done(qi, qf, ctr, cnt, hist, lat_sum, i, t, t)
        return OUT_SUCCESS
    if pr.hooks:
        qf[Q_TD, i] = t
        return NEEDS_DECODE
    d = choose(
        count, base, g_min, g_dirty, pr, pod, 1, pr.n_prefill, pr.n_workers, pr.decode_load_scale,
        pod[p], qi[Q_TIE, i],
    )  # fmt: skip
    return to_decode(wi, wf, count, g_dirty, qi, qf, ctr, cnt, win, ts, pr, pod, i, d, t, w)


@inline_kernel
def to_decode(wi, wf, count, g_dirty, qi, qf, ctr, cnt, win, ts, pr, pod, i, d, t, w):
    """Send ``i`` (prefill ended at ``t``) to decode worker ``d``: reserve a slot and start
    its KV transfer, or queue it for a slot. Returns an OUT_* kind or NO_OUTCOME."""
    p = qi[Q_P, i]
    cnt[DECISIONS] += 1
    ts[TS_ROUTED, w, pod[d]] += 1
    qi[Q_D, i] = d
    if pr.hooks:
        qi[Q_RIF_D, i] = count[d]
    if wi[W_DOWN, d] != 0:  # sent to a worker that is down: fails at once
        add_count(count, g_dirty, pr, pod, p, -1)
        resolve_bad(wf, qi, ctr, cnt, win, ts, pod, i, False, w)
        return OUT_FAILURE
    add_count(count, g_dirty, pr, pod, d, +1)
    if wi[W_HEAD, d] < 0 and wi[W_SLOTS, d] < pr.slots:
        wi[W_SLOTS, d] += 1
        start_tx(wi, qi, qf, ctr, pr, i, t)
    elif pr.scope == SCOPE_QUEUE and t > qf[Q_ARR, i] + pr.timeout:
        add_count(count, g_dirty, pr, pod, d, -1)
        add_count(count, g_dirty, pr, pod, p, -1)
        resolve_bad(wf, qi, ctr, cnt, win, ts, pod, i, True, w)
        return OUT_TIMEOUT
    else:
        qi[Q_STATE, i] = DWAIT
        qf[Q_T, i] = t
        fifo_push(wi, qi, d, i)
    return NO_OUTCOME


@inline_kernel
def arrive(
    wi, wf, count, base, g_min, g_dirty, qi, qf, ctr, cnt, win, ts, dl_i, dl_t, pr, pod,
    a, prompt, out, ing, tie_p, tie_d, w, pcal, s,
):  # fmt: skip
    """A request arrives at ``a``: take a pool place, count it, queue its deadline, and
    route it to a prefill worker (a policy with hooks: :func:`advance` does that).
    Returns its place."""
    n = ctr[N_FREE] - 1
    i = qi[FREE_IDS, n]
    ctr[N_FREE] = n
    seq = ctr[SEQ]
    ctr[SEQ] = seq + 1
    qi[Q_SEQ, i] = seq
    qi[Q_ING, i] = ing
    qi[Q_TIE, i] = tie_d
    qi[Q_D, i] = -1
    qf[Q_ARR, i] = a
    qf[Q_PROMPT, i] = prompt
    qf[Q_OUT, i] = out
    qf[Q_T, i] = a
    cnt[ARRIVED] += 1
    qi[Q_WIN, i] = -1
    if pr.warmup <= a < pr.measure_end:
        wa = min(int(a / pr.window), win.shape[1] - 1)
        qi[Q_WIN, i] = wa
        win[WIN_ARR, wa] += 1
        cnt[ARRIVED_M] += 1
    k = ctr[DL_HEAD] + ctr[DL_LEN]  # deadline ring, in arrival order
    if k >= dl_t.size:  # (a wrap-around without an integer division)
        k -= dl_t.size
    dl_i[EV_ID, k] = i
    dl_i[EV_SEQ, k] = seq
    dl_t[k] = a + pr.timeout
    ctr[DL_LEN] += 1
    if not pr.hooks:
        p = choose(
            count, base, g_min, g_dirty, pr, pod, 0, 0, pr.n_prefill, pr.prefill_load_scale, ing,
            tie_p,
        )  # fmt: skip
        to_prefill(wi, wf, count, g_dirty, qi, qf, ctr, cnt, win, ts, pr, pod, i, p, w, pcal, s)
    return i


@inline_kernel
def to_prefill(wi, wf, count, g_dirty, qi, qf, ctr, cnt, win, ts, pr, pod, i, p, w, pcal, s):
    """Queue ``i`` at prefill worker ``p``. Returns OUT_FAILURE if ``p`` is down."""
    cnt[DECISIONS] += 1
    ts[TS_ROUTED, w, pod[p]] += 1
    qi[Q_P, i] = p
    if pr.hooks:
        qi[Q_RIF_P, i] = count[p]
    if wi[W_DOWN, p] != 0:
        resolve_bad(wf, qi, ctr, cnt, win, ts, pod, i, False, w)
        return OUT_FAILURE
    qi[Q_STATE, i] = PQ
    add_count(count, g_dirty, pr, pod, p, +1)
    fifo_push(wi, qi, p, i)
    if wi[W_HEAD, p] == i:  # p was idle: i starts now, at its arrival
        pcal_push(pcal, wi, p, end_step(begin_head(wi, wf, qi, qf, pr, p, qf[Q_T, i]), pr.dt, s))
    return NO_OUTCOME


@inline_kernel
def end_step(t, dt, s):
    """The step a prefill ending at ``t`` completes in, at least ``s``: the first ``k``
    with ``t <= (k + 1) * dt``, the test a step's service makes against its ``t1``."""
    k = int(t / dt)
    while t > (k + 1) * dt:
        k += 1
    while k > s and t <= k * dt:
        k -= 1
    return max(k, s)


@inline_kernel
def begin_head(wi, wf, qi, qf, pr, p, t):
    """Prefill worker ``p``'s FIFO head (if any) starts at ``max(t, when it joined)``;
    returns when it ends (``inf`` without one). Service is exact in continuous time:
    the end is known when it starts (the prefill rate is fixed)."""
    i = wi[W_HEAD, p]
    if i < 0 or wi[W_DOWN, p] != 0:
        wf[W_HSTART, p] = np.inf
        return np.inf
    start = max(t, qf[Q_T, i])
    wf[W_HSTART, p] = start
    fin = start + qf[Q_PROMPT, i] / pr.prefill_rate
    qf[Q_END, i] = fin
    return fin


@kernel
def serve_due(wi, wf, qi, qf, pcal, pr, s, t0, t1):
    """Buffer the prefill ends of step ``s``; return how many.

    Only the workers in step ``s``'s bucket of the prefill-end calendar are visited (an
    idle or busy worker whose head ends later costs nothing): each ends its head, starts
    the next (which may end within the step too), and waits in the bucket of its new
    head's end. Ends are buffered worker by worker; :func:`sort_ends` orders them.
    """
    nbuf = 0
    p = pcal[s & (pcal.size - 1)]
    while p >= 0:
        nxt = wi[W_PNEXT, p]
        if wi[W_PCAL, p] == s:  # (a bucket also holds ends of later laps of the ring)
            pcal_remove(pcal, wi, p)
            i = wi[W_HEAD, p]
            fin = qf[Q_END, i]
            while fin <= t1:
                add_busy(wi, wf, p, s, fin - max(t0, wf[W_HSTART, p]))
                fifo_remove(wi, qi, p, i)
                qf[BUF_T, nbuf] = fin
                qi[BUF_ID, nbuf] = i
                nbuf += 1
                i = wi[W_HEAD, p]
                fin = begin_head(wi, wf, qi, qf, pr, p, fin)
            if fin < np.inf:
                pcal_push(pcal, wi, p, end_step(fin, pr.dt, s + 1))
        p = nxt
    return nbuf


@kernel
def prefill_busy(wi, wf, pr, s, t0, t1, busy):
    """Every prefill worker's busy fraction of step ``s``, ``[t0, t1)``, into ``busy``:
    the time of the heads that left in the step plus the current head's since it
    started (vectorised: one pass). Only a reader pays for it: the price (into
    ``wf[W_BUSY]``) or the trace (into its next step's row)."""
    acc, stamp = wf[W_ACC, : pr.n_prefill], wi[W_ASTEP, : pr.n_prefill]
    hs = wf[W_HSTART, : pr.n_prefill]
    for p in range(pr.n_prefill):
        a = acc[p] if stamp[p] == s else 0.0
        busy[p] = (a + max(0.0, t1 - max(t0, hs[p]))) / pr.dt


@kernel
def advance_transfers(wi, qi, qf, ctr, pr, pod, f_now, t0, t1):
    """Advance every KV transfer over the step; return how many ended (in the buffer)."""
    nbuf = 0
    for k in range(ctr[N_TX]):
        p = qi[TX_P, k]
        d = qi[TX_D, k]
        rate = min(pr.bw0 * f_now[pod[p]] / wi[W_NTX, p], pr.bw0 * f_now[pod[d]] / wi[W_NTX, d])
        start = max(t0, qf[TX_T, k])
        avail = t1 - start
        rem = qf[TX_REM, k]
        if rem <= rate * avail:
            qf[BUF_T, nbuf] = start + rem / rate
            qi[BUF_ID, nbuf] = qi[TX_IDS, k]
            nbuf += 1
        else:
            qf[TX_REM, k] = rem - rate * avail
    return nbuf


@kernel
def sort_buffer(qi, qf, nbuf):
    """Sort the buffered (time, id) events by time, in place and stably (ties keep
    buffer order).

    A step buffers a few dozen events, in runs already sorted (one run per worker), so
    an insertion sort wins over an argsort that allocates three arrays twice per step.
    """
    if nbuf > 256:  # large clusters: O(n) expected, the same order as a stable argsort
        t = qf[BUF_T, :nbuf]
        lo, hi = np.inf, -np.inf
        for k in range(nbuf):
            lo = min(lo, t[k])
            hi = max(hi, t[k])
        order, ids, tf = qi[BUF_ORD, :nbuf], qi[BUF_ID, :nbuf], qf[BUF_TF, :nbuf]
        bucket_order_into(t, lo, hi, order, qi[BUF_AUX])
        aux = qi[BUF_AUX, :nbuf]
        for k in range(nbuf):
            aux[k] = ids[order[k]]
            tf[k] = t[order[k]]
        for k in range(nbuf):
            ids[k] = aux[k]
            t[k] = tf[k]
        return
    for k in range(1, nbuf):
        t = qf[BUF_T, k]
        i = qi[BUF_ID, k]
        m = k
        while m > 0 and qf[BUF_T, m - 1] > t:
            qf[BUF_T, m] = qf[BUF_T, m - 1]
            qi[BUF_ID, m] = qi[BUF_ID, m - 1]
            m -= 1
        qf[BUF_T, m] = t
        qi[BUF_ID, m] = i


@kernel
def take_due(cal, qi, qf, s):
    """Move the decode ends of step ``s`` from its bucket to the buffer; return how many.
    (A bucket also holds ends of later laps of the ring: those stay.)"""
    nbuf = 0
    i = cal[s & (cal.size - 1)]
    while i >= 0:
        nxt = qi[Q_NEXT, i]
        if qi[Q_CAL, i] == s:
            cal_remove(cal, qi, i)
            qf[BUF_T, nbuf] = qf[Q_END, i]
            qi[BUF_ID, nbuf] = i
            nbuf += 1
        i = nxt
    return nbuf


@kernel
def sort_ends(qi, qf, nbuf, key):
    """Order the buffered events by (time, ``qi[key]``): stable, so equal keys keep
    buffer order (prefill ends: by worker, as a pass over workers in index order)."""
    sort_buffer(qi, qf, nbuf)
    k = 0
    while k < nbuf:  # equal times (rare): by key
        m = k + 1
        while m < nbuf and qf[BUF_T, m] == qf[BUF_T, k]:
            m += 1
        for a in range(k + 1, m):
            i = qi[BUF_ID, a]
            b = a
            while b > k and qi[key, qi[BUF_ID, b - 1]] > qi[key, i]:
                qi[BUF_ID, b] = qi[BUF_ID, b - 1]
                b -= 1
            qi[BUF_ID, b] = i
        k = m


@inline_kernel
def held_by(qi, i, x):
    """Does request ``i`` hold worker ``x`` (queued, transferring or decoding there)?"""
    q = qi[Q_STATE, i]
    on_p = qi[Q_P, i] == x and (q == PQ or q == DWAIT or q == TX)
    return q != FREE and (on_p or (qi[Q_D, i] == x and q >= DWAIT))


@kernel
def is_late(wi, wf, qi, qf, pr, i, t, t1):
    """Has request ``i`` missed the deadline ``t`` (in the step ending at ``t1``) under
    ``sim.timeout_scope``?"""
    s = qi[Q_STATE, i]
    if pr.scope == SCOPE_QUEUE:  # only waiting counts; what is in service finishes
        if s == PQ:  # in service: its worker's head, started within the step or before
            p = qi[Q_P, i]
            return not (wi[W_HEAD, p] == i and wf[W_HSTART, p] < t1)
        return s == DWAIT
    if pr.scope == SCOPE_E2E:
        return s != DEC or qf[Q_END, i] > t
    return s != DEC


@kernel
def check_invariants(wi, wf, load, qi, qf, ctr, cnt, pr, s):
    """Conservation and non-negativity; the first violating step is kept in ``ctr``."""
    in_flight = qi.shape[1] - ctr[N_FREE]
    ok = cnt[ARRIVED] == cnt[COMPLETED] + cnt[TIMED_OUT] + cnt[FAILED] + in_flight
    count, ntx = wi[W_CHK], wi[W_CHKTX]  # recount what every worker holds
    count[:] = 0
    ntx[:] = 0
    n_active = 0
    for i in range(qi.shape[1]):
        q = qi[Q_STATE, i]
        if q == FREE:
            continue
        n_active += 1
        if q == PQ or q == DWAIT or q == TX:
            count[qi[Q_P, i]] += 1
        if q >= DWAIT:
            count[qi[Q_D, i]] += 1
        if q == TX:
            ntx[qi[Q_P, i]] += 1
            ntx[qi[Q_D, i]] += 1
        if q == TX and qf[TX_REM, qi[Q_TXPOS, i]] < 0.0:
            ok = False
    n_dec = 0
    for i in range(qi.shape[1]):
        n_dec += qi[Q_STATE, i] == DEC
    ok = ok and n_active == in_flight and n_dec == ctr[N_DEC]  # every decode in the calendar
    for j in range(pr.n_workers):
        ok = ok and load[j] == count[j] and wi[W_NTX, j] == ntx[j]
        ok = ok and 0 <= wi[W_SLOTS, j] <= pr.slots and 0 <= wi[W_DEC, j] <= wi[W_SLOTS, j]
    for p in range(pr.n_prefill):  # a head (and only a head) waits for a later step's end
        has = wi[W_HEAD, p] >= 0
        ok = ok and has == (wi[W_PCAL, p] > s) and has == (wf[W_HSTART, p] < np.inf)
    count[:] = 0  # the scratch left as an unchecked run leaves it: a check changes no state
    ntx[:] = 0
    if not ok:
        ctr[ERR] += 1
        if ctr[ERR_STEP] < 0:
            ctr[ERR_STEP] = s


@inline_kernel
def set_truth(wi, health, pr, pod, f_now, j):
    """Worker ``j``'s true health (1: its pod's factor below ``health.threshold``, or it
    is down) into ``health``; returns whether it changed."""
    bad = 1.0 if f_now[pod[j]] < pr.threshold or wi[W_DOWN, j] != 0 else 0.0
    if bad == health[j]:
        return False
    health[j] = bad
    return True


@kernel
def true_health(wi, health, pr, pod, f_now, f_prev, every, fault_ids):
    """The true unhealthy set at the step start (the oracle's); returns whether any
    worker's value changed.

    ``every``: recompute every worker (the first step of a call, where the factors of
    the step before are not at hand). Otherwise only the workers of pods whose factor
    crossed the threshold since ``f_prev``, and those that can go down: every other
    worker keeps its last step's value, so the values are the same as from a pass over
    every worker, at O(pods + faults) a step instead of O(workers).
    """
    moved = False
    if every:
        for j in range(pr.n_workers):
            if set_truth(wi, health, pr, pod, f_now, j):
                moved = True
        return moved
    kp = pr.n_prefill // pr.n_pods
    kd = (pr.n_workers - pr.n_prefill) // pr.n_pods
    for q in range(pr.n_pods):
        if (f_now[q] < pr.threshold) == (f_prev[q] < pr.threshold):
            continue
        for j in range(q * kp, (q + 1) * kp):
            if set_truth(wi, health, pr, pod, f_now, j):
                moved = True
        for j in range(pr.n_prefill + q * kd, pr.n_prefill + (q + 1) * kd):
            if set_truth(wi, health, pr, pod, f_now, j):
                moved = True
    for k in range(fault_ids.size):
        if set_truth(wi, health, pr, pod, f_now, fault_ids[k]):
            moved = True
    return moved


@kernel
def advance(
    wi,
    wf,
    count,
    base,
    g_min,
    g_dirty,
    qi,
    qf,
    dl_i,
    dl_t,
    cal,
    ctr,
    cnt,
    win,
    ts,
    ts_price,
    hist,
    lat_sum,
    pcal,
    pw_i,
    pw_f,
    pg_i,
    pg_f,
    pr,
    kn,
    pod,
    pod_n,
    s0,
    s1,
    arrival,
    prompt,
    output,
    ingress,
    tie_p,
    tie_d,
    u,
    f_true,
    f_obs,
    labels,
    fault_ids,
    down_start,
    down_end,
    u_tick,
    tick0,
    health,
    pod_sum,
    tr_s,
    tr_e,
    tr_n,
):
    """Advance one scheduler from step ``s0`` to ``s1``; return the arrivals consumed.

    The first 23 arguments are the fields of a :class:`~.structs.State`; ``kn``: the
    policy's knobs. ``arrival`` ... ``u``: the block's requests (``u``: their policy
    draws, ``[n, N_U]``). ``f_true`` and ``f_obs``: ``[s1 - s0, n_pods]`` true and
    observed factors; ``labels``: ``[n_refresh, n_workers]``; ``u_tick``: the policy's
    timer draws, row ``k - tick0`` for tick ``k``; ``health`` and ``pod_sum`` are scratch.
    ``tr_s``, ``tr_e``, ``tr_n``: the trace (:mod:`.trace`), written if ``pr.tracing``.
    """
    n_req = arrival.size
    nxt = 0
    n_win = win.shape[1]
    for s in range(s0, s1):
        t0 = s * pr.dt
        t1 = (s + 1) * pr.dt
        w = min(int(t0 / pr.window), n_win - 1)
        f_now = f_true[s - s0]
        # 1. hard faults: the worker fails all it holds
        for k in range(fault_ids.size):
            x = fault_ids[k]
            down = 1 if down_start[x] <= t0 < down_end[x] else 0
            if down == wi[W_DOWN, x]:
                continue
            wi[W_DOWN, x] = down
            if down:
                # what it holds fails in arrival order, not in pool order, so results do
                # not depend on how the pool grew. The set is fixed before any detach:
                # detaching one request can only start another's transfer, and that one
                # still holds x
                m = 0
                for i in range(qi.shape[1]):
                    if held_by(qi, i, x):
                        qi[BUF_ID, m] = i
                        qf[BUF_T, m] = qi[Q_SEQ, i]
                        m += 1
                sort_buffer(qi, qf, m)
                for c in range(m):
                    i = qi[BUF_ID, c]
                    detach(
                        wi, wf, count, g_dirty, qi, qf, ctr, cal, pcal, pr, pod, i, t0, s,
                        t0,
                    )  # fmt: skip
                    resolve_bad(wf, qi, ctr, cnt, win, ts, pod, i, False, w)
                    if pr.hooks:
                        charge_policy(
                            pr, pod, wf, base, g_dirty, health, qi, qf, pw_i, pw_f, pg_i,
                            kn, i, OUT_FAILURE, t0, tr_e, tr_n,
                        )  # fmt: skip
        # 2. prices and base scores
        moved = False  # did any health value (or, below, a policy term) change this step?
        if pr.health == HEALTH_TRUTH:
            f_prev = f_true[s - s0 - 1] if s > s0 else f_now  # s0: every worker anew
            moved = true_health(wi, health, pr, pod, f_now, f_prev, s == s0, fault_ids)
        elif pr.health == HEALTH_LABELS:
            r = min(int(t0 / pr.refresh), labels.shape[0] - 1)
            if r != ctr[LABEL_ROW]:  # labels change at refreshes only
                ctr[LABEL_ROW] = r
                moved = True
                for j in range(pr.n_workers):
                    health[j] = labels[r, j]
        # HEALTH_OFF: health stays all 0 (the engine's scratch starts at 0)
        f_price = f_now if pr.true_bw else f_obs[s - s0]
        if pr.tracing:
            trace_step(tr_s, tr_n, s, t0, wi, qi, wf, count, health, f_price, pr)
        if pr.hooks:  # the policy's timers, before the step's base scores
            if policy_refresh(
                pr, t0, wi, qi, wf, count, base, g_dirty, pod, health, pw_i, pw_f, pg_i, pg_f, kn,
                ctr, u_tick, tick0,
            ):  # fmt: skip
                moved = True
        # without the price a base is lambda_f * health + the policy's term, which moves
        # only where the policy rebases it itself (common.rebase) or its timers say so
        if pr.price_on or moved:
            update_prices(wf, base, g_dirty, pr, pod, pod_n, f_price, health, pod_sum, pw_f)
        if pr.price_on:
            for q in range(pr.n_pods):  # the blend keeps pod means: mean pi = mean raw price
                ts_price[w, q] += pod_sum[q]
        # 3. decode ends free their slots
        nbuf = take_due(cal, qi, qf, s)
        if nbuf > 0:
            ctr[N_DEC] -= nbuf
            sort_ends(qi, qf, nbuf, Q_SEQ)  # the order a heap of decode ends pops
            for k in range(nbuf):
                i = qi[BUF_ID, k]
                end = qf[BUF_T, k]
                d = qi[Q_D, i]
                record_done(qi, qf, ctr, cnt, hist, lat_sum, i, qf[Q_T, i], end)
                release_slot(wi, wf, count, g_dirty, qi, qf, ctr, pr, pod, d, True, end)
        # 4. arrivals, routed one by one in arrival order
        while nxt < n_req and arrival[nxt] < t1:
            a = arrival[nxt]
            i = arrive(
                wi, wf, count, base, g_min, g_dirty, qi, qf, ctr, cnt, win, ts, dl_i, dl_t, pr,
                pod, a, prompt[nxt], output[nxt], ingress[nxt], tie_p[nxt], tie_d[nxt], w, pcal,
                s,
            )  # fmt: skip
            if pr.hooks:
                if pr.keep_draws:  # the decode decision's and the outcomes' draws, for later
                    for c in range(8):
                        qf[Q_U + c, i] = u[nxt, U_DECODE + c]
                p = policy_choose(
                    pr, 0, 0, pr.n_prefill, pr.prefill_load_scale, ingress[nxt], tie_p[nxt], a,
                    u[nxt, U_PREFILL], u[nxt, U_PREFILL + 1], u[nxt, U_PREFILL + 2],
                    u[nxt, U_PREFILL + 3], count, base, g_min, g_dirty, pod, wi, wf, health,
                    pw_i, pw_f, pg_i, pg_f, kn,
                )  # fmt: skip
                if pr.tracing:
                    trace_choice(
                        tr_e, tr_n, pr, count, wi, a, p, 0, ingress[nxt], tie_p[nxt],
                        u[nxt, U_PREFILL], u[nxt, U_PREFILL + 1], u[nxt, U_PREFILL + 2],
                        u[nxt, U_PREFILL + 3],
                    )  # fmt: skip
                policy_routed(pr, p, pg_i, kn)
                if (
                    to_prefill(
                        wi,
                        wf,
                        count,
                        g_dirty,
                        qi,
                        qf,
                        ctr,
                        cnt,
                        win,
                        ts,
                        pr,
                        pod,
                        i,
                        p,
                        w,
                        pcal,
                        s,
                    )  # fmt: skip
                    >= 0
                ):
                    charge_policy(
                        pr, pod, wf, base, g_dirty, health, qi, qf, pw_i, pw_f, pg_i, kn, i,
                        OUT_FAILURE, a, tr_e, tr_n,
                    )  # fmt: skip
            nxt += 1
        # 5. prefill service, then decode routing in order of prefill end
        nbuf = serve_due(wi, wf, qi, qf, pcal, pr, s, t0, t1)
        if nbuf > 0:
            sort_ends(qi, qf, nbuf, Q_P)
            for k in range(nbuf):
                i = qi[BUF_ID, k]
                t = qf[BUF_T, k]
                got = prefill_done(
                    wi, wf, count, base, g_min, g_dirty, qi, qf, ctr, cnt, win, ts, hist, lat_sum,
                    pr, pod, i, t, w,
                )  # fmt: skip
                if got == NEEDS_DECODE:  # only a policy with hooks asks
                    d = policy_choose(
                        pr, 1, pr.n_prefill, pr.n_workers, pr.decode_load_scale, pod[qi[Q_P, i]],
                        qi[Q_TIE, i], t, qf[Q_U, i], qf[Q_U + 1, i], qf[Q_U + 2, i],
                        qf[Q_U + 3, i], count, base, g_min, g_dirty, pod, wi, wf, health,
                        pw_i, pw_f, pg_i, pg_f, kn,
                    )  # fmt: skip
                    if pr.tracing:
                        trace_choice(
                            tr_e, tr_n, pr, count, wi, t, d, 1, pod[qi[Q_P, i]], qi[Q_TIE, i],
                            qf[Q_U, i], qf[Q_U + 1, i], qf[Q_U + 2, i], qf[Q_U + 3, i],
                        )  # fmt: skip
                    policy_routed(pr, d, pg_i, kn)
                    got = to_decode(
                        wi, wf, count, g_dirty, qi, qf, ctr, cnt, win, ts, pr, pod, i, d, t, w
                    )
                if pr.hooks and got >= 0:
                    charge_policy(
                        pr, pod, wf, base, g_dirty, health, qi, qf, pw_i, pw_f, pg_i, kn, i, got,
                        t, tr_e, tr_n,
                    )  # fmt: skip
        # 6. KV transfers
        nbuf = advance_transfers(wi, qi, qf, ctr, pr, pod, f_now, t0, t1)
        if nbuf > 0:
            sort_buffer(qi, qf, nbuf)
            for k in range(nbuf):
                i = qi[BUF_ID, k]
                tx_remove(wi, qi, qf, ctr, i)
                add_count(count, g_dirty, pr, pod, qi[Q_P, i], -1)  # the KV left the prefill worker
                fin = qf[BUF_T, k]
                got = first_token(wi, wf, qi, qf, ctr, cal, pr, i, fin, s)
                if pr.hooks and got >= 0:
                    charge_policy(
                        pr, pod, wf, base, g_dirty, health, qi, qf, pw_i, pw_f, pg_i, kn, i, got,
                        fin, tr_e, tr_n,
                    )  # fmt: skip
        # 7. deadlines, in arrival order
        while ctr[DL_LEN] > 0 and dl_t[ctr[DL_HEAD]] < t1:
            h = ctr[DL_HEAD]
            i = dl_i[EV_ID, h]
            seq = dl_i[EV_SEQ, h]
            t = dl_t[h]
            ctr[DL_HEAD] = h + 1 if h + 1 < dl_t.size else 0
            ctr[DL_LEN] -= 1
            if qi[Q_SEQ, i] == seq and is_late(wi, wf, qi, qf, pr, i, t, t1):
                detach(wi, wf, count, g_dirty, qi, qf, ctr, cal, pcal, pr, pod, i, t, s, t1)
                resolve_bad(wf, qi, ctr, cnt, win, ts, pod, i, True, w)
                if pr.hooks:
                    charge_policy(
                        pr, pod, wf, base, g_dirty, health, qi, qf, pw_i, pw_f, pg_i, kn, i,
                        OUT_TIMEOUT, t, tr_e, tr_n,
                    )  # fmt: skip
        if pr.price_on:
            prefill_busy(wi, wf, pr, s, t0, t1, wf[W_BUSY])
        elif pr.tracing and s + 1 < tr_s.shape[0]:  # what a router would observe next step
            o = 1 + S_BUSY * pr.n_workers
            prefill_busy(wi, wf, pr, s, t0, t1, tr_s[s + 1, o : o + pr.n_prefill])
        if pr.check:
            check_invariants(wi, wf, count, qi, qf, ctr, cnt, pr, s)
    return nxt
