"""Shared helpers: small, fast configurations built through the public config path."""

from __future__ import annotations

import pytest

from otfr_vec import make_config

# a small cluster that keeps the study's shape: 4 pods x 8 workers, one degraded pod
SMALL = [
    "cluster.pods=4",
    "cluster.workers_per_pod=8",
    "sim.duration=60",
    "sim.warmup=5",
    "degradation.onset=20",
    "degradation.duration=30",
    "degradation.pods=1",
]

# a tiny sweep (seconds): the severity grid at two r and two seeds on 2 x 4 workers, for
# the sweep and Slurm tests, which compare their stores against each other's serial runs
TINY = ["cluster.pods=2", "cluster.workers_per_pod=4", "sim.duration=20", "sim.warmup=4"]
TINY += ["degradation.onset=8", "degradation.duration=6", "degradation.pods=1"]
GRID = [
    "+grid=severity",
    "schedulers=${policies:study}",
    "sweep.axes.degradation.r=[0.1,0.01]",
    "sweep.seeds=2",
    *TINY,
]


def small(*overrides: str):
    return make_config([*SMALL, *overrides])


@pytest.fixture
def small_cfg():
    return small
