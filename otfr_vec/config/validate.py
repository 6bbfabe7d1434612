"""Range checks for a composed configuration, run before anything is simulated or written.

Hydra already rejects unknown keys and wrong types against the dataclass schema; this
module checks what a type cannot say: ranges, choices and relations between keys. All
problems are collected and reported at once, each naming the key, the value and what is
allowed.
"""

from __future__ import annotations

import math

from ..errors import ConfigError

# Token counts (synthetic sizes and every replayed trace row) are bounded by 10 M tokens,
# the context window of the longest-context released model (Llama 4 Scout, 2025). A larger
# count is a unit or parsing mistake (1e308 was accepted once): its KV cache alone, at
# the default network.kv_bytes_per_token, would be 3.3 TB per request.
MAX_TOKENS = 10_000_000
TOKEN_BOUND = "10 M tokens, the longest context window of any released model"

CHOICES = {
    "workload.kind": ("synthetic", "trace"),
    "workload.prompt_dist": ("constant", "exponential", "lognormal"),
    "workload.output_dist": ("constant", "exponential", "lognormal"),
    "workload.trace_format": ("auto", "azure", "mooncake"),
    "degradation.pattern": ("step", "ramp", "spread", "flap", "none"),
    "telemetry.mode": ("direct", "delayed", "none"),
    "health.granularity": ("pod", "worker"),
    "sim.timeout_scope": ("ttft", "queue", "e2e"),
}

# key -> (low, high, low_open, high_open); None = unbounded
RANGES = {
    "cluster.pods": (1, None, False, False),
    "cluster.workers_per_pod": (1, None, False, False),
    "cluster.prefill_fraction": (0, 1, True, False),
    "cluster.cross_pod_cost": (0, None, False, False),
    "workload.rate": (0, None, True, False),
    "workload.load": (0, None, True, False),
    "workload.prompt_mean": (0, MAX_TOKENS, True, False),
    "workload.prompt_sigma": (0, None, False, False),
    "workload.prompt_max": (1, MAX_TOKENS, False, False),
    "workload.output_mean": (0, MAX_TOKENS, True, False),
    "workload.output_sigma": (0, None, False, False),
    "workload.output_max": (1, MAX_TOKENS, False, False),
    "workload.trace_speedup": (0, None, True, False),
    "workload.trace_rate": (0, None, True, False),
    "workload.trace_load": (0, None, True, False),
    "workload.trace_start": (0, None, False, False),
    "service.prefill_tokens_per_s": (0, None, True, False),
    "service.decode_slots": (1, None, False, False),
    "service.tpot": (0, None, False, False),
    "network.bw0": (0, None, True, False),
    "network.kv_bytes_per_token": (0, None, False, False),
    "degradation.r": (0, 1, True, False),
    "degradation.pods": (0, None, False, False),
    "degradation.onset": (0, None, False, False),
    "degradation.duration": (0, None, False, False),
    "degradation.ramp": (0, None, False, False),
    "degradation.spread_interval": (0, None, False, False),
    "degradation.period": (0, None, True, False),
    "degradation.duty": (0, 1, False, False),
    "faults.workers": (0, None, False, False),
    "faults.onset": (0, None, False, False),
    "faults.duration": (0, None, False, False),
    "telemetry.delay": (0, None, False, False),
    "health.threshold": (0, 1, False, False),
    "health.delay": (0, None, False, False),
    "health.miss": (0, 1, False, False),
    "health.noise": (0, 1, False, False),
    "health.refresh": (0, None, True, False),
    "price.alpha": (0, None, False, False),
    "price.beta": (0, None, False, False),
    "price.gamma": (0, None, False, False),
    "price.eta": (0, None, False, False),
    "price.halflife": (0, None, True, False),
    "price.kappa": (0, 1, False, False),
    "weights.lambda_f": (0, None, False, False),
    "weights.lambda_r": (0, None, False, False),
    "weights.lambda_p": (0, None, False, False),
    "sim.dt": (0, None, True, False),
    "sim.duration": (0, None, True, False),
    "sim.warmup": (0, None, False, False),
    "sim.timeout": (0, None, True, False),
    "sim.seed": (0, 2**63 - 1, False, False),
    "sim.window": (0, None, True, False),
    "sim.memory_limit": (0, None, True, False),
}


def _get(cfg, dotted):
    node = cfg
    for part in dotted.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def _interval(lo, hi, lo_open, hi_open):
    left = "(" if lo_open else "["
    right = ")" if (hi_open or hi is None) else "]"
    return f"{left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{right}"


def _range_errors(cfg):
    errors = []
    for key, allowed in CHOICES.items():
        value = _get(cfg, key)
        if value not in allowed:
            errors.append(f"{key}={value!r}: allowed values are {', '.join(allowed)}")
    for key, (lo, hi, lo_open, hi_open) in RANGES.items():
        value = _get(cfg, key)
        if value is None:
            continue
        bad = isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)
        bad = bad or math.isinf(value)
        if not bad and lo is not None:
            bad = value <= lo if lo_open else value < lo
        if not bad and hi is not None:
            bad = value >= hi if hi_open else value > hi
        if bad:
            why = f" (at most {TOKEN_BOUND})" if hi == MAX_TOKENS else ""
            errors.append(
                f"{key}={value!r}: must be a finite number in "
                f"{_interval(lo, hi, lo_open, hi_open)}{why}"
            )
    return errors


def _relation_errors(cfg):
    errors = []
    sim, cl, wl, deg = cfg.sim, cfg.cluster, cfg.workload, cfg.degradation
    if sim.warmup >= sim.duration - sim.timeout:
        errors.append(
            f"sim.warmup={sim.warmup!r}, sim.timeout={sim.timeout!r}, "
            f"sim.duration={sim.duration!r}: the measured window [sim.warmup, sim.duration - "
            f"sim.timeout) = [{sim.warmup:g}, {sim.duration - sim.timeout:g}) s is empty, so "
            "every metric would be NaN; need sim.warmup + sim.timeout < sim.duration"
        )
    if sim.dt >= sim.timeout:
        errors.append(f"sim.dt={sim.dt!r}: must be smaller than sim.timeout={sim.timeout!r}")
    if sim.duration / sim.dt > 5e7:
        errors.append(
            f"sim.dt={sim.dt!r}: sim.duration/sim.dt = {sim.duration / sim.dt:.3g} steps; "
            "at most 5e7"
        )
    if sim.window < sim.dt:
        errors.append(f"sim.window={sim.window!r}: must be at least sim.dt={sim.dt!r}")
    n_pf = round(cl.workers_per_pod * cl.prefill_fraction)
    if 0 < cl.prefill_fraction <= 1 and not 1 <= n_pf <= cl.workers_per_pod:
        errors.append(
            f"cluster.prefill_fraction={cl.prefill_fraction!r}: gives {n_pf} prefill workers "
            "per pod "
            f"of {cl.workers_per_pod}; need at least 1"
        )
    if 0 < cl.prefill_fraction < 1 and n_pf == cl.workers_per_pod:
        errors.append(
            f"cluster.prefill_fraction={cl.prefill_fraction!r}: leaves no decode worker in a "
            "pod of "
            f"{cl.workers_per_pod}; use 1 for the prefill-only model"
        )
    if deg.pods >= 1 and (deg.pods != int(deg.pods) or deg.pods > cl.pods):
        errors.append(
            f"degradation.pods={deg.pods!r}: a count must be a whole number <= "
            f"cluster.pods={cl.pods}"
            " (or a fraction < 1)"
        )
    if cfg.faults.workers >= 1 and (
        cfg.faults.workers != int(cfg.faults.workers)
        or cfg.faults.workers > cl.pods * cl.workers_per_pod
    ):
        errors.append(
            f"faults.workers={cfg.faults.workers!r}: a count must be a whole number <= "
            f"{cl.pods * cl.workers_per_pod} workers (or a fraction < 1)"
        )
    for name in ("prompt", "output"):
        if getattr(wl, f"{name}_max") < getattr(wl, f"{name}_mean") and wl.kind == "synthetic":
            errors.append(
                f"workload.{name}_max={getattr(wl, f'{name}_max')!r}: must be at least "
                f"workload.{name}_mean={getattr(wl, f'{name}_mean')!r}"
            )
    if wl.kind == "trace" and not wl.trace:
        errors.append("workload.trace=None: workload.kind=trace needs a trace file path")
    scalings = [k for k in ("trace_rate", "trace_load") if getattr(wl, k) is not None]
    if wl.trace_speedup != 1:
        scalings.append("trace_speedup")
    if len(scalings) > 1:
        errors.append(
            ", ".join(f"workload.{k}={getattr(wl, k)!r}" for k in scalings)
            + ": give one way to scale the trace"
        )
    if wl.trace_end is not None and wl.trace_end <= wl.trace_start:
        errors.append(
            f"workload.trace_end={wl.trace_end!r}: must be larger than "
            f"workload.trace_start={wl.trace_start!r}"
        )
    from .. import policies

    scheds = list(cfg.schedulers)
    known = policies.names()
    if not scheds:
        errors.append(f"schedulers=[]: give at least one of {', '.join(known)}")
    for s in scheds:
        if s not in known:
            errors.append(f"schedulers: unknown scheduler {s!r}; allowed: {', '.join(known)}")
    if len(set(scheds)) != len(scheds):
        errors.append(f"schedulers={scheds!r}: each scheduler may appear once")
    return errors + _knob_errors(cfg)


def _knob_errors(cfg):
    """Range errors of every policy knob section present in ``cfg``."""
    from ..policies import knob_sections
    from ..policies.binding import knob_errors

    errors = []
    for section, cls in knob_sections().items():
        if section in cfg:
            values = cls(**{k: cfg[section][k] for k in cfg[section]})
            errors += knob_errors(section, values)
    return errors


def validate(cfg):
    """Raise :class:`ConfigError` listing every invalid setting of ``cfg``; return ``cfg``.

    Reads no file: what a configuration points to (a trace) and what it would cost
    (memory) are checked by :func:`otfr_vec.inputs.check_inputs`."""
    errors = _range_errors(cfg)
    if not errors:  # relations assume each value is in range
        errors = _relation_errors(cfg)
    if errors:
        head = "invalid configuration" if len(errors) > 1 else "invalid configuration value"
        raise ConfigError(head + ":\n  " + "\n  ".join(errors))
    return cfg
