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


def small(*overrides: str):
    return make_config([*SMALL, *overrides])


@pytest.fixture
def small_cfg():
    return small
