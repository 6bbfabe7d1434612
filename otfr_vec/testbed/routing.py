"""Which online router the testbed uses, and what each policy is shown.

``otfr_vec.online`` (the policies as a library a live router embeds) is used when it is
installed; until it lands the temporary :mod:`._interim_router` serves ``lc`` and
``fault_aware_lc``.
"""

from __future__ import annotations

import importlib.util


def router_class():
    if importlib.util.find_spec("otfr_vec.online") is not None:
        from ..online import Router
    else:  # TEMPORARY until otfr_vec.online lands on main
        from ._interim_router import Router
    return Router


def router_source() -> str:
    return (
        "otfr_vec.online"
        if importlib.util.find_spec("otfr_vec.online") is not None
        else "otfr_vec.testbed._interim_router (temporary: lc and fault_aware_lc only)"
    )


def make_router(policy: str, cfg):
    return router_class()(policy, cfg)


def sees_truth(policy: str) -> tuple[bool, bool]:
    """(true health state instead of labels, true bandwidth whatever the telemetry mode):
    what the simulator gives the policy (``oracle``: both)."""
    from ..kernels.structs import HEALTH_TRUTH
    from ..schedulers import POLICIES

    pol = POLICIES.get(policy)
    if pol is None:
        return False, False
    return pol.health == HEALTH_TRUTH, bool(pol.true_bw)
