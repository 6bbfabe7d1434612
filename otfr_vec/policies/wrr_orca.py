"""gRPC client-side weighted round robin from ORCA load reports (``wrr_orca``, gRPC A58).

Weights ``qps / (utilization + eps / qps x error_utilization_penalty)`` from the reports
each successful response carries, recomputed every ``weight_update_period``, ignored for
``blackout_period`` after a worker's first non-zero report and once a report is older than
``weight_expiration_period``; an earliest-deadline-first schedule over the weights. The
reported utilisation is the worker's compute-busy EWMA (half-life ``price.halflife``); qps
and eps are the worker's finished and failed-or-cancelled requests per second, decayed
over ``rate_window``. No notion of outstanding load: it reacts at report and update
granularity. Workers that are down stay in the schedule (the router learns of them only
through failures).

Sources: grpc/proposal A58-client-side-weighted-round-robin-lb-policy.md (defaults:
blackout 10 s, expiration 3 min, update 1 s, error_utilization_penalty 1.0) and PRs 351,
373; Envoy client_side_weighted_round_robin.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kernels.policy import wrr_orca as K
from ..kernels.policy.ids import WRR
from .binding import Binding, hooked, knob, knob_vector
from .registry import Policy, register

SRC = "gRPC A58 (client-side weighted round robin) defaults"


@dataclass
class WrrOrca:
    weight_update_period: float = knob(1.0, "s between weight updates", SRC, 0, None, True)
    blackout_period: float = knob(10.0, "s a new worker's weights are ignored", SRC, 0)
    weight_expiration_period: float = knob(180.0, "s after which a report expires", SRC, 0)
    error_utilization_penalty: float = knob(1.0, "weight of eps / qps in the utilisation", SRC, 0)
    rate_window: float = knob(
        10.0, "s, decay window of the reported qps and eps", "this model", 0, None, True
    )


INDEX = {
    K.K_UPDATE: "weight_update_period",
    K.K_BLACKOUT: "blackout_period",
    K.K_EXPIRE: "weight_expiration_period",
    K.K_PENALTY: "error_utilization_penalty",
    K.K_WINDOW: "rate_window",
}


def bind(cfg, knobs: WrrOrca) -> Binding:
    n = cfg.cluster.pods * cfg.cluster.workers_per_pod
    return Binding(
        hooked(WRR, cfg, tick=float(knobs.weight_update_period), needs_util=1),
        knob_vector(knobs, INDEX, K.N_KNOBS),
        (K.N_I, K.N_F, K.N_GI, K.N_GF, n),
        tick_draws=True,
    )


register(
    Policy(
        "wrr_orca",
        "weighted round robin from per-call load reports (qps, utilisation, errors)",
        SRC + "; PRs 351, 373",
        "#393b79",
        17,
        "production",
        knobs=WrrOrca,
        bind=bind,
    )
)

__all__ = ["WrrOrca"]
