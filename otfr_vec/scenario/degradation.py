"""Structural network degradation: the residual bandwidth factor ``f[t, pod]``.

A pattern is data: :class:`Degradation` holds the per-run draws (which pods, which
origin) and evaluates ``f`` at any times, so the engine can build it block by block.
Patterns (docs/MODEL.md section 3), all within the window ``[onset, onset + duration)``:

- ``step``: the chosen pods drop to ``r`` for the whole window;
- ``ramp``: they slide linearly from 1 to ``r`` over ``ramp`` seconds, then hold ``r``;
- ``spread``: an origin pod drops to ``r`` at onset; the degradation reaches the next
  neighbour (pod index +1, -1, +2, -2, ... around a ring) every ``spread_interval``
  seconds, the k-th pod reached held at ``r + (1 - r) * k / n`` (milder further out);
- ``flap``: gray failure; the chosen pods are at ``r`` for the first ``duty`` share of
  every ``period`` and healthy for the rest;
- ``none``: no degradation.

Recovery is immediate at the end of the window.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import rng
from .layout import count_or_fraction


class Degradation(NamedTuple):
    pattern: str
    r: float
    onset: float
    duration: float
    ramp: float
    spread_interval: float
    period: float
    duty: float
    n_pods: int
    pods: np.ndarray  # int64[n]: the degraded pods, in order of being reached (spread)
    level: np.ndarray  # float64[n]: the factor each reaches (r, or milder for spread)
    start: np.ndarray  # float64[n]: when each starts to degrade

    def factor(self, times: np.ndarray) -> np.ndarray:
        """``f[len(times), n_pods]`` in (0, 1]."""
        times = np.asarray(times, dtype=np.float64)
        f = np.ones((times.size, self.n_pods))
        if self.pattern == "none" or self.pods.size == 0:
            return f
        t = times[:, None]
        end = self.onset + self.duration
        active = (t >= self.start[None, :]) & (t < end)
        level = np.broadcast_to(self.level[None, :], active.shape)
        if self.pattern == "ramp" and self.ramp > 0:
            frac = np.clip((t - self.start[None, :]) / self.ramp, 0.0, 1.0)
            level = 1.0 - (1.0 - level) * frac
        elif self.pattern == "flap":
            phase = np.mod(t - self.onset, self.period)
            active &= phase < self.duty * self.period
        f[:, self.pods] = np.where(active, level, 1.0)
        return f

    def window(self) -> tuple[float, float]:
        return self.onset, self.onset + self.duration


def make_degradation(cfg) -> Degradation:
    d, n_pods = cfg.degradation, cfg.cluster.pods
    n = 0 if d.pattern == "none" else count_or_fraction(d.pods, n_pods)
    g = rng.generator(cfg.sim.seed, rng.DEGRADATION)
    if d.pattern == "spread":
        origin = int(g.integers(n_pods))
        ring = [origin]
        k = 1
        while len(ring) < n:  # neighbours +1, -1, +2, -2, ... around the ring of pods
            for p in ((origin + k) % n_pods, (origin - k) % n_pods):
                if p not in ring and len(ring) < n:
                    ring.append(p)
            k += 1
        pods = np.array(ring, dtype=np.int64)
        level = d.r + (1.0 - d.r) * np.arange(n) / max(n, 1)
        start = d.onset + d.spread_interval * np.arange(n)
    else:
        pods = np.sort(g.choice(n_pods, size=n, replace=False)).astype(np.int64)
        level = np.full(n, d.r)
        start = np.full(n, float(d.onset))
    return Degradation(
        d.pattern,
        float(d.r),
        float(d.onset),
        float(d.duration),
        float(d.ramp),
        float(d.spread_interval),
        float(d.period),
        float(d.duty),
        n_pods,
        pods,
        level,
        start,
    )
