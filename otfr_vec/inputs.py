"""Input checks that read files or ask the machine, run by every entry point after
:func:`otfr_vec.config.validate` and before anything is simulated or written.

Validation proper reads nothing: it checks a configuration's values and their relations.
What the values point to (a trace file: readable, well formed, a non-empty window) and
what they would cost (the run's estimated peak memory against ``sim.memory_limit``) are
checked here, and every problem is reported in one :class:`ConfigError`.
"""

from __future__ import annotations

from .errors import ConfigError
from .memory import memory_errors


def input_errors(cfg) -> list[str]:
    """Problems of the inputs of a validated ``cfg``, one message each."""
    if cfg.workload.kind == "trace":
        from .scenario.trace import trace_errors

        errors = trace_errors(cfg.workload)
        if errors:  # the memory estimate needs the trace's rate
            return errors
    return memory_errors(cfg)


def check_inputs(cfg):
    """Raise :class:`ConfigError` naming every problem of ``cfg``'s inputs; return ``cfg``."""
    errors = input_errors(cfg)
    if errors:
        head = "invalid input" if len(errors) == 1 else "invalid inputs"
        raise ConfigError(head + ":\n  " + "\n  ".join(errors))
    return cfg


__all__ = ["check_inputs", "input_errors"]
