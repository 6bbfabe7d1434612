"""Each production mechanism on tiny cases whose answer is known by hand.

The policy kernels are called directly on a fresh state of a small cluster (2 pods x 16
workers: 16 prefill workers, 0-15, and 16 decode workers, 16-31), as the step kernel
calls them.
"""

from __future__ import annotations

import numpy as np
import pytest

from otfr_vec import make_config
from otfr_vec.engine import bind, make_params, make_scenario
from otfr_vec.kernels.containers import fifo_push
from otfr_vec.kernels.policy import breaker, envoy_od, epp, p2c_lc, peak_ewma, prequal, wrr_orca
from otfr_vec.kernels.policy.common import EXTRA, MASK
from otfr_vec.kernels.policy.hooks import policy_init
from otfr_vec.kernels.structs import (
    OUT_FAILURE,
    OUT_SUCCESS,
    OUT_TIMEOUT,
    W_DOWN,
    W_SLOTS,
    W_UTIL,
    new_state,
    params_record,
)

N_PF, N = 16, 32


class Tiny:
    """A fresh kernel state of ``policy`` on 2 pods x 16 workers."""

    def __init__(self, policy: str, *overrides: str):
        self.cfg = make_config(
            ["cluster.pods=2", "cluster.workers_per_pod=16", f"schedulers=[{policy}]", *overrides]
        )
        sc = make_scenario(self.cfg)
        self.b = bind(self.cfg, policy)
        self.pr = params_record(
            make_params(self.cfg, policy, sc, binding=self.b)
        )  # as kernels get it
        self.kn = self.b.knobs
        self.st = new_state(N, 2, 10, 64, self.b.shape)
        policy_init(
            self.pr, self.st.pw_i, self.st.pw_f, self.st.pg_i, self.st.pg_f, self.kn, self.st.ctr
        )
        self.pod = sc.layout.pod
        self.health = np.zeros(N)

    def __getattr__(self, name):
        return getattr(self.st, name)


# ---------------------------------------------------------------- envoy_od


def od_outcome(t: Tiny, j, kind, time, u_enf=0.0, u_jit=0.0):
    envoy_od.outcome(
        t.pr, t.pod, t.wf, t.base, t.g_dirty, t.health, t.pw_i, t.pw_f, t.pg_i, t.kn, j, kind,
        time, u_enf, u_jit,
    )  # fmt: skip


def od_tick(t: Tiny, time):
    u = np.zeros((1, N))
    envoy_od.interval_tick(
        t.pr, t.pod, t.wf, t.base, t.g_dirty, t.health, t.pw_i, t.pw_f, t.pg_i, t.kn, time, u, 0
    )


def ejected(t: Tiny) -> set:
    return {int(j) for j in np.flatnonzero(t.pw_i[envoy_od.EJECTED])}


def test_envoy_ejects_after_consecutive_5xx_and_a_success_resets():
    t = Tiny("envoy_od")
    for _ in range(4):
        od_outcome(t, 3, OUT_TIMEOUT, 1.0)
    assert ejected(t) == set()
    od_outcome(t, 3, OUT_SUCCESS, 1.0)  # resets the run of errors
    for _ in range(4):
        od_outcome(t, 3, OUT_FAILURE, 2.0)
    assert ejected(t) == set()
    od_outcome(t, 3, OUT_TIMEOUT, 2.5)  # the fifth in a row
    assert ejected(t) == {3}
    assert t.pw_f[EXTRA, 3] == MASK and t.base[3] >= MASK  # out of the argmin at once
    assert t.pg_i[envoy_od.META, envoy_od.M_HEALTHY] == N_PF - 1
    listed = set(t.pg_i[envoy_od.HLIST, : N_PF - 1].tolist())
    assert listed == set(range(N_PF)) - {3}  # the healthy list lost exactly worker 3


def test_envoy_releases_only_at_an_interval_tick_after_the_ejection_time():
    t = Tiny("envoy_od")  # base_ejection_time 30 s x 1 ejection
    for _ in range(5):
        od_outcome(t, 2, OUT_TIMEOUT, 1.0)
    for time in (10.0, 20.0, 30.0):  # 9, 19, 29 s after the ejection
        od_tick(t, time)
        assert ejected(t) == {2}, time
    od_tick(t, 31.0)  # 30 s have passed: released at this tick
    assert ejected(t) == set()
    assert t.pw_f[EXTRA, 2] == 0.0 and t.pg_i[envoy_od.META, envoy_od.M_HEALTHY] == N_PF
    for _ in range(5):  # a second ejection lasts 2 x 30 s
        od_outcome(t, 2, OUT_TIMEOUT, 32.0)
    od_tick(t, 91.0)  # 59 s
    assert ejected(t) == {2}
    od_tick(t, 92.0)
    assert ejected(t) == set()


def test_envoy_ejection_cap_and_always_eject_one():
    t = Tiny("envoy_od")  # 10 % of 16 workers: one ejection (6.25 %) but not two (12.5 %)
    for j in (1, 2):
        for _ in range(5):
            od_outcome(t, j, OUT_TIMEOUT, 1.0)
    assert ejected(t) == {1}
    t = Tiny("envoy_od", "envoy_od.max_ejection_percent=5")  # 6.25 % > 5 %: none ...
    for _ in range(5):
        od_outcome(t, 1, OUT_TIMEOUT, 1.0)
    assert ejected(t) == set()
    t = Tiny("envoy_od", "envoy_od.max_ejection_percent=5", "envoy_od.always_eject_one_host=true")
    for j in (1, 2):  # ... unless always_eject_one_host: exactly one
        for _ in range(5):
            od_outcome(t, j, OUT_TIMEOUT, 1.0)
    assert ejected(t) == {1}
    t = Tiny("envoy_od_100")  # the variant may eject every worker of a group
    for j in range(N_PF):
        for _ in range(5):
            od_outcome(t, j, OUT_TIMEOUT, 1.0)
    assert ejected(t) == set(range(N_PF))


def od_choose(t: Tiny, g, u):
    lo, hi = (0, N_PF) if g == 0 else (N_PF, N)
    return envoy_od.choose(
        t.pr, t.count, t.wf, t.health, t.pw_i, t.pg_i, t.kn, g, lo, hi, 1.0, 0, *u
    )


def test_envoy_routes_around_ejected_workers_and_panics_below_the_threshold():
    t = Tiny("envoy_od_100")
    for j in range(N_PF // 2):  # 8 of 16 ejected: 50 % healthy, not below the threshold
        for _ in range(5):
            od_outcome(t, j, OUT_TIMEOUT, 1.0)
    draws = np.random.default_rng(0).random((400, 4))
    assert all(od_choose(t, 0, u) >= N_PF // 2 for u in draws)
    for _ in range(5):  # a ninth: 7 healthy of 16 = 44 % < 50 %: panic, all are candidates
        od_outcome(t, 8, OUT_TIMEOUT, 1.0)
    picks = {od_choose(t, 0, u) for u in draws}
    assert picks & set(range(9)) and picks & set(range(9, N_PF))


def test_envoy_least_request_keeps_the_first_of_equal_draws():
    t = Tiny("envoy_od")
    t.count[:N_PF] = np.arange(N_PF)[::-1]  # worker j holds 15 - j requests
    # draws -> workers 4 and 9 (u * 16): 9 holds fewer; then 9 and 4: still 9
    assert od_choose(t, 0, (4.5 / 16, 9.5 / 16, 0.0, 0.0)) == 9
    assert od_choose(t, 0, (9.5 / 16, 4.5 / 16, 0.0, 0.0)) == 9
    t.count[:N_PF] = 0  # a tie: the first draw wins
    assert od_choose(t, 0, (4.5 / 16, 9.5 / 16, 0.0, 0.0)) == 4


# ---------------------------------------------------------------- p2c_peak_ewma


def test_peak_ewma_spike_replaces_the_estimate_and_lower_values_blend():
    t = Tiny("p2c_peak_ewma")
    assert t.pw_f[peak_ewma.RTT, 5] == pytest.approx(0.03)  # Linkerd's default RTT
    peak_ewma.outcome(t.pw_f, t.kn, 5, OUT_SUCCESS, 2.0, 10.0)  # a spike
    assert t.pw_f[peak_ewma.RTT, 5] == 2.0
    peak_ewma.outcome(t.pw_f, t.kn, 5, OUT_SUCCESS, 1.0, 20.0)  # 10 s later, lower
    w = np.exp(-10.0 / 10.0)
    assert t.pw_f[peak_ewma.RTT, 5] == pytest.approx(2.0 * w + 1.0 * (1 - w))
    biased = Tiny("p2c_peak_ewma_biased")  # a failure counts as at least 5 s
    peak_ewma.outcome(biased.pw_f, biased.kn, 5, OUT_TIMEOUT, 3.0, 1.0)
    assert biased.pw_f[peak_ewma.RTT, 5] == 5.0
    peak_ewma.outcome(t.pw_f, t.kn, 6, OUT_TIMEOUT, 3.0, 1.0)  # unbiased: its own latency
    assert t.pw_f[peak_ewma.RTT, 6] == 3.0


def test_p2c_never_picks_the_costlier_of_its_two_samples():
    g = np.random.default_rng(1)
    t = Tiny("p2c_peak_ewma")
    for trial in range(300):
        t.count[:] = g.integers(0, 6, N)
        t.pw_f[peak_ewma.RTT] = g.exponential(0.2, N)
        t.pw_f[peak_ewma.T_UPD] = g.uniform(0, 5, N)
        u0, u1 = g.random(2)
        now = 5.0 + trial * 0.01
        rtt, upd = t.pw_f[peak_ewma.RTT].copy(), t.pw_f[peak_ewma.T_UPD].copy()
        a, b = int(u0 * N_PF), int(u1 * (N_PF - 1))
        b += b >= a
        cost = rtt * np.exp(-(now - upd) / 10.0) * (t.count + 1)  # decayed to now
        got = peak_ewma.choose(t.pr, t.count, t.wi, t.pw_f, t.kn, 0, N_PF, now, u0, u1)
        assert got in (a, b) and cost[got] <= cost[b if got == a else a] * (1 + 1e-12)


# ---------------------------------------------------------------- breaker


def test_breaker_open_half_open_close_cycle():
    t = Tiny("breaker")  # 10 failures open it, 60 s open, 3 successes close it

    def out(kind, time):
        breaker.outcome(
            t.pr, t.pod, t.wf, t.base, t.g_dirty, t.health, t.pw_i, t.pw_f, t.pg_i, t.kn, 7,
            kind, time,
        )  # fmt: skip

    state = lambda: int(t.pw_i[breaker.STATE, 7])  # noqa: E731
    for _ in range(9):
        out(OUT_TIMEOUT, 1.0)
    assert state() == breaker.CLOSED
    out(OUT_FAILURE, 1.0)
    assert state() == breaker.OPEN and t.pw_f[EXTRA, 7] == MASK
    out(OUT_SUCCESS, 2.0)  # ignored while open
    breaker.refresh(t.pr, t.pw_i, t.pw_f, t.pg_i, t.kn, 60.9)
    assert state() == breaker.OPEN
    breaker.refresh(t.pr, t.pw_i, t.pw_f, t.pg_i, t.kn, 61.0)
    assert state() == breaker.HALF and t.pw_f[EXTRA, 7] == 0.0
    out(OUT_SUCCESS, 62.0)
    out(OUT_TIMEOUT, 62.5)  # any failure while half-open reopens it
    assert state() == breaker.OPEN
    breaker.refresh(t.pr, t.pw_i, t.pw_f, t.pg_i, t.kn, 123.0)
    for k in range(3):
        assert state() == breaker.HALF, k
        out(OUT_SUCCESS, 124.0 + k)
    assert state() == breaker.CLOSED


# ---------------------------------------------------------------- epp


def test_epp_scores_snapshots_and_treats_stale_ones_as_saturated():
    t = Tiny("epp")  # staleness 0.2 s
    queued = [0, 0, 1, 3] + [1] * (N_PF - 4)  # FIFO lengths, incl. the one in service
    i = 0
    for w, n in enumerate(queued):
        for _ in range(n):
            fifo_push(t.wi, t.qi, w, i)
            i += 1
    t.count[:N_PF] = queued
    t.wi[W_SLOTS, N_PF:] = np.arange(16)
    epp.scrape(t.pr, t.wi, t.qi, t.count, t.pw_f, t.kn, 0.0)
    score = -t.pw_f[EXTRA]
    # waiting 0, 0, 0, 2: queue scores 1, 1, 1, 0; KV held (in service): 0, 0, 1, 1 of 48
    assert score[0] == pytest.approx(4.0) and score[2] == pytest.approx(2 + 2 * (1 - 1 / 48))
    assert score[3] == pytest.approx(2 * (1 - 1 / 48))
    # decode (the P/D decode profile): queue only, weight 1; no one waits: all score 1
    assert score[N_PF + 5] == pytest.approx(1.0) and score[N_PF + 15] == pytest.approx(1.0)
    t.wi[W_DOWN, 0] = 1  # worker 0 stops answering scrapes
    epp.scrape(t.pr, t.wi, t.qi, t.count, t.pw_f, t.kn, 0.1)
    assert t.pw_f[EXTRA, 0] < 0  # 0.1 s old: still used
    epp.scrape(t.pr, t.wi, t.qi, t.count, t.pw_f, t.kn, 0.25)
    assert t.pw_f[EXTRA, 0] == MASK  # 0.25 s old: saturated, out of the pick
    assert (t.pw_f[EXTRA, 1:] < 0).all()


# ---------------------------------------------------------------- prequal


def pool(rows, *overrides):
    t = Tiny("prequal", *overrides)
    for w, rif, lat in rows:  # (worker, RIF, latency)
        prequal.insert(t.pg_i, t.pg_f, t.kn, 0, w, rif, lat, 0.0, 5)
    return t


def picked(t, thr):
    return int(t.pg_i[prequal.POOL_W, prequal.hot_cold(t.pg_i, t.pg_f, t.kn, 0, thr)])


def test_prequal_hot_cold_rule():
    rows = [(1, 1, 0.30), (2, 2, 0.10), (3, 9, 0.01), (4, 1, 0.20)]
    t = pool(rows)
    # RIFs seen 1, 2, 9, 1: the 0.84 quantile is element int(0.84 * 3) = 2 of 1, 1, 2, 9
    thr = prequal.threshold(t.pg_i, t.pg_f, t.kn, 0)
    assert thr == 2.0
    assert picked(t, thr) == 2  # worker 3 is fastest but hot; of the cold, 2 is fastest
    assert picked(t, 0.0) == 1  # all hot: the lowest RIF (1: workers 1 and 4), the first
    assert picked(t, 9.0) == 3  # none hot: the fastest


def test_prequal_decision_probes_then_picks():
    t = pool([(1, 1, 0.30), (3, 9, 0.01)])
    t.count[:N_PF] = 9  # probes (workers 2, 0, 5 from the draws below) all find RIF 9
    t.count[2] = 0  # ... except worker 2, idle, no latency history (estimate 0)
    u = (2.5 / 16, 0.5 / 15, 4.5 / 14)
    got = prequal.choose(
        t.pw_i, t.pw_f, t.pg_i, t.pg_f, t.count, t.kn, 0, 0, N_PF, 0.1, *u, 0.99
    )  # fmt: skip
    assert got == 2  # cold (RIF 0 <= the threshold) and latency 0
    # 16 workers, a pool of 16: b_reuse is 1, so its probe is used up
    assert 2 not in t.pg_i[prequal.POOL_W, :16].tolist()


def test_prequal_latency_estimate_is_per_rif_level():
    t = Tiny("prequal")
    prequal.outcome(t.pw_i, t.pw_f, t.kn, 5, OUT_SUCCESS, 2.0, 6)  # slow when it held 6
    prequal.outcome(t.pw_i, t.pw_f, t.kn, 5, OUT_SUCCESS, 0.1, 0)  # fast when idle
    prequal.outcome(t.pw_i, t.pw_f, t.kn, 5, OUT_TIMEOUT, 9.0, 0)  # not measured
    est = lambda rif: prequal.latency_estimate(t.pw_i, t.pw_f, t.pg_f, t.kn, 5, rif)  # noqa: E731
    assert est(0) == 0.1 and est(6) == 2.0
    assert est(1) == 0.1 and est(5) == 2.0  # the nearest level with samples
    assert prequal.latency_estimate(t.pw_i, t.pw_f, t.pg_f, t.kn, 6, 3) == 0.0  # none


# ---------------------------------------------------------------- wrr_orca


def test_wrr_shares_follow_the_weights():
    t = Tiny("wrr_orca")  # blackout 10 s
    weights = {}
    for j in range(N_PF):  # worker j reports util 0.5 and qps proportional to 1 + j % 3
        t.wf[W_UTIL, j] = 0.5
        for _ in range(10 * (1 + j % 3)):
            wrr_orca.outcome(t.wf, t.pw_f, t.kn, j, OUT_SUCCESS, 0.0)
        weights[j] = wrr_orca.report_weight(t.pw_f, t.kn, j)
    u = np.random.default_rng(2).random((1, N))
    wrr_orca.rebuild(t.pr, t.pw_f, t.pg_i, t.pg_f, t.kn, 5.0, u, 0)  # inside the blackout
    picks = np.bincount(
        [wrr_orca.choose(t.pw_f, t.pg_i, t.pg_f, 0) for _ in range(1600)], minlength=N
    )
    assert (picks[:N_PF] == 100).all()  # round robin: no weight counts yet
    wrr_orca.rebuild(t.pr, t.pw_f, t.pg_i, t.pg_f, t.kn, 10.0, u, 0)  # 10 s after the reports
    n = 20_000
    picks = np.bincount([wrr_orca.choose(t.pw_f, t.pg_i, t.pg_f, 0) for _ in range(n)], minlength=N)
    w = np.array([weights[j] for j in range(N_PF)])
    assert np.allclose(picks[:N_PF] / n, w / w.sum(), atol=2e-3)
    assert picks[N_PF:].sum() == 0  # the prefill schedule holds prefill workers only


# ---------------------------------------------------------------- p2c_lc (docs/POLICIES.md)


def test_p2c_lc_keeps_the_less_loaded_of_its_draws():
    t = Tiny("p2c_lc")
    t.count[:N_PF] = np.arange(N_PF)[::-1]  # worker j holds 15 - j requests
    assert p2c_lc.choose(t.count, t.kn, 0, N_PF, 4.5 / 16, 9.5 / 16, 0.0, 0.0) == 9
    assert p2c_lc.choose(t.count, t.kn, 0, N_PF, 9.5 / 16, 4.5 / 16, 0.0, 0.0) == 9
    t.count[:] = 0
    assert p2c_lc.choose(t.count, t.kn, 0, N_PF, 4.5 / 16, 9.5 / 16, 0.0, 0.0) == 4  # tie: first
    one = Tiny("p2c_lc", "p2c_lc.choices=1")  # one draw: uniformly random
    assert p2c_lc.choose(one.count, one.kn, N_PF, N, 0.5, 0.0, 0.0, 0.0) == N_PF + 8
