"""The testbed's router library (``otfr_vec.online``) and what each policy is shown."""

from __future__ import annotations

from ..kernels.structs import HEALTH_TRUTH

ROUTER_SOURCE = "otfr_vec.online"


def make_router(policy: str, cfg):
    """The online router of ``policy`` (any registered name), keeping its prices per
    ``sim.window`` for the dataset."""
    from ..online import Router

    return Router(policy, cfg, windows=True)


def router_source() -> str:
    return ROUTER_SOURCE


def sees_truth(policy: str, cfg) -> tuple[bool, bool]:
    """(true health state instead of labels, true bandwidth whatever the telemetry mode):
    what the simulator gives the policy (``oracle``: both), from its registry binding."""
    from ..engine import bind

    params = bind(cfg, policy).params
    return params["health"] == HEALTH_TRUTH, bool(params["true_bw"])
