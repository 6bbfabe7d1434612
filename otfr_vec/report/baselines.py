"""Baselines: does the risk price beat the mechanisms production routers use, and by
how much? Drawn from a store whose scheduler dimension holds priced study policies and
production or composition policies (their registry group); nothing here names one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import policies
from . import plots
from .drawers import PRICED, Result, dim, has, line_panel, source_note
from .stores import Skip, Store, at_defaults, label
from .tables import by_scheduler, interval, reductions, schedulers

OTHER_GROUPS = ("production", "composition")
FAIRNESS = (
    "Both simplifications favour the production mechanisms: one simulated router sees "
    "every outcome (production outlier detection and circuit breakers run per proxy, each "
    "seeing only its own share), and each outcome is charged to both workers of a request."
)


def group(name: str) -> str | None:
    return policies.get(name).group if name in policies.REGISTRY else None


def check(store: Store):
    has(store, "failure_rate", "timed_out", "failed_other")
    r = dim(store, "degradation.r")
    present = schedulers(store.ds)
    others = [s for s in present if group(s) in OTHER_GROUPS]
    priced = [s for s in PRICED if s in present]
    if not others:
        raise Skip("needs production or composition schedulers in the store")
    if not priced:
        raise Skip(f"needs {' or '.join(PRICED)} beside them")
    return r, priced, others


def cell(red) -> str:
    """A reduction with its interval; bold where the interval excludes zero."""
    if not np.isfinite(red.point):
        return "—"
    text = f"{100 * red.point:.1f} % {interval(red)}"
    significant = np.isfinite(red.lo) and (red.lo > 0 or red.hi < 0)
    return f"**{text}**" if significant else text


def verdicts(new: str, rows: dict) -> list[str]:
    """Plain sentences: where a production or composition policy has fewer failures."""
    wins, ties = [], []
    for other, reds in rows.items():
        for x, red in reds:
            if not np.isfinite(red.point) or red.point >= 0:
                continue
            say = f"`{other}` at r = {label(x)} ({100 * red.point:.1f} % {interval(red)})"
            (wins if np.isfinite(red.hi) and red.hi < 0 else ties).append(say)
    out = []
    if wins:
        out.append(
            f"**Where a production mechanism wins**: these have significantly fewer "
            f"failures than `{new}` (negative reduction, interval below 0): "
            + "; ".join(wins)
            + "."
        )
    if ties:
        out.append(
            f"Fewer failures than `{new}`, but not distinguishable over these seeds: "
            + "; ".join(ties)
            + "."
        )
    if not out:
        out.append(f"No production or composition policy has fewer failures than `{new}` here.")
    return out


def draw(store: Store, ctx, out: Path) -> str:
    r, priced, others = ctx
    ds, held = at_defaults(store.ds, [r])
    present = schedulers(ds)
    plt = plots.pyplot()
    fig, (ax, ax2) = plt.subplots(
        1, 2, figsize=(14, max(4.6, 0.32 * len(others) + 2)), gridspec_kw={"width_ratios": [1, 1]}
    )
    xa = plots.XAxis(ds, r)
    line_panel(ax, ds, "failure_rate", xa, present, scale=100, log=True)
    ax.set_ylabel(plots.FAILURE_PCT + ", log scale")
    ax.set_title("Failure rate (mean, 95 % t interval over seeds)", fontsize=10)
    plots.legend_below(fig, ax, ncol=min(len(present), 5))
    new = priced[0]
    rows = {o: reductions(ds, r, new, o) for o in others}
    cmap = plt.get_cmap("viridis")
    xs = list(ds[r].values)
    for i, o in enumerate(others):
        for k, (x, red) in enumerate(rows[o]):
            y = i + (k - (len(xs) - 1) / 2) * 0.7 / max(len(xs), 1)
            lo = red.lo if np.isfinite(red.lo) else np.nan
            hi = red.hi if np.isfinite(red.hi) else np.nan
            ax2.plot([100 * lo, 100 * hi], [y, y], color=cmap(k / max(len(xs) - 1, 1)), lw=2)
            ax2.plot(
                100 * red.point,
                y,
                "o",
                color=cmap(k / max(len(xs) - 1, 1)),
                label=f"r = {label(x)}" if i == 0 else None,
            )
    ax2.axvline(0, color="k", lw=0.9)
    ax2.axvspan(min(ax2.get_xlim()[0], -1), 0, color="0.9", zorder=0)
    ax2.set_yticks(range(len(others)), [f"{o} ({group(o)})" for o in others])
    ax2.invert_yaxis()
    ax2.set_xlabel(f"failure reduction of {new} against the policy (%; grey: the policy wins)")
    ax2.set_title(f"{new} against each production / composition policy", fontsize=10)
    ax2.grid(alpha=0.3, axis="x")
    plots.legend_right(ax2)
    fig.tight_layout()
    plots.save(fig, out / "B_baselines.png")

    mech = ["| scheduler | group | mechanism |", "|---|---|---|"]
    for s in present:
        pol = policies.REGISTRY.get(s)
        mech.append(
            f"| `{s}` | {pol.group if pol else '?'} | "
            f"{pol.description if pol else 'not in this version of the registry'} |"
        )
    text = [
        source_note(store, held),
        "![B](B_baselines.png)",
        "\n".join(mech),
        "Failure rate, mean ± 95 % t interval over seeds:",
        by_scheduler(ds, "failure_rate", r, "r"),
    ]
    for p in priced:
        reds = rows if p == new else {o: reductions(ds, r, p, o) for o in others}
        head = "| against | group | " + " | ".join(f"r = {label(x)}" for x in xs) + " |"
        lines = [head, "|---|---|" + "---|" * len(xs)]
        for o in others:
            lines.append(
                f"| `{o}` | {group(o)} | " + " | ".join(cell(red) for _, red in reds[o]) + " |"
            )
        text += [
            f"Failure reduction of `{p}` against each production and composition policy "
            "(1 - failures(" + p + ") / failures(policy), pooled over seeds, 95 % Fieller "
            "interval over paired seeds; bold: the interval excludes 0):",
            "\n".join(lines),
            *verdicts(p, reds),
        ]
    text.append(FAIRNESS)
    return "\n\n".join(text)


BASELINES = Result(
    "B", "Baselines: the risk price against production mechanisms", "baselines", check, draw
)

__all__ = ["BASELINES", "FAIRNESS", "PRICED"]
