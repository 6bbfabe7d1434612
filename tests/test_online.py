"""otfr_vec.online.Router: the policies as a library a live router calls per event.

The differential test (the last one): simulated runs of every registered policy,
replayed into a Router from the step kernel's decision trace, give the same choices.
Before it: semantics on hand-checkable cases, the clock, draws, bad input, threads, and
that the fast call path (compiled entry points) decides as Numba's dispatcher does.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from otfr_vec import make_config, policies
from otfr_vec.engine import run
from otfr_vec.kernels import trace as T
from otfr_vec.kernels.policy import envoy_od
from otfr_vec.kernels.structs import (
    DECISIONS,
    FAILED,
    OUT_FAILURE,
    OUT_SUCCESS,
    OUT_TIMEOUT,
    TIMED_OUT,
    W_FAIL,
    W_OUTC,
    W_TOUT,
)
from otfr_vec.online import Router, ops, step_of

ALL = policies.names()
TINY = ["cluster.pods=4", "cluster.workers_per_pod=4"]  # 8 prefill + 8 decode workers


def tiny(*overrides):
    return make_config([*TINY, *overrides])


def drive(r: Router, n: int = 300, seed: int = 0) -> list[int]:
    """A request stream through ``r``: both decisions, loads, outcomes (a timeout every
    seventh), observations every few requests. Returns every choice."""
    g = np.random.default_rng(seed)
    now, picks = 0.0, []
    for i in range(n):
        now += float(g.exponential(0.004))
        p = r.choose("prefill", i % r.n_pods, now)
        rp = r.routed(p, now)
        d = r.choose("decode", int(r.pod[p]), now)
        rd = r.routed(d, now)
        picks += [p, d]
        r.released(p, now)
        kind = "timeout" if i % 7 == 0 else "success"
        r.outcome(p, kind, 0.3, now, rif=rp)
        r.outcome(d, kind, 0.1, now, rif=rd)
        if i % 2:
            r.released(d, now)
        if i % 5 == 0:
            r.observe(
                now,
                busy=g.random(r.n_workers),
                labels=(g.random(r.n_workers) < 0.2).astype(float),
                queue=g.integers(0, 3, r.n_workers),
                slots=g.integers(0, 4, r.n_workers),
                decoding=g.integers(0, 2, r.n_workers),
            )
    return picks


@pytest.mark.parametrize("name", ALL)
def test_every_policy_routes_within_the_role_groups_and_keeps_the_load(name):
    r = Router(name, tiny())
    assert (r.n_workers, r.n_prefill, r.n_pods) == (16, 8, 4)
    assert list(r.pod) == [0, 0, 1, 1, 2, 2, 3, 3] * 2
    picks = drive(r)
    assert all(0 <= p < 8 for p in picks[::2]) and all(8 <= d < 16 for d in picks[1::2])
    assert len(set(picks[::2])) > 1 and len(set(picks[1::2])) > 1  # it spreads the load
    load = r.load
    assert load[:8].sum() == 0 and load[8:].sum() == 150  # half the decode legs still held
    assert r.clock > 0 and r.price_steps == step_of(r.clock, 0.01) + 1
    assert np.isfinite(r.price).all()


def test_same_seed_same_choices_other_seed_other_ties():
    assert drive(Router("lc", tiny())) == drive(Router("lc", tiny()))
    assert drive(Router("p2c_lc", tiny())) == drive(Router("p2c_lc", tiny()))
    assert drive(Router("p2c_lc", tiny())) != drive(Router("p2c_lc", tiny(), seed=1))


def test_the_fast_call_path_decides_as_numbas_dispatcher(monkeypatch):
    for name in ("fault_aware_otfr", "envoy_od_100", "prequal", "epp"):
        fast = drive(Router(name, tiny()))
        monkeypatch.setattr(ops, "entry", lambda disp, *args: disp)
        slow = drive(Router(name, tiny()))
        monkeypatch.undo()
        assert fast == slow, name


def test_least_connections_takes_the_least_loaded_with_path_cost_and_seeded_ties():
    # a queued prefill weighs 0.2 s / 3 s = 0.067, a pod crossed 0.1 (lambda_p x cost)
    r = Router("lc", tiny())
    for w in (0, 0, 1, 1, 2, 3, 4, 6, 7):  # the ingress pod 0 holds 2 each, worker 5 none
        r.routed(w, 0.0)
    assert r.choose("prefill", 0, 0.0) == 5  # 0.1 beats 2 x 0.067 at home
    r.routed(5, 0.0)
    # pod 3 (workers 6, 7) at home: a tie, broken at the first in cyclic order from start
    assert r.choose("prefill", 3, 0.0, start=0, u=[0.0] * 4) == 6
    assert r.choose("prefill", 3, 0.0, start=7, u=[0.0] * 4) == 7
    assert r.choose("decode", 1, 0.0, start=0, u=[0.0] * 4) == 10


def test_labels_move_fault_aware_lc_not_lc():
    labels = np.zeros(16)
    labels[[0, 1, 2, 3, 8, 9, 10, 11]] = 1  # pods 0 and 1 labelled unhealthy
    picks = {}
    for name in ("lc", "fault_aware_lc"):
        r = Router(name, tiny())
        r.observe(0.0, labels=labels)
        picks[name] = [r.choose("prefill", 0, 0.02, start=k, u=[0.0] * 4) for k in range(8)]
    assert set(picks["fault_aware_lc"]) == {4, 5, 6, 7}
    assert set(picks["lc"]) == {0, 1}  # the idle workers of its ingress pod
    labels_used = Router("lc", tiny())
    labels_used.observe(0.0, labels=labels)
    assert labels_used._health.sum() == 0  # a label-blind policy never holds labels


def test_timeouts_raise_the_price_from_the_next_step_and_decay_with_the_half_life():
    cfg = tiny("price.halflife=1")
    r = Router("otfr", cfg, auto_step=False)
    r.tick(0.0)
    assert r.choose("prefill", 0, 0.0, start=0, u=[0.0] * 4) == 0  # all equal: home pod
    for _ in range(10):
        r.outcome(0, "timeout", 3.0, 0.0)
        r.outcome(1, "timeout", 3.0, 0.0)
    assert r.price[0] == r.price[2]  # fixed within the step
    assert r.choose("prefill", 0, 0.005, start=0, u=[0.0] * 4) == 0
    r.tick(0.01)  # the next step start: pod 0 is priced
    assert r.price[0] > 0.4 and r.price[0] > 10 * r.price[2]
    assert r.choose("prefill", 0, 0.015, start=0, u=[0.0] * 4) not in (0, 1)
    before = r._wf[[W_TOUT, W_OUTC], 0]
    r.tick(1.01)  # 100 steps of 0.01 s: one half-life later
    assert r._wf[[W_TOUT, W_OUTC], 0] == pytest.approx(before / 2, rel=1e-9)
    assert before[1] == pytest.approx(10 * 0.5 ** (0.01 / 1), rel=1e-12)


def test_the_clock_steps_as_the_kernel_compares_times():
    for dt in (0.01, 0.003, 0.25):
        for t in np.concatenate([np.arange(0, 3, dt), np.random.default_rng(0).random(500) * 3]):
            s = step_of(float(t), dt)
            assert s * dt <= t < (s + 1) * dt, (t, dt, s)
    r = Router("otfr", tiny())
    r.tick(0.995)
    assert r.price_steps == 100 and r.clock == pytest.approx(0.99)
    r.choose("prefill", 0, 0.5)  # earlier than the clock: acts at its step, no rewind
    assert r.price_steps == 100
    manual = Router("otfr", tiny(), auto_step=False)
    manual.choose("prefill", 0, 5.0)
    manual.routed(0, 5.0)
    assert manual.price_steps == 0  # only tick() moves a manual clock
    manual.tick(5.0)
    assert manual.price_steps == 501


def test_timers_fire_from_router_calls():
    cfg = tiny("breaker.failure_threshold=2", "breaker.timeout_duration=1")
    r = Router("breaker", cfg)
    for _ in range(2):
        r.outcome(3, "timeout", 3.0, 0.1)
    assert all(r.choose("prefill", 1, 0.2, start=k, u=[0.0] * 4) != 3 for k in range(16))
    r.tick(1.2)  # open for 1 s, then half-open: it takes traffic again
    assert any(r.choose("prefill", 1, 1.2, start=k, u=[0.0] * 4) == 3 for k in range(16))


def test_bad_input_is_refused_naming_the_value():
    r = Router("otfr", tiny())
    cases = [
        (lambda: Router("round_robin", tiny()), "unknown scheduler 'round_robin'; allowed: lc"),
        (lambda: r.choose("encode", 0, 0.0), "role='encode': allowed values are prefill"),
        (lambda: r.choose("prefill", 4, 0.0), r"ingress_pod=4: must be a pod in \[0, 4\)"),
        (lambda: r.choose("prefill", 0, float("nan")), "now=nan: must be a finite time"),
        (lambda: r.choose("prefill", 0, -1), "now=-1: must be a finite time >= 0"),
        (lambda: r.choose("prefill", 0, 0.0, start=3), "start and u: pass both"),
        (lambda: r.choose("prefill", 0, 0.0, start=3, u=[1.0] * 4), "four uniforms in"),
        (lambda: r.routed(16, 0.0), r"worker 16: must be in \[0, 16\)"),
        (lambda: r.released(2, 0.0), r"released\(2\): worker 2 holds no request"),
        (lambda: r.outcome(2, "ok", 0.1, 0.0), "kind='ok': allowed values are success"),
        (lambda: r.outcome(2, "success", -0.1, 0.0), "latency=-0.1: must be a finite"),
        (lambda: r.observe(0.0, labels=np.zeros(4)), r"labels: shape \(4,\), expected \(16,\)"),
        (lambda: r.observe(0.0, bandwidth=[1, 1, 2, 1]), r"bandwidth\[2\]=2.0: must be values"),
        (lambda: r.observe(0.0, queue=np.full(16, 0.5)), r"queue\[0\]=0.5: must be whole"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    assert r.load.sum() == 0 and r.price_steps == 1  # nothing changed but the clock
    prefill_only = Router("lc", tiny("cluster.prefill_fraction=1"))
    with pytest.raises(ValueError, match="no decode workers"):
        prefill_only.choose("decode", 0, 0.0)


def test_one_router_shared_by_threads_stays_consistent():
    r = Router("fault_aware_otfr", make_config(["cluster.pods=8", "cluster.workers_per_pod=16"]))
    n, errors = 3000, []

    def worker(k):
        try:
            for i in range(n):
                now = 0.001 * i
                p = r.choose("prefill", (k + i) % 8, now)
                r.routed(p, now)
                r.outcome(p, "success", 0.2, now)
                r.released(p, now)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert r.load.sum() == 0
    assert r._wf[W_OUTC].sum() > 0 and np.isfinite(r.price).all()


def test_the_benchmark_writes_its_record(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "ONLINE.md"
    args = ["--sizes", "64", "--policies", "otfr,p2c_lc", "--calls", "100", "--repeats", "1"]
    subprocess.run(
        [sys.executable, "-m", "benchmarks.online_bench", *args, "--out", str(out)],
        cwd=Path(__file__).resolve().parents[1],
        check=True,
        capture_output=True,
    )
    rec = json.loads(out.with_suffix(".json").read_text())
    rows = {r["policy"]: r for r in rec["rows"]}
    assert set(rows) == {"otfr", "p2c_lc"} and "load_average" in rec
    assert "full scan" in rows["otfr"] and "full scan" not in rows["p2c_lc"]  # own pick
    for op in ("decision", "routed", "released", "outcome", "step", "observe"):
        med, lo, hi = rows["otfr"][op]
        assert 0 < lo <= med <= hi < 1e6, op  # ns per call
    assert "## A decision: `choose()` (us)" in out.read_text()


# --- the differential test: simulated runs replayed through a Router, choice by choice ---

# a tiny cluster where every mechanism acts: a degraded pod, hard faults, noisy labels,
# direct telemetry, ejection sweeps and breaker timers that fire within the run
DIFF = [
    *TINY,
    "workload.rate=25",
    "sim.duration=30",
    "sim.warmup=3",
    "degradation.onset=8",
    "degradation.duration=12",
    "degradation.pods=1",
    "faults.workers=2",
    "faults.onset=12",
    "faults.duration=6",
    "health.delay=2",
    "health.refresh=1",
    "health.noise=0.05",
    "telemetry.mode=direct",
    "envoy_od.interval=2",
    "breaker.timeout_duration=3",
    "breaker.failure_threshold=3",
]
OUT_KIND = {OUT_SUCCESS: "success", OUT_TIMEOUT: "timeout", OUT_FAILURE: "failure"}


def replay(cfg, name: str, tr_s: np.ndarray, tr_e: np.ndarray):
    """Feed a run's trace (kernels/trace.py) into a Router stepped as the kernel steps:
    at every step start the observations and a check of the state it must have reached;
    then the step's events in order. Returns the router and (step, kernel's choice,
    router's choice) of every decision."""
    r = Router(name, cfg, auto_step=False, windows=True)
    nw, npod = r.n_workers, r.n_pods

    def block(s, b):
        return tr_s[s, 1 + b * nw : 1 + (b + 1) * nw]

    def follow(count, t):  # loads fell (KV sent, slots freed, timeouts): released()
        diff = count.astype(np.int64) - r.load
        assert (diff <= 0).all(), "a load rose without a decision"
        for w in np.flatnonzero(diff):
            for _ in range(-diff[w]):
                r.released(int(w), t)

    choices, ev = [], 0
    for s in range(tr_s.shape[0]):
        t0 = tr_s[s, T.S_T]
        follow(block(s, T.S_COUNT), t0)
        for b, row in ((T.S_OUTC, W_OUTC), (T.S_TOUT, W_TOUT), (T.S_FAIL, W_FAIL)):
            np.testing.assert_array_equal(r._wf[row], block(s, b), err_msg=f"{name} {s} {b}")
        np.testing.assert_array_equal(r.price, block(s, T.S_PI), err_msg=f"{name} step {s}")
        r.observe(
            t0,
            bandwidth=tr_s[s, 1 + T.N_S_BLOCKS * nw : 1 + T.N_S_BLOCKS * nw + npod],
            labels=block(s, T.S_HEALTH),
            busy=block(s, T.S_BUSY),
            queue=block(s, T.S_QUEUE),
            slots=block(s, T.S_SLOTS),
            decoding=block(s, T.S_DEC),
            down=block(s, T.S_DOWN),
        )
        r.tick(t0)
        while ev < tr_e.shape[0] and tr_e[ev, T.E_STEP] == s:
            e = tr_e[ev]
            ev += 1
            t, j = float(e[T.E_T]), int(e[T.E_J])
            if e[T.E_KIND] == T.DECISION:
                follow(e[T.E_COUNT : T.E_COUNT + nw], t)
                r.observe(t, decoding=e[T.E_COUNT + nw : T.E_COUNT + 2 * nw])
                role = "prefill" if e[T.E_G] == 0 else "decode"
                got = r.choose(
                    role, int(e[T.E_HOME]), t, start=int(e[T.E_START]), u=e[T.E_U : T.E_U + 4]
                )
                choices.append((s, j, got))
                r.routed(j, t)  # the kernel's choice, so one miss does not cascade
            else:
                kind = OUT_KIND[int(e[T.E_KIND])]
                u = e[T.E_U : T.E_U + 2]
                r.outcome(j, kind, float(e[T.E_LAT]), t, rif=int(e[T.E_RIF]), u=u)
    assert ev == tr_e.shape[0]
    return r, choices


def test_every_policy_decides_online_as_in_the_kernels():
    names = list(ALL)
    cfg = make_config([*DIFF, f"schedulers=[{','.join(names)}]"])
    traced, plain = run(cfg, trace=100_000), run(cfg)
    for name in names:
        st = traced.states[name]
        # the trace (the hook path for all) changes no result; only the request pool's
        # hook-path fields (each request's RIF, decode-decision time, draws) differ
        for field in set(st._fields) - {"qi", "qf"}:
            assert np.array_equal(getattr(st, field), getattr(plain.states[name], field)), (
                name,
                field,
            )
        tr_s, tr_e, lost = traced.traces[name]
        assert lost == 0
        r, choices = replay(cfg, name, tr_s, tr_e)
        missed = [c for c in choices if c[1] != c[2]]
        assert not missed, f"{name}: {len(missed)} of {len(choices)} choices differ: {missed[:5]}"
        assert len(choices) == st.cnt[DECISIONS] > 1000
        assert st.cnt[TIMED_OUT] + st.cnt[FAILED] > 0  # outcomes of every kind reached it
        for field in ("pw_i", "pw_f", "pg_i", "pg_f"):  # the policy's own state, bit for bit
            assert np.array_equal(getattr(r, "_" + field), getattr(st, field)), (name, field)
        n_win = st.ts_price.shape[0]
        np.testing.assert_array_equal(r._win_sum[:n_win], st.ts_price)  # the price series
    # the mechanisms acted: outlier detection ejected workers (their back-off counts)
    assert traced.states["envoy_od_100"].pw_i[envoy_od.BACKOFF].sum() > 0
