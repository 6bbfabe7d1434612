"""The study's main result (R1) on a cluster small enough for CI.

8 pods x 16 workers, one pod degraded for 60 s, telemetry none, imperfect labels (the
defaults: delay 30 s, miss 0.3), three seeds pooled. Failure rates must order as
oracle <= fault_aware_otfr < fault_aware_lc <= lc and the hybrid must cut failures of
fault_aware_lc by at least half (the study reports ~90 %).
"""

import numpy as np
import pytest

from otfr_vec import make_config, simulate

BASE = [
    "cluster.pods=8",
    "cluster.workers_per_pod=16",
    "sim.duration=150",
    "degradation.onset=50",
    "degradation.duration=60",
    "degradation.pods=1",
    "telemetry.mode=none",
]


@pytest.mark.parametrize("r", [0.10, 0.05, 0.01])
def test_failure_rate_ordering(r):
    failed = arrived = 0
    for seed in range(3):
        ds = simulate(make_config([*BASE, f"degradation.r={r}", f"sim.seed={seed}"]), threads=2)
        failed = failed + (ds.timed_out + ds.failed_other)
        arrived = arrived + ds.arrived
    fr = (failed / arrived).to_series()
    assert fr["oracle"] <= fr["fault_aware_otfr"] < fr["fault_aware_lc"] <= fr["lc"], fr
    assert 1 - fr["fault_aware_otfr"] / fr["fault_aware_lc"] > 0.5, fr
    assert np.isfinite(fr.values).all()
