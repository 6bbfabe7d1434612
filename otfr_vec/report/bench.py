"""R10, the scheduler's decision overhead, from the benchmarks' machine-readable record
(``benchmarks/RESULTS.json``, written by ``python -m benchmarks`` beside RESULTS.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import policies
from . import plots
from .drawers import HYBRID
from .stores import ReportError, Skip

TITLE = "Scheduler decision overhead"


def load(path: Path) -> dict:
    """The record at ``path`` (or the .json beside a given RESULTS.md)."""
    path = path.with_suffix(".json") if path.suffix == ".md" else path
    if not path.exists():
        raise Skip(f"no benchmark record at {path} (run `make bench`)")
    try:
        rec = json.loads(path.read_text())
        rows = rec["decision"]["rows"]
        variants = rec["decision"]["variants"]
    except (ValueError, KeyError, TypeError) as err:
        raise ReportError(
            f"{path}: not a benchmark record of `python -m benchmarks` ({err})"
        ) from None
    if not rows:
        raise Skip(f"{path} has no decision-latency rows")
    return {"path": path, "rec": rec, "rows": rows, "variants": variants}


def ns(cell) -> str:
    med, lo, hi = cell
    return f"{med:,.1f} [{lo:,.1f}-{hi:,.1f}]"


def draw(bench: dict, out: Path) -> str:
    rec, rows, variants = bench["rec"], bench["rows"], bench["variants"]
    scheds = policies.ordered(dict.fromkeys(r["scheduler"] for r in rows))
    focus = HYBRID if HYBRID in scheds else scheds[0]
    mine = sorted((r for r in rows if r["scheduler"] == focus), key=lambda r: r["targets"])
    shown = [v for v in variants if v != "rebuild" and all(v in r for r in mine)]
    study_ns = rec["decision"].get("study_ns", 1e6)
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    n = np.array([r["targets"] for r in mine])
    for v in shown:
        ax.loglog(n, [r[v][0] for r in mine], marker="o", label=variants[v])
    ax.axhline(study_ns, color="k", ls="--", lw=1, label="the study: ~1 ms per decision")
    ax.set_xticks(n, [f"{t:,}" for t in n])
    ax.minorticks_off()
    ax.set_xlabel("targets (workers the router chooses among)")
    ax.set_ylabel(f"time per {focus} decision (ns, median)")
    ax.grid(alpha=0.3, which="major")
    plots.legend_right(ax)
    plots.save(fig, out / "R10_decision.png")
    m = rec.get("machine", {})
    head = [
        f"- measured {m.get('date', '?')} on {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
        f"{m.get('os', '?')}; Python {m.get('python', '?')}, NumPy {m.get('numpy', '?')}, "
        f"Numba {m.get('numba', '?')}; git commit {m.get('commit', '?')}",
        f"- command: `{rec.get('command', '?')}`",
    ]
    if rec.get("note"):
        head.append(f"- note: {rec['note']}")
    cols = ["targets", *shown]
    table = ["| " + " | ".join(["targets", *(variants[v] for v in shown)]) + " |"]
    table += ["|" + "---|" * len(cols)]
    table += [f"| {r['targets']:,} | " + " | ".join(ns(r[v]) for v in shown) + " |" for r in mine]
    text = [
        f"From `{bench['path']}` (ns per `{focus}` decision, median [min-max] over "
        f"{rec['decision'].get('repeats', '?')} repeats):",
        "\n".join(head),
        plots.image(
            "R10: time per decision by number of targets, each variant, and the study's 1 ms",
            "R10_decision.png",
        ),
        "\n".join(table),
    ]
    lead = shown[0] if shown else None
    if lead and len(scheds) > 1:
        sizes = sorted({r["targets"] for r in rows})
        by = {(r["scheduler"], r["targets"]): r for r in rows}
        every = ["| scheduler | " + " | ".join(f"{s:,}" for s in sizes) + " |"]
        every += ["|---|" + "---|" * len(sizes)]
        for s in scheds:
            cells = [ns(by[(s, t)][lead]) if (s, t) in by else "—" for t in sizes]
            every.append(f"| `{s}` | " + " | ".join(cells) + " |")
        text += [
            f"Every benchmarked scheduler, {variants[lead]} (ns per decision):",
            "\n".join(every),
        ]
    return "\n\n".join(text)


__all__ = ["TITLE", "draw", "load"]
