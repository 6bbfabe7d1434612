"""Scenario arrays on hand-checkable cases: degradation patterns, labels, faults, workload."""

import numpy as np
import pytest

from otfr_vec import make_config
from otfr_vec.scenario.degradation import make_degradation
from otfr_vec.scenario.health import make_faults, make_labels
from otfr_vec.scenario.layout import make_layout
from otfr_vec.scenario.workload import (
    BLOCK_ARRIVALS,
    BLOCK_S,
    Stream,
    SyntheticWorkload,
    block_length,
)

BASE = [
    "cluster.pods=8",
    "cluster.workers_per_pod=4",
    "degradation.onset=10",
    "degradation.duration=20",
    "degradation.pods=2",
    "degradation.r=0.1",
]


def deg(*extra):
    return make_degradation(make_config([*BASE, *extra]))


def test_step():
    d = deg("degradation.pattern=step")
    f = d.factor(np.array([9.99, 10.0, 29.99, 30.0]))
    bad = d.pods
    assert bad.size == 2
    assert np.all(f[[0, 3]] == 1.0)
    assert np.all(f[1:3][:, bad] == 0.1)
    others = np.setdiff1d(np.arange(8), bad)
    assert np.all(f[:, others] == 1.0)


def test_ramp_slides_linearly():
    d = deg("degradation.pattern=ramp", "degradation.ramp=10")
    f = d.factor(np.array([10.0, 15.0, 20.0, 25.0, 30.0]))[:, d.pods[0]]
    assert f == pytest.approx([1.0, 0.55, 0.1, 0.1, 1.0])


def test_spread_reaches_neighbours_in_turn_milder_further_out():
    d = deg("degradation.pattern=spread", "degradation.spread_interval=5", "degradation.pods=3")
    origin, first, second = d.pods
    assert {first, second} == {(origin + 1) % 8, (origin - 1) % 8}
    f = d.factor(np.array([10.0, 15.0, 20.0]))
    assert f[0, origin] == 0.1 and f[0, first] == 1.0
    assert f[1, first] == pytest.approx(0.1 + 0.9 / 3) and f[1, second] == 1.0
    assert f[2, second] == pytest.approx(0.1 + 0.9 * 2 / 3)


def test_flap_duty_cycle():
    d = deg("degradation.pattern=flap", "degradation.period=4", "degradation.duty=0.25")
    t = np.arange(10.0, 30.0, 0.5)
    down = d.factor(t)[:, d.pods[0]] < 1
    assert down.mean() == pytest.approx(0.25)
    assert down[0] and not down[2]  # degraded for the first second of every 4 s period


def _labels(*extra):
    cfg = make_config([*BASE, "health.refresh=1", *extra])
    layout = make_layout(cfg.cluster)
    d = make_degradation(cfg)
    return make_labels(cfg, layout, d, make_faults(cfg, layout)), layout, d


def test_labels_follow_truth_with_delay():
    labels, layout, d = _labels("health.delay=5", "health.miss=0", "health.noise=0")
    on = labels[:, layout.pod == d.pods[0]].all(axis=1)
    assert np.flatnonzero(on).tolist() == list(range(15, 35))  # [10, 30) shifted by 5 s
    assert labels[:, ~np.isin(layout.pod, d.pods)].sum() == 0


def test_missed_episodes_are_never_labelled():
    labels, *_ = _labels("health.miss=1", "health.noise=0")
    assert labels.sum() == 0


def test_noise_flips_both_ways_at_the_given_rate():
    labels, layout, d = _labels("health.miss=0", "health.noise=0.2", "sim.duration=2000")
    healthy = labels[:, ~np.isin(layout.pod, d.pods)]
    assert healthy.mean() == pytest.approx(0.2, abs=0.03)  # false alarms
    per_pod_draws = healthy[:, :: layout.n_workers // 8]
    assert per_pod_draws.std() > 0


def test_worker_granularity_labels_only_the_faulty_worker():
    cfg = make_config(
        [
            *BASE,
            "degradation.pattern=none",
            "faults.workers=1",
            "faults.onset=5",
            "health.delay=0",
            "health.noise=0",
            "health.miss=0",
            "health.granularity=worker",
            "health.refresh=1",
        ]
    )
    layout = make_layout(cfg.cluster)
    faults = make_faults(cfg, layout)
    labels = make_labels(cfg, layout, make_degradation(cfg), faults)
    down = np.flatnonzero(np.isfinite(faults.down_start))
    assert labels[10].sum() == 1 and labels[10, down[0]] == 1


def test_workload_blocks_shorten_only_at_high_rates():
    """10 s blocks up to BLOCK_ARRIVALS expected requests (every grid of sweeps/ keeps
    its draws); above, a power-of-two fraction of 10 s that expects at most that many."""
    assert block_length(BLOCK_ARRIVALS / BLOCK_S) == BLOCK_S
    for rate in (BLOCK_ARRIVALS / BLOCK_S * 1.01, 262_144.0, 3e6):
        b = block_length(rate)
        k = np.log2(BLOCK_S / b)
        assert k == int(k) >= 1 and rate * b <= BLOCK_ARRIVALS < 2 * rate * b, rate
    cfg = make_config(["workload.rate=262144", "sim.seed=3"])
    w = SyntheticWorkload(cfg, 512)
    assert w.block_s == 0.625
    blk = w.block(5)
    assert np.all((blk.arrival >= 5 * 0.625) & (blk.arrival < 6 * 0.625))
    assert len(blk) == pytest.approx(262144 * 0.625, rel=0.01)
    got = Stream(w).until(2.0)  # four blocks, not a 10 s one
    assert got.arrival.max() < 2.5 and len(got) == pytest.approx(262144 * 2.5, rel=0.01)


def test_workload_blocks_are_reproducible_and_poisson():
    cfg = make_config(["workload.rate=50", "sim.seed=7"])
    w = SyntheticWorkload(cfg, 512)
    a, b = w.block(3), SyntheticWorkload(cfg, 512).block(3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert np.all(np.diff(a.arrival) >= 0) and a.arrival.min() >= 3 * BLOCK_S
    n = [len(w.block(k)) for k in range(200)]
    assert np.mean(n) == pytest.approx(50 * BLOCK_S, rel=0.02)
    assert np.var(n) == pytest.approx(50 * BLOCK_S, rel=0.25)  # Poisson: var = mean
    s = Stream(w)
    got = s.until(25.0)
    assert got.arrival.max() >= 25.0 or len(got) == 0
    s.consume(len(got))
    assert len(s.until(25.0)) == 0
