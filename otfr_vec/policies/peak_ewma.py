"""Peak-EWMA power of two choices: ``p2c_peak_ewma`` and ``p2c_peak_ewma_biased``.

The latency-aware balancer of Finagle, tower and Linkerd: per worker a peak-sensitive
EWMA of observed latencies (a spike replaces the estimate, then it decays over
``decay_time``), cost ``estimate x (pending + 1)``, two distinct random workers per
decision, the cheaper wins. The biased variant is Linkerd's load biaser
(PenaltyPeakEwma): a failure or timeout counts as at least ``penalty`` seconds.

Latencies a router observes: the prefill leg from arrival until the KV has left the
prefill worker (push-mode KV connectors answer then), the decode leg from the decode
decision until the first token (Linkerd ends a request's pending state at the first
response byte); a failed leg, until it failed (a timeout: at the deadline).

Sources: tower-rs/tower ``tower/src/load/peak_ewma.rs`` and ``balance/p2c/service.rs``;
linkerd2-proxy ``app/outbound/src/http/concrete.rs`` (default RTT 30 ms, decay 10 s);
Linkerd load-balancing reference (load biaser: penalty 5 s decaying over 10 s).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kernels.policy import peak_ewma as K
from ..kernels.policy.ids import PEAK_EWMA
from .binding import Binding, hooked, knob, knob_vector
from .registry import Policy, register

SRC = "tower peak_ewma.rs; Linkerd EwmaConfig (default_rtt 30 ms, decay 10 s)"


@dataclass
class PeakEwma:
    decay_time: float = knob(
        10.0, "s, time constant of the latency estimate's decay", SRC, 0, None, True
    )
    default_rtt: float = knob(0.03, "s, a worker's estimate before any observation", SRC, 0)
    load_biaser: bool = knob(False, "a failure or timeout counts as at least `penalty`", SRC)
    penalty: float = knob(5.0, "s, the latency a failure counts as (load biaser)", SRC, 0)


INDEX = {
    K.K_DECAY: "decay_time",
    K.K_DEFAULT_RTT: "default_rtt",
    K.K_BIASER: "load_biaser",
    K.K_PENALTY: "penalty",
}


def bind(cfg, knobs: PeakEwma) -> Binding:
    return Binding(
        hooked(PEAK_EWMA, cfg), knob_vector(knobs, INDEX, K.N_KNOBS), (K.N_I, K.N_F, 0, 0, 0)
    )


register(
    Policy(
        "p2c_peak_ewma",
        "power of two choices on peak-EWMA latency x (pending + 1)",
        SRC + "; balance/p2c/service.rs",
        "#8c564b",
        12,
        "production",
        knobs=PeakEwma,
        bind=bind,
    )
)
register(
    Policy(
        "p2c_peak_ewma_biased",
        "p2c_peak_ewma with Linkerd's load biaser (a failure counts as 5 s of latency)",
        SRC + "; Linkerd load biaser (PenaltyPeakEwma)",
        "#c49c94",
        13,
        "production",
        knobs=PeakEwma,
        knobs_key="p2c_peak_ewma",
        fixed={"load_biaser": True},
        bind=bind,
    )
)

__all__ = ["PeakEwma"]
