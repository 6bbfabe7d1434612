"""Golden baseline: per-scheduler metrics of a few small runs, frozen in a JSON file.

Kernel optimizations must keep results bit-identical; this test is what says so. The
file is refreshed only on purpose, by ``python benchmarks/update_baseline.py`` (an
intended semantic change must then be explained in the commit). Besides the metrics,
a digest of every counter array of the final state (outcomes, windows, per-pod series,
latency histograms and sums) catches a change that the scalar metrics would hide.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from otfr_vec import make_config
from otfr_vec.engine import run
from otfr_vec.kernels.step import sort_buffer
from otfr_vec.kernels.structs import BUF_ID, BUF_T, N_QF, N_QI
from otfr_vec.metrics import scalar_metrics
from otfr_vec.results import window_means

PATH = Path(__file__).parent / "baselines" / "metrics.json"
SMALL = [  # tests/conftest.py SMALL, repeated so the baseline does not move with it
    "cluster.pods=4",
    "cluster.workers_per_pod=8",
    "sim.duration=60",
    "sim.warmup=5",
    "degradation.onset=20",
    "degradation.duration=30",
    "degradation.pods=1",
]
CONFIGS = {  # together they reach every scope, health source, telemetry mode and faults
    "faults_noise_delayed": [
        *SMALL,
        "faults.workers=2",
        "faults.onset=25",
        "faults.duration=15",
        "health.noise=0.1",
        "telemetry.mode=delayed",
    ],
    "flap_e2e_worker_labels": [
        *SMALL,
        "degradation.pattern=flap",
        "degradation.period=8",
        "sim.timeout_scope=e2e",
        "sim.timeout=12",
        "health.granularity=worker",
        "telemetry.mode=direct",
        "degradation.r=0.05",
    ],
    "prefill_only_queue_scope": [
        "cluster.pods=2",
        "cluster.workers_per_pod=4",
        "cluster.prefill_fraction=1",
        "sim.duration=60",
        "sim.warmup=5",
        "sim.timeout=0.5",
        "sim.timeout_scope=queue",
        "workload.load=0.95",
        "workload.prompt_dist=exponential",
        "degradation.pattern=none",
    ],
}
DIGESTED = ("cnt", "win", "ts", "ts_price", "hist", "lat_sum")


def compute(name: str) -> dict:
    """``{scheduler: {metric: value, "digest": sha256 of the counter arrays}}``."""
    cfg = make_config(CONFIGS[name])
    result = run(cfg)
    factor, _ = window_means(result.scenario, cfg)
    out = {}
    for sched, st in result.states.items():
        row = {k: float(v) for k, v in scalar_metrics(st, cfg, factor).items()}
        h = hashlib.sha256()
        for field in DIGESTED:
            h.update(np.ascontiguousarray(getattr(st, field)).tobytes())
        row["digest"] = h.hexdigest()
        out[sched] = row
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_golden_baseline(name):
    expected = json.loads(PATH.read_text())[name]
    got = compute(name)
    assert sorted(got) == sorted(expected)
    diffs = [
        f"{s}.{k}: {expected[s][k]!r} -> {got[s][k]!r}"
        for s in expected
        for k in expected[s]
        if not _same(got[s][k], expected[s][k])
    ]
    assert not diffs, "results moved (refresh only on purpose: benchmarks/update_baseline.py)\n" + (
        "\n".join(diffs)
    )


@pytest.mark.parametrize("n", [0, 1, 7, 256, 257, 900])  # both sides of the argsort switch
def test_sort_buffer_is_a_stable_sort(n):
    """The in-place buffer sort of the step kernel (an optimization) equals a stable argsort."""
    rng = np.random.default_rng(n)
    qi = np.zeros((N_QI, max(n, 1)), np.int64)
    qf = np.zeros((N_QF, max(n, 1)))
    times = rng.integers(0, 20, n) * 0.25  # many ties
    qf[BUF_T, :n] = times
    qi[BUF_ID, :n] = np.arange(n)
    sort_buffer(qi, qf, n)
    order = np.argsort(times, kind="stable")
    assert np.array_equal(qi[BUF_ID, :n], order) and np.array_equal(qf[BUF_T, :n], times[order])
