"""The five schedulers as settings of one scoring kernel (docs/MODEL.md section 5 table).

A scheduler is a name mapped to weights: which health source it uses, whether it pays
the risk price, and whether the price sees the true bandwidth. Adding a policy means
adding a row here, not a code path in the kernels.
"""

from __future__ import annotations

from typing import NamedTuple

from .kernels.structs import HEALTH_LABELS, HEALTH_OFF, HEALTH_TRUTH


class Policy(NamedTuple):
    health: int  # HEALTH_OFF / HEALTH_LABELS / HEALTH_TRUTH
    price: bool  # pays lambda_r * pi
    true_bw: bool  # the beta term sees the true factor, whatever the telemetry mode
    description: str


POLICIES = {
    "lc": Policy(HEALTH_OFF, False, False, "least connections: load only"),
    "fault_aware_lc": Policy(HEALTH_LABELS, False, False, "load + health-label penalty"),
    "otfr": Policy(HEALTH_OFF, True, False, "load + risk price (telemetry mode + symptoms)"),
    "fault_aware_otfr": Policy(HEALTH_LABELS, True, False, "hybrid: labels + risk price"),
    "oracle": Policy(HEALTH_TRUTH, True, True, "hybrid with true labels and direct telemetry"),
}
