"""The study's five schedulers: one scoring rule with different weights (docs/MODEL.md
section 5; every policy: docs/POLICIES.md).

    S_j = load_j + lambda_f * health_j + lambda_r * pi_j + lambda_p * path_cost_j

A scheduler of this family says which health source it uses, whether it pays the risk
price and whether the price sees the true bandwidth; the weights themselves are the
``weights.*`` and ``price.*`` keys, shared by all five. Kernel: the ``SCORE`` family
(kernels/scoring.py), no hooks, no draws of its own.
"""

from __future__ import annotations

import numpy as np

from .binding import Binding, plain
from .registry import Policy, register

STUDY_SOURCE = (
    "the OTF-R study (reliability scheduling for disaggregated LLM inference under "
    "structural network degradation; health mask + risk price)"
)

# name: (description, colour, health source, risk price, price sees the true bandwidth)
FIVE = {
    "lc": ("least connections: load only", "#7f7f7f", "off", False, False),
    "fault_aware_lc": ("load + health-label penalty", "#1f77b4", "labels", False, False),
    "otfr": ("load + risk price (telemetry mode + symptoms)", "#ff7f0e", "off", True, False),
    "fault_aware_otfr": ("hybrid: labels + risk price", "#d62728", "labels", True, False),
    "oracle": ("hybrid with true labels and direct telemetry", "#2ca02c", "truth", True, True),
}


def _binder(health: str, price: bool, true_bw: bool):
    def bind(cfg, knobs=None) -> Binding:
        return Binding(plain(cfg, health, price, true_bw), np.zeros(1))

    return bind


for order, (name, (desc, colour, health, price, true_bw)) in enumerate(FIVE.items()):
    register(
        Policy(
            name, desc, STUDY_SOURCE, colour, order, "study", bind=_binder(health, price, true_bw)
        )
    )
