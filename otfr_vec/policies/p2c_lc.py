"""Least-request power of d choices (``p2c_lc``): Envoy's least_request balancer and gRPC's
A48 policy without outlier detection; the worked example of docs/POLICIES.md.

Sources: envoyproxy/envoy least_request_lb.cc (choice_count 2, draws with replacement);
grpc/proposal A48-xds-least-request-lb-policy.md; Mitzenmacher, "The power of two
choices in randomized load balancing" (IEEE TPDS 2001).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kernels.policy import p2c_lc as K
from ..kernels.policy.ids import P2C_LC
from .binding import Binding, hooked, knob, knob_vector
from .registry import Policy, register

SRC = "Envoy least_request_lb.cc / gRPC A48 (choice_count 2, with replacement)"


@dataclass
class P2cLc:
    choices: int = knob(2, "workers drawn per decision (with replacement)", SRC, 1, 4)


INDEX = {K.K_CHOICES: "choices"}


def bind(cfg, knobs: P2cLc) -> Binding:
    return Binding(hooked(P2C_LC, cfg), knob_vector(knobs, INDEX, K.N_KNOBS))


register(
    Policy(
        "p2c_lc",
        "least-request power of two choices, no outlier detection",
        SRC + "; Mitzenmacher, IEEE TPDS 2001",
        "#aec7e8",
        9,
        "production",
        knobs=P2cLc,
        bind=bind,
    )
)

__all__ = ["P2cLc"]
