"""Kernels on small hand-checkable cases: FIFO queues, the decode-end and prefill-end
calendars, prefill service, the heap, the scoring scans."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from otfr_vec import make_config
from otfr_vec.engine import make_params, make_scenario
from otfr_vec.kernels.containers import (
    cal_push,
    cal_remove,
    fifo_push,
    fifo_remove,
    heap_pop,
    heap_push,
    pcal_push,
    pcal_remove,
)
from otfr_vec.kernels.scoring import argmin_pods, argmin_score, pod_means, update_prices
from otfr_vec.kernels.step import (
    begin_head,
    end_step,
    prefill_busy,
    serve_due,
    take_due,
    true_health,
)
from otfr_vec.kernels.structs import (
    BUF_ID,
    BUF_T,
    EV_ID,
    N_QF,
    N_QI,
    N_WF,
    N_WI,
    PQ,
    Q_CAL,
    Q_END,
    Q_NEXT,
    Q_PROMPT,
    Q_STATE,
    Q_T,
    W_ACC,
    W_ASTEP,
    W_BUSY,
    W_DOWN,
    W_FAIL,
    W_HEAD,
    W_HSTART,
    W_OUTC,
    W_PCAL,
    W_PI,
    W_PNEXT,
    W_TAIL,
    W_TOUT,
    W_UTIL,
    new_state,
    params_record,
)


def _queue(wi, qi, w):
    out, i = [], wi[W_HEAD, w]
    while i >= 0:
        out.append(i)
        i = qi[Q_NEXT, i]
    return out


def test_fifo_push_remove_keeps_order():
    wi = np.full((N_WI, 2), -1, np.int64)
    qi = np.full((N_QI, 6), -1, np.int64)
    for i in (3, 1, 4, 0):
        fifo_push(wi, qi, 1, i)
    assert _queue(wi, qi, 1) == [3, 1, 4, 0]
    fifo_remove(wi, qi, 1, 4)  # middle
    fifo_remove(wi, qi, 1, 3)  # head
    assert _queue(wi, qi, 1) == [1, 0] and wi[W_TAIL, 1] == 0
    fifo_remove(wi, qi, 1, 0)  # tail
    fifo_remove(wi, qi, 1, 1)
    assert _queue(wi, qi, 1) == [] and wi[W_TAIL, 1] == -1
    assert _queue(wi, qi, 0) == []


def test_calendar_takes_each_step_its_own_ends_across_laps_of_the_ring():
    cal = np.full(4, -1, np.int64)  # 4 buckets: steps 1, 5 and 9 share one
    qi = np.full((N_QI, 8), -1, np.int64)
    qf = np.zeros((N_QF, 8))
    for i, step in [(0, 1), (1, 5), (2, 1), (3, 9), (4, 2), (5, 5)]:
        cal_push(cal, qi, i, step)
    cal_remove(cal, qi, 2)  # left early (a fault, an e2e timeout)
    taken = {}
    for s in range(10):
        n = take_due(cal, qi, qf, s)
        taken[s] = sorted(qi[BUF_ID, :n].tolist())
        assert all(qi[Q_CAL, i] == s for i in taken[s])
    assert taken == {0: [], 1: [0], 2: [4], 3: [], 4: [], 5: [1, 5], 6: [], 7: [], 8: [], 9: [3]}
    assert (cal == -1).all()  # every bucket empty again


@settings(deadline=None)  # the first example compiles the heap kernels when the cache is cold
@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=60))
def test_heap_pops_in_time_then_sequence_order(times):
    ht = np.zeros(len(times))
    hi = np.zeros((2, len(times)), np.int64)
    n = 0
    for s, t in enumerate(times):
        n = heap_push(ht, hi, n, t, 100 + s, s)
    got = []
    while n:
        got.append((ht[0], hi[EV_ID, 0] - 100))
        n = heap_pop(ht, hi, n)
    assert got == sorted((t, s) for s, t in enumerate(times))


def test_argmin_hand_case():
    count = np.array([3, 1, 1, 0], np.int64)
    base = np.array([0.0, 0.0, 0.25, 2.0])
    pod = np.array([0, 0, 1, 1])
    # scores from pod 0 (path 0.5 to pod 1): 3, 1, 1.75, 2.5 -> worker 1
    assert argmin_score(0, 4, count, 1.0, base, pod, 0, 0.5, 0) == 1
    # from pod 1 the path cost moves to pod 0: 3.5, 1.5, 1.25, 2.0 -> worker 2
    assert argmin_score(0, 4, count, 1.0, base, pod, 1, 0.5, 0) == 2


def test_ties_broken_by_seeded_start():
    count = np.zeros(6, np.int64)
    base = np.zeros(6)
    pod = np.zeros(6, np.int64)
    picks = {argmin_score(0, 6, count, 1.0, base, pod, 0, 0.0, s) for s in range(6)}
    assert picks == set(range(6))  # every tied worker can win, by the start offset


@settings(max_examples=300, deadline=None)
@given(
    n_pods=st.integers(1, 6),
    k=st.integers(1, 5),
    data=st.data(),
)
def test_incremental_argmin_matches_full_scan(n_pods, k, data):
    n = n_pods * k
    lo = data.draw(st.integers(0, 3))
    count = np.array(
        data.draw(st.lists(st.integers(0, 3), min_size=lo + n, max_size=lo + n)), np.int64
    )
    base = np.array(
        data.draw(
            st.lists(st.sampled_from([0.0, 0.25, 1.0, 1000.0]), min_size=lo + n, max_size=lo + n)
        )
    )
    pod = np.concatenate([np.zeros(lo, np.int64), np.repeat(np.arange(n_pods), k)])
    home = data.draw(st.integers(0, n_pods - 1))
    path = data.draw(st.sampled_from([0.0, 0.1, 1.0]))
    g_min = np.zeros((2, n_pods))
    g_dirty = np.ones((2, n_pods), np.int64)
    for start in data.draw(st.lists(st.integers(0, 10**6), min_size=1, max_size=5)):
        full = argmin_score(lo, lo + n, count, 0.5, base, pod, home, path, start)
        inc = argmin_pods(
            g_min, g_dirty, 1, lo, k, n_pods, count, 0.5, base, pod, home, path, start
        )
        assert inc == full
        count[full] += 1  # a router's update between decisions
        g_dirty[1, pod[full]] = 1


def test_pod_means_hand_case():
    # 5 pods (one chunk of four, one left over), 2 prefill + 1 decode worker each:
    # workers 0-9 prefill (pod = j // 2), 10-14 decode (pod = j - 10)
    pi = np.arange(15.0)
    out = np.zeros(5)
    pod_means(pi, 5, 10, 2, 1, np.full(5, 3.0), out)
    assert out.tolist() == [(0 + 1 + 10) / 3, (2 + 3 + 11) / 3, (4 + 5 + 12) / 3,
                            (6 + 7 + 13) / 3, (8 + 9 + 14) / 3]  # fmt: skip


def _price_params(pods, per_pod, prefill):
    cfg = make_config(
        [f"cluster.pods={pods}", f"cluster.workers_per_pod={per_pod}"]
        + [f"cluster.prefill_fraction={prefill}", "schedulers=[fault_aware_otfr]"]
        + ["telemetry.mode=direct"]  # every term of the price non-zero (beta > 0)
    )
    return params_record(make_params(cfg, "fault_aware_otfr", make_scenario(cfg)))


@settings(max_examples=40, deadline=None)
@given(
    pods=st.integers(1, 9),
    shape=st.sampled_from([(2, 0.5), (3, 1 / 3), (4, 0.25), (5, 0.6), (3, 1.0), (1, 1.0)]),
    seed=st.integers(0, 2**32 - 1),
)
def test_update_prices_is_the_per_worker_formula_in_worker_order(pods, shape, seed):
    """The price of every worker as the model defines it, summed per pod in worker
    order, whatever the layout (pods in fours and a remainder, prefill-only clusters)."""
    pr = _price_params(pods, *shape)
    n, g = pr.n_workers, np.random.default_rng(seed)
    pod = np.concatenate([np.repeat(np.arange(pods), pr.n_prefill // pods),
                          np.repeat(np.arange(pods), (n - pr.n_prefill) // pods)])  # fmt: skip
    wf = np.zeros((N_WF, n))
    for row in (W_BUSY, W_UTIL, W_TOUT, W_FAIL, W_OUTC, W_PI):
        wf[row] = g.exponential(1.0, n) * (g.random(n) < 0.7)
    f = np.where(g.random(pods) < 0.5, g.random(pods), 1.0)
    health = (g.random(n) < 0.3).astype(float)
    pod_n = np.bincount(pod, minlength=pods).astype(float)
    want, d = wf.copy(), pr.decay
    raw, sums = np.zeros(n), [0.0] * pods
    for j in range(n):  # the model's formula, one worker at a time (as otfr_vec.reference)
        want[W_UTIL, j] = d * want[W_UTIL, j] + (1.0 - d) * want[W_BUSY, j]
        for row in (W_TOUT, W_FAIL, W_OUTC):
            want[row, j] *= d
        inv = 1.0 / (want[W_OUTC, j] + 1.0)
        raw[j] = (
            pr.alpha * want[W_UTIL, j]
            + pr.beta * (1.0 - f[pod[j]])
            + pr.gamma * want[W_TOUT, j] * inv
            + pr.eta * want[W_FAIL, j] * inv
        )
        sums[pod[j]] += raw[j]
    means = [sums[q] / pod_n[q] for q in range(pods)]
    want[W_PI] = [(1.0 - pr.kappa) * raw[j] + pr.kappa * means[pod[j]] for j in range(n)]
    base, pod_sum = np.zeros(n), np.zeros(pods)
    g_dirty = np.zeros((2, 1 + 8), np.int64)
    update_prices(wf, base, g_dirty, pr, pod, pod_n, f, health, pod_sum, np.zeros((1, n)))
    assert np.array_equal(wf, want)  # bit for bit
    assert pod_sum.tolist() == means
    assert base.tolist() == [
        pr.lambda_f * health[j] + pr.lambda_r * want[W_PI, j] for j in range(n)
    ]


@settings(max_examples=30, deadline=None)
@given(pods=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_true_health_step_by_step_equals_a_pass_over_every_worker(pods, seed):
    """The oracle's health updated only where a pod's factor crossed the threshold or a
    worker can go down gives, step after step, what a pass over every worker gives."""
    pr = _price_params(pods, 4, 0.5)
    n, g = pr.n_workers, np.random.default_rng(seed)
    pod = np.concatenate([np.repeat(np.arange(pods), 2), np.repeat(np.arange(pods), 2)])
    faults = np.sort(g.choice(n, size=min(n, 3), replace=False)).astype(np.int64)
    f = g.choice([0.05, 0.5, 1.0], size=(40, pods))  # around the threshold, both ways
    wi = np.zeros((N_WI, n), np.int64)
    step, full = np.zeros(n), np.zeros(n)
    changes = 0
    for s in range(f.shape[0]):
        wi[W_DOWN, faults] = g.random(faults.size) < 0.3
        before = step.copy()
        prev = f[s - 1] if s % 10 else f[s]  # a call of 10 steps: its first step sees all
        moved = true_health(wi, step, pr, pod, f[s], prev, s % 10 == 0, faults)
        true_health(wi, full, pr, pod, f[s], f[s], True, faults)
        assert step.tolist() == full.tolist()
        assert moved == (step.tolist() != before.tolist())
        changes += moved
    assert changes > 0  # the case exercised changes of the set


def test_prefill_calendar_holds_workers_across_laps_and_removes_them():
    pcal = np.full(4, -1, np.int64)  # steps 1 and 5 share a bucket
    wi = np.full((N_WI, 6), -1, np.int64)
    for p, step in [(0, 1), (1, 5), (2, 1), (3, 2)]:
        pcal_push(pcal, wi, p, step)
    pcal_remove(pcal, wi, 2)
    pcal_remove(pcal, wi, 4)  # in no bucket: nothing to do
    assert wi[W_PCAL, 2] == -1 and wi[W_PCAL, 1] == 5
    b1 = []
    p = pcal[1]
    while p >= 0:
        b1.append(p)
        p = wi[W_PNEXT, p]
    assert sorted(b1) == [0, 1] and pcal[2] == 3


def _prefill_case(*overrides):
    """One prefill worker's state (1000 tokens/s, 10 ms steps) and its kernel params."""
    cfg = make_config(
        ["cluster.pods=1", "cluster.workers_per_pod=2", "service.prefill_tokens_per_s=1000",
         "sim.dt=0.01", *overrides]
    )  # fmt: skip
    pr = params_record(make_params(cfg, "lc", make_scenario(cfg)))
    return new_state(2, 1, 4, 8, cal_size=4), pr


def _queue_at(st, pr, p, i, a, prompt, s):
    st.qf[Q_T, i] = a
    st.qf[Q_PROMPT, i] = prompt
    st.qi[Q_STATE, i] = PQ
    fifo_push(st.wi, st.qi, p, i)
    if st.wi[W_HEAD, p] == i:
        fin = begin_head(st.wi, st.wf, st.qi, st.qf, pr, p, a)
        pcal_push(st.pcal, st.wi, p, end_step(fin, pr.dt, s))


def _busy(st, pr, s):
    prefill_busy(st.wi, st.wf, pr, s, s * pr.dt, (s + 1) * pr.dt, st.wf[W_BUSY])


def test_prefill_ends_hand_case():
    """A (25 tokens at 0 s) ends at 0.025 s in step 2; B (3 tokens, queued at 0.005 s)
    starts then and ends at 0.028 s, in the same step; C (20 tokens, at 0.029 s) starts
    at once and ends at 0.049 s, in step 4. Busy in step 2: 0.5 (A) + 0.3 (B) + 0.1 (C)."""
    st, pr = _prefill_case()
    _queue_at(st, pr, 0, 0, 0.0, 25.0, 0)  # A
    _queue_at(st, pr, 0, 1, 0.005, 3.0, 0)  # B
    assert st.wi[W_PCAL, 0] == 2 and st.qf[Q_END, 0] == 0.025
    for s in range(2):
        t0, t1 = s * pr.dt, (s + 1) * pr.dt
        assert serve_due(st.wi, st.wf, st.qi, st.qf, st.pcal, pr, s, t0, t1) == 0
        _busy(st, pr, s)
        assert abs(st.wf[W_BUSY, 0] - 1.0) < 1e-12
    _queue_at(st, pr, 0, 2, 0.029, 20.0, 2)  # C arrives in step 2, behind A and B
    n = serve_due(st.wi, st.wf, st.qi, st.qf, st.pcal, pr, 2, 0.02, 0.03)
    assert n == 2 and st.qi[BUF_ID, :2].tolist() == [0, 1]
    assert np.allclose(st.qf[BUF_T, :2], [0.025, 0.028], rtol=0, atol=1e-15)
    assert st.wi[W_HEAD, 0] == 2 and st.wf[W_HSTART, 0] == 0.029 and st.wi[W_PCAL, 0] == 4
    _busy(st, pr, 2)
    assert abs(st.wf[W_BUSY, 0] - 0.9) < 1e-12
    assert st.wi[W_ASTEP, 0] == 2 and abs(st.wf[W_ACC, 0] - 0.008) < 1e-15  # A and B
    assert serve_due(st.wi, st.wf, st.qi, st.qf, st.pcal, pr, 3, 0.03, 0.04) == 0
    assert serve_due(st.wi, st.wf, st.qi, st.qf, st.pcal, pr, 4, 0.04, 0.05) == 1
    assert abs(st.qf[BUF_T, 0] - 0.049) < 1e-15 and st.wi[W_HEAD, 0] == -1
    assert st.wi[W_PCAL, 0] == -1 and st.wf[W_HSTART, 0] == np.inf
    _busy(st, pr, 4)
    assert abs(st.wf[W_BUSY, 0] - 0.9) < 1e-12  # C: 0.04 -> 0.049
    _busy(st, pr, 5)
    assert st.wf[W_BUSY, 0] == 0.0  # idle: step 4's sum (its stamp) is not step 5's
    assert st.wi[W_ASTEP, 0] == 4


def test_prefill_end_step_is_the_first_whose_end_reaches_it():
    dt = 0.01
    for t, s, k in [(0.025, 0, 2), (0.03, 0, 2), (0.0300001, 0, 3), (0.001, 0, 0), (0.001, 4, 4)]:
        assert end_step(t, dt, s) == k
        if k > s:
            assert k * dt < t <= (k + 1) * dt
