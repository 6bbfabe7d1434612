"""Scheduling policies: one small file per policy, all registered in :mod:`.registry`.

    from otfr_vec import policies
    policies.names()                  # every registered scheduler, in table order
    policies.names("study")           # the study's five
    policies.get("otfr").description  # its one-line description, source, colour, knobs

Importing this package registers every policy shipped with otfr_vec.
"""

from . import otfr  # noqa: F401  (registers the study's five)
from .registry import GROUPS, REGISTRY, Policy, color, get, names, ordered, register

STUDY = names("study")

__all__ = ["GROUPS", "REGISTRY", "STUDY", "Policy", "color", "get", "names", "ordered", "register"]
