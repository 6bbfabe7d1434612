"""Every configuration key with its default, description and units, derived from the schema.

The descriptions are the schema's own comments (``otfr_vec/config/schema.py`` and
``sweep_schema.py``: the comment after a field, or the comment lines right above it; a
field's ``metadata["help"]`` wins where a dataclass gives one), so they cannot drift from
the defaults. Units live in ``UNITS`` below; a number without an entry is dimensionless
("1"). Both ``--help`` (through Hydra's help template, the ``otfr_vec_help`` resolver) and
the coordinates of sweep stores (CF ``long_name`` / ``units``) read them from here.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import io
import re
import tokenize
import typing
from functools import lru_cache
from typing import NamedTuple

from omegaconf import OmegaConf

UNITS = {
    "cluster.pods": "pods",
    "cluster.workers_per_pod": "workers",
    "workload.rate": "requests/s",
    "workload.prompt_mean": "tokens",
    "workload.prompt_max": "tokens",
    "workload.output_mean": "tokens",
    "workload.output_max": "tokens",
    "workload.trace_rate": "requests/s",
    "workload.trace_start": "s",
    "workload.trace_end": "s",
    "service.prefill_tokens_per_s": "tokens/s",
    "service.decode_slots": "requests",
    "service.tpot": "s",
    "network.bw0": "B/s",
    "network.kv_bytes_per_token": "B/token",
    "degradation.onset": "s",
    "degradation.duration": "s",
    "degradation.ramp": "s",
    "degradation.spread_interval": "s",
    "degradation.period": "s",
    "faults.onset": "s",
    "faults.duration": "s",
    "telemetry.delay": "s",
    "health.delay": "s",
    "health.refresh": "s",
    "price.halflife": "s",
    "sim.dt": "s",
    "sim.duration": "s",
    "sim.warmup": "s",
    "sim.timeout": "s",
    "sim.window": "s",
    "sweep.progress_interval": "s",
    "dask.worker_timeout": "s",
}
# short names in words where the schema's comment is not one (CF long_name, plot labels)
LONG_NAMES = {
    "degradation.r": "residual bandwidth factor r",
    "degradation.pods": "degraded pods",
    "health.delay": "health label delay",
    "health.miss": "missed label probability",
    "health.noise": "label noise",
    "telemetry.mode": "telemetry mode",
    "telemetry.delay": "telemetry delay",
    "network.bw0": "nominal KV bandwidth per worker",
    "network.kv_bytes_per_token": "KV cache bytes per token",
    "workload.kind": "workload",
    "workload.load": "offered prefill load",
    "cluster.pods": "pods",
    "cluster.workers_per_pod": "workers per pod",
    "price.halflife": "risk price half-life",
    "price.alpha": "utilisation weight alpha",
    "price.beta": "bandwidth-deficit weight beta",
    "price.eta": "failure-rate weight eta",
    "price.gamma": "timeout-rate weight gamma",
    "price.kappa": "locational blend kappa",
    "weights.lambda_r": "risk price weight lambda_r",
    "weights.lambda_f": "health penalty weight lambda_f",
    "weights.lambda_p": "path cost weight lambda_p",
}


class Key(NamedTuple):
    name: str  # dotted
    type: str
    default: object
    description: str
    units: str | None  # None for strings, booleans and lists


def _comments(cls) -> dict:
    """Field name -> its comment in the class source (trailing, else the lines above)."""
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out, above = {}, []
    lines = src.splitlines()
    tokens = list(tokenize.generate_tokens(io.StringIO(src).readline))
    trailing = {
        t.start[0]: t.string.lstrip("# ").strip()
        for t in tokens
        if t.type == tokenize.COMMENT and lines[t.start[0] - 1].strip()[:1] != "#"
    }
    for no, line in enumerate(lines, 1):
        stripped = line.strip()
        m = re.match(r"(\w+)\s*:", stripped)
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# ").strip())
        elif m and not stripped.startswith(("def ", "class ", "@")):
            out[m.group(1)] = trailing.get(no) or " ".join(above)
            above = []
        else:
            above = []
    return out


def _type_name(tp) -> str:
    if isinstance(tp, str):
        return tp.replace("typing.", "")
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _units(dotted: str, tp, default) -> str | None:
    if dotted in UNITS:
        return UNITS[dotted]
    names = _type_name(tp)
    if "bool" in names or "str" in names or "list" in names or "dict" in names:
        return None
    if isinstance(default, bool) or isinstance(default, str):
        return None
    return "1"


def _walk(cls, prefix: str = "") -> dict:
    out = {}
    comments = _comments(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        tp = hints.get(f.name, f.type)
        if dataclasses.is_dataclass(tp):
            out.update(_walk(tp, dotted + "."))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        desc = f.metadata.get("help") or comments.get(f.name, "")
        out[dotted] = Key(dotted, _type_name(tp), default, desc, _units(dotted, tp, default))
    return out


@lru_cache(maxsize=4)
def keys(app: str = "run") -> dict:
    """{dotted key: Key} of the scenario configuration (``run``) or of a sweep (``sweep``)."""
    if app == "sweep":
        from .sweep_schema import SweepConfig

        return _walk(SweepConfig)
    from .schema import Config

    return _walk(Config)


def long_name(dotted: str) -> str:
    """A short name in words for a key: LONG_NAMES, else the first clause of its comment."""
    if dotted in LONG_NAMES:
        return LONG_NAMES[dotted]
    key = keys("sweep").get(dotted)
    text = key.description if key else ""
    text = re.sub(r"^(s|tokens|bytes/s|requests/s)\b[,:]?\s*", "", text)
    text = re.split(r"[;:(]| - |, ", text)[0].strip().rstrip(".")
    return text if 3 <= len(text) <= 60 else dotted


def coord_attrs(dotted: str) -> dict:
    """CF attrs of a swept key's coordinate: long_name, units (numbers only), description."""
    key = keys("sweep").get(dotted)
    attrs = {"long_name": long_name(dotted), "config_key": dotted}
    if key is not None and key.units is not None:
        attrs["units"] = key.units
    if key is not None and key.description:
        attrs["description"] = key.description
    return attrs


def unknown(cfg, app: str = "run") -> list[str]:
    """Messages for keys of ``cfg`` that the schema does not have (``+foo=bar`` adds them
    past Hydra's own check); subtrees of free-form mappings (``sweep.axes``) are open."""
    known = keys(app)
    open_prefixes = tuple(k + "." for k, v in known.items() if v.type.startswith("dict"))
    tree = OmegaConf.to_container(cfg, resolve=False)
    tree.pop("hydra", None)
    from .sweep_schema import flatten

    errors = []
    for dotted, value in flatten(tree).items():
        if dotted in known or dotted.startswith(open_prefixes):
            continue
        if any(k.startswith(dotted + ".") for k in known):  # an empty mapping
            continue
        near = difflib.get_close_matches(dotted, list(known), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        errors.append(f"{dotted}={value!r}: not a configuration key{hint}")
    return errors


def argv_errors(argv) -> list[str]:
    """Overrides Hydra's grammar would reject with a lexer dump: non-ASCII characters
    outside quotes (``degradation.pattern=stép``)."""
    errors = []
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        quote, bad = None, False
        for ch in arg:
            if quote:
                quote = None if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ord(ch) > 127:
                bad = True
        if bad:
            key, value = arg.split("=", 1)
            errors.append(
                f"{arg}: unquoted non-ASCII characters; quote the value, e.g. "
                f'{key}="{value}" (in a shell: \'{key}="{value}"\')'
            )
    return errors


def exit_on_bad_argv(argv=None) -> None:
    """Print ``argv_errors`` as one message and exit 2 (before Hydra parses anything)."""
    import sys

    errors = argv_errors(sys.argv[1:] if argv is None else argv)
    if errors:
        print("error: invalid override:\n  " + "\n  ".join(errors), file=sys.stderr)
        sys.exit(2)


def omegaconf_error(err) -> str:
    """One line for an OmegaConf error (an unresolvable ``${oc.env:NOPE}``, a bad type)."""
    key = getattr(err, "full_key", None)
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"{key}: {first}" if key else first


def _fmt_default(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and (abs(v) >= 1e5 or 0 < abs(v) < 1e-3):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(map(str, v)) + "]"
    return str(v)


def help_text(app: str = "run") -> str:
    """The ``--help`` page of ``python -m otfr_vec.<app>``: usage and every key."""
    if app == "sweep":
        head = [
            "python -m otfr_vec.sweep [+grid=NAME] [KEY=VALUE ...]: run a grid of scenarios",
            "(every scheduler in each cell) on Dask into one resumable Zarr store.",
            "",
            "  python -m otfr_vec.sweep +grid=severity",
            "  python -m otfr_vec.sweep +grid=severity sim.duration=120 sweep.seeds=2",
            "  python -m otfr_vec.sweep +sweep.axes.price.kappa=[0,0.5,1] dask=serial",
            "",
            "== Grids (+grid=NAME) and Dask clusters (dask=NAME) ==",
            "",
            "$APP_CONFIG_GROUPS",
            "",
        ]
    else:
        head = [
            "python -m otfr_vec.run [KEY=VALUE ...]: simulate one scenario for every scheduler",
            "and print a table of the metrics (out=PATH also saves the dataset).",
            "",
            "  python -m otfr_vec.run degradation.r=0.05 telemetry.mode=none health.delay=20",
            "  python -m otfr_vec.run sim.seed=3 out=outputs/run.zarr",
            "",
        ]
    lines = ["== Keys: name = default [units]  description ==", ""]
    section = None
    for key in keys(app).values():
        top = key.name.split(".")[0]
        if top != section and "." in key.name:
            if section is not None:
                lines.append("")
            section = top
        units = f" [{key.units}]" if key.units not in (None, "1") else ""
        left = f"  {key.name} = {_fmt_default(key.default)}{units}"
        desc = key.description or ""
        lines.append(f"{left:<44} {desc}".rstrip() if len(left) < 44 else f"{left}  {desc}")
    body = "\n".join(lines).replace("$", "$$")  # Hydra fills the template with string.Template
    tail = [
        "",
        "Override any key as KEY=VALUE; lists as KEY=[a,b]. Bad values are refused before",
        "anything runs, naming the key, the value and what is allowed.",
        "",
        "== Hydra flags ==",
        "",
        "$FLAGS_HELP",
    ]
    return "\n".join([*head, body, *tail])


if not OmegaConf.has_resolver("otfr_vec_help"):
    OmegaConf.register_new_resolver("otfr_vec_help", help_text)


__all__ = [
    "UNITS",
    "argv_errors",
    "exit_on_bad_argv",
    "Key",
    "coord_attrs",
    "help_text",
    "keys",
    "long_name",
    "omegaconf_error",
    "unknown",
]
