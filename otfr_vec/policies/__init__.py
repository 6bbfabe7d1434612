"""Scheduling policies: one small file per policy, all registered in :mod:`.registry`.

    from otfr_vec import policies
    policies.names()                  # every registered scheduler, in table order
    policies.names("study")           # the study's five
    policies.get("otfr").description  # its one-line description, source, colour, knobs

Importing this package registers every policy shipped with otfr_vec; docs/POLICIES.md
describes each one and how to add a new one.
"""

from . import breaker, envoy_od, epp, otfr, p2c_lc, peak_ewma, prequal, wrr_orca  # noqa: F401
from .registry import (
    GROUPS,
    REGISTRY,
    Policy,
    color,
    get,
    knob_sections,
    knobs_of,
    names,
    ordered,
    register,
)

STUDY = names("study")

__all__ = [
    "GROUPS",
    "REGISTRY",
    "STUDY",
    "Policy",
    "color",
    "get",
    "knob_sections",
    "knobs_of",
    "names",
    "ordered",
    "register",
]
