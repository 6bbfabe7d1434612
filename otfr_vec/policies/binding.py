"""What a policy hands the engine for one run, and the helpers policy files share.

A policy's ``bind(cfg, knobs)`` returns a :class:`Binding`: the ``Params`` fields it sets
(which kernel hooks run, the score's weights), its knob vector for the kernels, the
shape of its state arrays, and whether its timer ticks need random draws. Knobs are a
dataclass per policy whose fields are built with :func:`knob`: default, help text,
source and allowed range in one place, read by config validation and the docs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import numpy as np

from ..kernels.policy.ids import SCORE
from ..kernels.structs import HEALTH_LABELS, HEALTH_OFF, HEALTH_TRUTH

HEALTH = {"off": HEALTH_OFF, "labels": HEALTH_LABELS, "truth": HEALTH_TRUTH}


class Binding(NamedTuple):
    params: dict  # Params fields this policy sets (see kernels/structs.py: Params)
    knobs: np.ndarray  # float64 knob vector, indices of the policy's kernel module
    shape: tuple = (0, 0, 0, 0, 0)  # (pw_i rows, pw_f rows, pg_i rows, pg_f rows, width)
    tick_draws: bool = False  # one uniform per worker and timer tick


def knob(default: Any, help: str, source: str = "", lo=None, hi=None, lo_open=False, hi_open=False):
    """A knob field: its default, what it does, where the default comes from, its range."""
    meta = {"help": help, "source": source, "range": (lo, hi, lo_open, hi_open)}
    return dataclasses.field(default=default, metadata=meta)


def knob_errors(section: str, values) -> list[str]:
    """Range errors of a knob dataclass instance, each naming the key and the value."""
    errors = []
    for f in dataclasses.fields(values):
        lo, hi, lo_open, hi_open = f.metadata.get("range", (None, None, False, False))
        v = getattr(values, f.name)
        if isinstance(f.default, bool):
            if not isinstance(v, bool):
                errors.append(f"{section}.{f.name}={v!r}: must be true or false")
            continue
        bad = isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
        if not bad and lo is not None:
            bad = v <= lo if lo_open else v < lo
        if not bad and hi is not None:
            bad = v >= hi if hi_open else v > hi
        if not bad and isinstance(f.default, int) and v != int(v):
            bad = True
        if bad:
            left = "(" if lo_open else "["
            right = ")" if (hi_open or hi is None) else "]"
            kind = "a whole number" if isinstance(f.default, int) else "a finite number"
            lo_s = "-inf" if lo is None else lo
            hi_s = "inf" if hi is None else hi
            errors.append(
                f"{section}.{f.name}={v!r}: must be {kind} in {left}{lo_s}, {hi_s}{right}"
            )
    return errors


def knob_vector(values, index: dict[int, str], n: int) -> np.ndarray:
    """The kernel's knob array: ``index`` maps each kernel constant to a field name."""
    kn = np.zeros(n)
    for k, name in index.items():
        kn[k] = float(getattr(values, name))
    return kn


def score_params(
    cfg, health: str = "off", price: bool = False, true_bw: bool = False, path: bool = True
) -> dict:
    """The weights of the study's score ``load + lambda_f h + lambda_r pi + lambda_p path``
    for a policy: its health source, whether it pays the risk price (the beta term only
    where it sees bandwidth: telemetry direct/delayed, or ``true_bw``), and whether it
    knows the path cost (the production mechanisms do not)."""
    pr, wt = cfg.price, cfg.weights
    sees_bw = true_bw or cfg.telemetry.mode != "none"
    return {
        "health": HEALTH[health],
        "true_bw": int(true_bw),
        "beta": float(pr.beta) if (price and sees_bw) else 0.0,
        "lambda_f": float(wt.lambda_f) if health != "off" else 0.0,
        "lambda_r": float(wt.lambda_r) if price else 0.0,
        "lambda_p": float(wt.lambda_p) if path else 0.0,
    }


def hooked(policy_id: int, cfg, price: bool = False, **extra) -> dict:
    """Params of a production mechanism (optionally with the risk price): no labels, no
    path cost, its own kernel id, hooks on, per-request draws kept."""
    return {
        **score_params(cfg, price=price, path=False),
        "policy": policy_id,
        "hooks": 1,
        "keep_draws": 1,
        **extra,
    }


def plain(cfg, health: str, price: bool, true_bw: bool) -> dict:
    """Params of a policy of the study's score family (no hooks, no draws)."""
    return {**score_params(cfg, health, price, true_bw), "policy": SCORE}


__all__ = ["Binding", "hooked", "knob", "knob_errors", "knob_vector", "plain", "score_params"]
