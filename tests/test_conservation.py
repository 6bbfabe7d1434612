"""Conservation and non-negativity at every step, over many random small configurations.

``engine.run(check=True)`` makes the kernel recount, at the end of every step, what each
worker holds from the requests themselves and compare it with its counters, check
``arrived = completed + timed_out + failed_other + in_flight`` and that no queue, slot,
interface count or remaining work is negative; any violation raises.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otfr_vec import engine, make_config
from otfr_vec.kernels.structs import ARRIVED, COMPLETED, FAILED, N_FREE, TIMED_OUT

configs = st.fixed_dictionaries(
    {
        "cluster.pods": st.integers(1, 3),
        "cluster.workers_per_pod": st.integers(2, 6),
        "cluster.prefill_fraction": st.sampled_from([0.5, 0.34, 1.0]),
        "workload.load": st.sampled_from([0.05, 0.6, 1.3]),
        "workload.prompt_dist": st.sampled_from(["constant", "exponential", "lognormal"]),
        "workload.output_mean": st.sampled_from([1.0, 20.0, 200.0]),
        "service.decode_slots": st.integers(1, 4),
        "network.kv_bytes_per_token": st.sampled_from([0.0, 327680.0, 3e6]),
        "degradation.pattern": st.sampled_from(["step", "ramp", "spread", "flap", "none"]),
        "degradation.r": st.sampled_from([0.01, 0.1, 0.5]),
        "degradation.pods": st.sampled_from([0.5, 1.0]),
        "faults.workers": st.sampled_from([0.0, 1.0, 0.5]),
        "telemetry.mode": st.sampled_from(["direct", "delayed", "none"]),
        "health.noise": st.sampled_from([0.0, 0.3]),
        "health.granularity": st.sampled_from(["pod", "worker"]),
        "sim.dt": st.sampled_from([0.01, 0.05, 0.2]),
        "sim.timeout": st.sampled_from([0.3, 1.0, 3.0]),
        "sim.timeout_scope": st.sampled_from(["ttft", "queue", "e2e"]),
        "sim.seed": st.integers(0, 2**32),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_conservation_every_step(params):
    overrides = [f"{k}={v}" for k, v in params.items()]
    overrides += [
        "sim.duration=12",
        "sim.warmup=1",
        "degradation.onset=2",
        "degradation.duration=6",
        "faults.onset=3",
        "faults.duration=4",
        "health.refresh=1",
        "health.delay=1",
        "degradation.period=2",
        "degradation.ramp=2",
        "degradation.spread_interval=1",
    ]
    if params["sim.dt"] >= params["sim.timeout"]:
        overrides.append("sim.dt=0.01")
    res = engine.run(make_config(overrides), check=True)  # raises on any violation
    for st_ in res.states.values():
        c = st_.cnt
        in_flight = st_.qi.shape[1] - st_.ctr[N_FREE]
        assert c[ARRIVED] == c[COMPLETED] + c[TIMED_OUT] + c[FAILED] + in_flight
        assert c[ARRIVED] > 0 or params["workload.load"] < 0.1


def test_edge_cases(small_cfg):
    """One worker, zero traffic, everything timing out, near-zero bandwidth, all pods down."""
    cases = [
        ["cluster.pods=1", "cluster.workers_per_pod=1", "cluster.prefill_fraction=1"],
        ["workload.rate=0.001"],
        ["sim.timeout=0.02", "sim.dt=0.01"],  # shorter than one token (tpot 30 ms): all time out
        ["degradation.r=0.01", "degradation.pods=4"],  # every pod near failure
        ["faults.workers=32", "faults.onset=10", "faults.duration=20"],  # every worker down
    ]
    for extra in cases:
        res = engine.run(small_cfg(*extra), check=True)
        st_ = res.states["lc"]
        assert st_.cnt[ARRIVED] == st_.cnt[COMPLETED] + st_.cnt[TIMED_OUT] + st_.cnt[FAILED] + (
            st_.qi.shape[1] - st_.ctr[N_FREE]
        )
    all_timeout = engine.run(small_cfg("sim.timeout=0.02", "sim.dt=0.01")).states["lc"]
    assert all_timeout.cnt[COMPLETED] == 0 and all_timeout.cnt[TIMED_OUT] > 0
    down = engine.run(small_cfg("faults.workers=32", "faults.onset=10", "faults.duration=20"))
    assert down.states["lc"].cnt[FAILED] > 0


def test_memory_follows_in_flight_not_run_length(small_cfg):
    """The request pool grows with requests in flight, not with the number that arrived."""
    short = engine.run(small_cfg("sim.duration=60")).states["lc"]
    long = engine.run(small_cfg("sim.duration=240")).states["lc"]
    assert long.cnt[ARRIVED] > 3.5 * short.cnt[ARRIVED]
    assert long.qi.shape[1] <= 2 * short.qi.shape[1]
    assert long.qi.shape[1] < long.cnt[ARRIVED] / 5
    assert np.all(long.wi >= -1)
