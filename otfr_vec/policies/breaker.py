"""Circuit breaker over least connections (``breaker``): the SGLang model gateway and
vllm-router breaker with their router-level defaults.

Closed -> open after ``failure_threshold`` consecutive failures (timeouts count), open
for ``timeout_duration`` seconds, then half-open (all traffic admitted), closed after
``success_threshold`` consecutive successes, reopened by any failure. Least connections
runs over the workers whose breaker is not open; if every worker of a group is open, the
least loaded of them is used (the gateway would return 503). The gateway's retries are not
modelled: a failed request is not sent again.

Sources: sgl-project/sglang ``sgl-model-gateway/src/config/types.rs`` (router defaults
10 / 3 / 60 s) and ``src/core/circuit_breaker.rs``; vllm-project/router
``src/config/types.rs`` (the same defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kernels.policy import breaker as K
from ..kernels.policy.ids import BREAKER
from .binding import Binding, hooked, knob, knob_vector
from .registry import Policy, register

SRC = "SGLang model gateway / vllm-router CircuitBreakerConfig (router defaults)"


@dataclass
class Breaker:
    failure_threshold: int = knob(10, "consecutive failures that open the breaker", SRC, 1)
    success_threshold: int = knob(3, "consecutive successes that close a half-open one", SRC, 1)
    timeout_duration: float = knob(60.0, "s a breaker stays open before half-open", SRC, 0)


INDEX = {
    K.K_FAIL: "failure_threshold",
    K.K_SUCC: "success_threshold",
    K.K_OPEN_S: "timeout_duration",
}


def bind(cfg, knobs: Breaker) -> Binding:
    return Binding(
        hooked(BREAKER, cfg, has_extra=1),
        knob_vector(knobs, INDEX, K.N_KNOBS),
        (K.N_I, K.N_F, K.N_GI, 0, 1),
    )


register(
    Policy(
        "breaker",
        "least connections over workers whose circuit breaker is not open",
        SRC + "; src/core/circuit_breaker.rs",
        "#e377c2",
        14,
        "production",
        knobs=Breaker,
        bind=bind,
    )
)

__all__ = ["Breaker"]
