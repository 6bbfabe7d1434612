"""Cluster layout: worker ids, their pod and role.

Workers are numbered prefill first, then decode, each group pod by pod, so every
routing decision scans one contiguous range of worker ids.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Layout(NamedTuple):
    n_pods: int
    n_prefill: int  # workers 0 .. n_prefill-1 prefill
    n_workers: int  # workers n_prefill .. n_workers-1 decode
    pod: np.ndarray  # int64[n_workers]: pod of each worker


def prefill_per_pod(cluster) -> int:
    """Prefill workers in each pod (every worker with ``prefill_fraction`` 1)."""
    k = cluster.workers_per_pod
    return k if cluster.prefill_fraction >= 1 else round(k * cluster.prefill_fraction)


def make_layout(cluster) -> Layout:
    k, pf = cluster.workers_per_pod, prefill_per_pod(cluster)
    pods = np.arange(cluster.pods, dtype=np.int64)
    pod = np.concatenate([np.repeat(pods, pf), np.repeat(pods, k - pf)])
    return Layout(cluster.pods, pf * cluster.pods, k * cluster.pods, pod)


def count_or_fraction(value: float, total: int) -> int:
    """A config value: a fraction of ``total`` when < 1 (at least one if > 0), else a count."""
    if value >= 1:
        return int(value)
    return max(1, int(round(value * total))) if value > 0 else 0
