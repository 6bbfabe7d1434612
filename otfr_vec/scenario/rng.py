"""Seeded random streams: one child ``SeedSequence`` per purpose (and per workload block).

All randomness of a run is drawn here, outside the kernels, from ``sim.seed``; the same
draws serve every scheduler (common random numbers). A stream depends only on the seed and
its key, never on the order in which streams are used, so runs are reproducible on any
worker and in any order.
"""

from __future__ import annotations

import numpy as np

# stream ids: the first element of each spawn key
WORKLOAD, DEGRADATION, LABELS, FAULTS = 0, 1, 2, 3
# policies' own draws: per workload block (decisions, outcomes) and per timer tick
POLICY, POLICY_TICK = 4, 5
# a live router's own draws (otfr_vec.online: tie-breaks, P2C samples, probes)
ONLINE = 6


def generator(seed: int, *key: int) -> np.random.Generator:
    """The generator of stream ``key`` of run ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=key)))
