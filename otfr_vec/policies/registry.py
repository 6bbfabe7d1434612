"""The policy registry: the single source of truth for every scheduler.

A policy is registered once, in its own small file under :mod:`otfr_vec.policies`, with
its name, a one-line description, the source its algorithm and defaults come from, its
knobs (a dataclass whose fields carry their defaults, ranges and sources), its plot colour
and its place in tables and legends. Configuration validation, the engine, results, the
report, the reference model and the benchmarks all read it from here; nothing else lists
scheduler names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

GROUPS = ("study", "production", "composition")


@dataclass(frozen=True)
class Policy:
    name: str
    description: str  # one line, shown in tables, `--help` and dataset attrs
    source: str  # where the algorithm and its defaults come from
    color: str  # matplotlib colour, the same in every figure
    order: int  # position in tables and legends (lower first)
    group: str  # study | production | composition
    # the policy's own knobs: a dataclass (config section ``knobs_key``, default its name)
    knobs: type | None = None
    knobs_key: str | None = None
    fixed: Mapping[str, object] = field(default_factory=dict)  # knob values a variant fixes
    # (cfg, knobs) -> the kernel binding of a run (see otfr_vec.policies.binding)
    bind: Callable | None = None
    base: str | None = None  # a composition: the production mechanism it adds the price to

    @property
    def section(self) -> str | None:
        """The config section of its knobs (a variant shares its base policy's section)."""
        if self.knobs is None:
            return None
        return self.knobs_key or self.name


_REGISTRY: dict[str, Policy] = {}
REGISTRY: Mapping[str, Policy] = MappingProxyType(_REGISTRY)


def register(policy: Policy) -> Policy:
    if policy.name in _REGISTRY:
        raise ValueError(f"policy {policy.name!r} registered twice")
    if policy.group not in GROUPS:
        raise ValueError(f"policy {policy.name!r}: group {policy.group!r} not in {GROUPS}")
    _REGISTRY[policy.name] = policy
    return policy


def names(group: str | None = None) -> tuple[str, ...]:
    """Registered policy names in table/legend order (of one group, if given)."""
    pols = sorted(_REGISTRY.values(), key=lambda p: (p.order, p.name))
    return tuple(p.name for p in pols if group is None or p.group == group)


def get(name: str) -> Policy:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown scheduler {name!r}; allowed: {', '.join(names())}") from None


def knob_sections() -> dict[str, type]:
    """Config section -> knob dataclass, for every policy that owns its knobs (variants
    and compositions read their base policy's section)."""
    out = {}
    for name in names():
        pol = _REGISTRY[name]
        if pol.knobs is not None and pol.section == name:
            out[name] = pol.knobs
    return out


def knobs_of(name: str, cfg):
    """The knob values policy ``name`` runs with under ``cfg``: its section, then the
    values a variant fixes; None for a policy without knobs."""
    import dataclasses

    pol = get(name)
    if pol.knobs is None:
        return None
    section = cfg[pol.section] if pol.section in cfg else {}
    values = pol.knobs(**{k: section[k] for k in section})
    return dataclasses.replace(values, **pol.fixed)


def color(name: str) -> str:
    """A policy's plot colour; grey for a name this version does not know (an old store)."""
    pol = _REGISTRY.get(name)
    return pol.color if pol else "#bbbbbb"


def ordered(present) -> list[str]:
    """``present`` (scheduler names, e.g. a dataset's coordinate) in registry order;
    unknown names last, in their given order."""
    present = [str(s) for s in present]
    rank = {n: i for i, n in enumerate(names())}
    return sorted(present, key=lambda s: (rank.get(s, len(rank)), present.index(s)))
