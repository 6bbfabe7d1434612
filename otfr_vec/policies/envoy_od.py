"""Envoy outlier detection with least-request load balancing: ``envoy_od``,
``envoy_od_100`` and, with the risk price added, ``envoy_od_otfr``.

Outcome-driven passive health, the most deployed mechanism of its kind: consecutive
5xx and gateway errors eject a worker inline; every ``interval`` ejections that have
served ``base_ejection_time x ejections`` (at most ``max_ejection_time``) end, and
success-rate outliers (``mean - stdev_factor / 1000 x sd`` over workers with enough
requests) are ejected. Ejections stop at ``max_ejection_percent`` of a group; below
``healthy_panic_threshold`` % non-ejected workers the balancer ignores ejections. The
balancer is least-request: ``choice_count`` random workers (with replacement) of the
non-ejected ones, the one with fewer active requests wins (0 = full scan).

What the simulated router sees: a timeout counts as a 504 and a hard-fault failure as a
503 (both 5xx and gateway errors); one router sees every outcome, and each request's
outcome is charged to its prefill and its decode worker. Production Envoy runs outlier
detection per proxy, each seeing a share of the errors, and a gateway usually sees only
the decode leg: both make this the most favourable case for the mechanism.

Sources: envoyproxy/envoy ``api/envoy/config/cluster/v3/outlier_detection.proto`` and
``source/common/upstream/outlier_detection_impl.{cc,h}`` (algorithm, ``DEFAULT_*``
constants), ``least_request_lb.cc`` and ``load_balancer_impl.cc`` (``isHostSetInPanic``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kernels.policy import envoy_od as K
from ..kernels.policy.ids import ENVOY_OD
from .binding import Binding, hooked, knob, knob_vector
from .registry import Policy, register

SRC = "Envoy outlier_detection.proto / outlier_detection_impl.h defaults"


@dataclass
class EnvoyOD:
    consecutive_5xx: int = knob(5, "consecutive 5xx (timeouts, failures) that eject", SRC, 1)
    enforcing_consecutive_5xx: float = knob(
        100.0, "% chance a consecutive-5xx event ejects", SRC, 0, 100
    )
    consecutive_gateway_failure: int = knob(
        5, "consecutive gateway errors (502/503/504) that eject", SRC, 1
    )
    enforcing_consecutive_gateway_failure: float = knob(
        0.0, "% chance a consecutive-gateway event ejects (Envoy: detect only)", SRC, 0, 100
    )
    interval: float = knob(
        10.0, "s between ejection sweeps (release, success rate)", SRC, 0, None, True
    )
    base_ejection_time: float = knob(30.0, "s of ejection, times the ejection count", SRC, 0)
    max_ejection_time: float = knob(300.0, "s, the longest ejection", SRC, 0)
    max_ejection_time_jitter: float = knob(0.0, "s of uniform jitter added to an ejection", SRC, 0)
    max_ejection_percent: float = knob(
        10.0, "% of a group's workers that may be ejected at once", SRC, 0, 100
    )
    always_eject_one_host: bool = knob(
        False, "allow one ejection even when it exceeds max_ejection_percent", SRC
    )
    success_rate_minimum_hosts: int = knob(
        5, "workers with enough requests needed for success-rate ejection", SRC, 0
    )
    success_rate_request_volume: int = knob(
        100, "requests a worker needs in an interval to count", SRC, 1
    )
    success_rate_stdev_factor: float = knob(
        1900.0, "ejection below mean - factor/1000 x sd of the success rates", SRC, 0
    )
    enforcing_success_rate: float = knob(
        100.0, "% chance a success-rate outlier is ejected", SRC, 0, 100
    )
    failure_percentage_threshold: float = knob(
        85.0, "failure % at which a worker is a failure-percentage outlier", SRC, 0, 100
    )
    failure_percentage_minimum_hosts: int = knob(
        5, "workers with enough requests needed for failure-percentage ejection", SRC, 0
    )
    failure_percentage_request_volume: int = knob(
        50, "requests a worker needs in an interval to count", SRC, 1
    )
    enforcing_failure_percentage: float = knob(
        0.0, "% chance a failure-percentage outlier is ejected (Envoy: off)", SRC, 0, 100
    )
    healthy_panic_threshold: float = knob(
        50.0, "% non-ejected below which ejections are ignored (0: never)", SRC, 0, 100
    )
    choice_count: int = knob(
        2, "least_request draws (with replacement); 0 = full scan (FULL_SCAN)", SRC, 0, 4
    )


INDEX = {
    K.K_C5XX: "consecutive_5xx",
    K.K_ENF_C5XX: "enforcing_consecutive_5xx",
    K.K_CGW: "consecutive_gateway_failure",
    K.K_ENF_CGW: "enforcing_consecutive_gateway_failure",
    K.K_INTERVAL: "interval",
    K.K_BASE_EJECT: "base_ejection_time",
    K.K_MAX_EJECT: "max_ejection_time",
    K.K_JITTER: "max_ejection_time_jitter",
    K.K_MAX_PCT: "max_ejection_percent",
    K.K_ALWAYS_ONE: "always_eject_one_host",
    K.K_SR_MIN_HOSTS: "success_rate_minimum_hosts",
    K.K_SR_VOLUME: "success_rate_request_volume",
    K.K_SR_STDEV: "success_rate_stdev_factor",
    K.K_ENF_SR: "enforcing_success_rate",
    K.K_FP_THRESHOLD: "failure_percentage_threshold",
    K.K_FP_MIN_HOSTS: "failure_percentage_minimum_hosts",
    K.K_FP_VOLUME: "failure_percentage_request_volume",
    K.K_ENF_FP: "enforcing_failure_percentage",
    K.K_PANIC: "healthy_panic_threshold",
    K.K_CHOICES: "choice_count",
}


def _bind(price: bool):
    def bind(cfg, knobs: EnvoyOD) -> Binding:
        return Binding(
            hooked(ENVOY_OD, cfg, price, has_extra=1, tick=float(knobs.interval)),
            knob_vector(knobs, INDEX, K.N_KNOBS),
            (K.N_I, K.N_F, K.N_GI, 0, cfg.cluster.pods * cfg.cluster.workers_per_pod),
            tick_draws=True,
        )

    return bind


register(
    Policy(
        "envoy_od",
        "Envoy outlier detection + least-request P2C (Envoy defaults)",
        SRC + "; least_request_lb.cc (P2C with replacement); panic: load_balancer_impl.cc",
        "#9467bd",
        10,
        "production",
        knobs=EnvoyOD,
        bind=_bind(False),
    )
)
register(
    Policy(
        "envoy_od_100",
        "envoy_od with max_ejection_percent 100 (any share may be ejected)",
        SRC + "; max_ejection_percent raised: Envoy's 10 % ejects nothing below 10 hosts",
        "#c5b0d5",
        11,
        "production",
        knobs=EnvoyOD,
        knobs_key="envoy_od",
        fixed={"max_ejection_percent": 100.0},
        bind=_bind(False),
    )
)
register(
    Policy(
        "envoy_od_otfr",
        "envoy_od with the risk price added to least-request's comparison",
        SRC + "; the study's risk price (price.*, weights.lambda_r) as one more term",
        "#5e3c99",
        30,
        "composition",
        base="envoy_od",
        knobs=EnvoyOD,
        knobs_key="envoy_od",
        bind=_bind(True),
    )
)

__all__ = ["EnvoyOD"]
