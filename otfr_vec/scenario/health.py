"""Hard faults and imperfect health labels (docs/MODEL.md sections 2.8 and 4).

Labels are refreshed every ``health.refresh`` seconds; the label of refresh ``k`` is the
truth at ``k * refresh - health.delay`` (a detection window), except that an unhealthy
episode of a unit (pod or worker) is never labelled with probability ``health.miss``
(drawn once per unit and episode) and every label flips with probability
``health.noise`` at every refresh, both ways.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import rng
from .layout import Layout, count_or_fraction


class Faults(NamedTuple):
    down_start: np.ndarray  # float64[n_workers]; inf where the worker never goes down
    down_end: np.ndarray  # float64[n_workers]

    def down(self, times: np.ndarray) -> np.ndarray:
        t = np.asarray(times, dtype=np.float64)[:, None]
        return (t >= self.down_start[None, :]) & (t < self.down_end[None, :])


def make_faults(cfg, layout: Layout) -> Faults:
    n = count_or_fraction(cfg.faults.workers, layout.n_workers)
    start = np.full(layout.n_workers, np.inf)
    end = np.full(layout.n_workers, np.inf)
    if n:
        g = rng.generator(cfg.sim.seed, rng.FAULTS)
        chosen = g.choice(layout.n_workers, size=n, replace=False)
        start[chosen] = cfg.faults.onset
        end[chosen] = cfg.faults.onset + cfg.faults.duration
    return Faults(start, end)


def truth(
    factor_pods: np.ndarray, down: np.ndarray, layout: Layout, threshold: float
) -> np.ndarray:
    """Worker-level ground truth ``[times, n_workers]``: pod factor below threshold or down."""
    return (factor_pods[:, layout.pod] < threshold) | down


def make_labels(cfg, layout: Layout, degradation, faults: Faults) -> np.ndarray:
    """``int8[n_refresh, n_workers]``: the label in force from ``k * refresh`` on."""
    h = cfg.health
    n_ref = int(np.ceil(cfg.sim.duration / h.refresh)) + 1
    tau = np.arange(n_ref) * h.refresh - h.delay
    pod_bad = degradation.factor(tau) < h.threshold  # [n_ref, pods]
    down = faults.down(tau)  # [n_ref, workers]
    if h.granularity == "pod":
        down_pod = np.zeros_like(pod_bad)
        np.logical_or.at(down_pod.T, layout.pod, down.T)
        unit_truth = pod_bad | down_pod
        unit_of_worker = layout.pod
    else:
        unit_truth = pod_bad[:, layout.pod] | down
        unit_of_worker = np.arange(layout.n_workers)
    g = rng.generator(cfg.sim.seed, rng.LABELS)
    rising = np.diff(unit_truth.astype(np.int8), axis=0, prepend=0) > 0
    episode = np.cumsum(rising, axis=0)  # episode id of each unhealthy stretch, from 1
    miss_u = g.random((unit_truth.shape[1], int(episode.max()) + 1))
    missed = miss_u[np.arange(unit_truth.shape[1])[None, :], episode] < h.miss
    label = unit_truth & ~missed
    flip = g.random(label.shape) < h.noise
    label ^= flip
    return label[:, unit_of_worker].astype(np.int8)
