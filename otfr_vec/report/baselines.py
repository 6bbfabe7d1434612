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


def verdicts(new: str, rows: dict, back: dict) -> list[str]:
    """Plain sentences: where a production or composition policy has fewer failures
    than ``new``, said as the policy's own reduction against ``new`` (``back``: the
    reductions the other way round; Fieller's interval is the same set of ratios)."""
    wins, ties = [], []
    for other, reds in rows.items():
        for (x, red), (_, rev) in zip(reds, back[other], strict=True):
            if not np.isfinite(red.point) or red.point >= 0:
                continue
            say = (
                f"`{other}` at r = {label(x)}: {100 * rev.point:.1f} % fewer failures "
                f"{interval(rev)}"
            )
            (wins if np.isfinite(red.hi) and red.hi < 0 else ties).append(say)
    out = []
    if wins:
        out.append(
            f"**Where a production mechanism wins against `{new}`** (significantly fewer "
            "failures, the interval excludes 0): " + "; ".join(wins) + "."
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


def forest(ax, rows: dict, xs, new: str) -> None:
    """The failures of ``new`` relative to each policy (1 - reduction), one row per
    policy and one dot per r, on a log axis: halving and doubling look alike, and the
    unbounded side of an interval runs to the edge."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    vals = [1.0]
    for reds in rows.values():
        for _, red in reds:
            vals += [1 - v for v in (red.point, red.lo, red.hi) if np.isfinite(v) and v < 1]
    lo_lim, hi_lim = max(min(vals) / 1.5, 1e-3), min(max(vals) * 1.5, 1e3)
    for i, reds in enumerate(rows.values()):
        for k, (x, red) in enumerate(reds):
            if not np.isfinite(red.point):
                continue
            y = i + (k - (len(xs) - 1) / 2) * 0.7 / max(len(xs), 1)
            c = cmap(k / max(len(xs) - 1, 1))
            a = 1 - red.hi if np.isfinite(red.hi) else lo_lim
            b = 1 - red.lo if np.isfinite(red.lo) else hi_lim
            if np.isfinite(red.lo) or not np.isfinite(red.hi) and red.n >= 2:
                ax.plot([max(a, lo_lim), min(b, hi_lim)], [y, y], color=c, lw=2)
            ax.plot(1 - red.point, y, "o", color=c, label=f"r = {label(x)}" if i == 0 else None)
    ax.set_xscale("log")
    ax.set_xlim(lo_lim, hi_lim)
    ax.axvline(1, color="k", lw=0.9)
    ax.axvspan(1, hi_lim, color="0.92", zorder=0)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_yticks(range(len(rows)), [f"{o} ({group(o)})" for o in rows])
    ax.invert_yaxis()
    ax.set_xlabel(
        f"failures of {new} / failures of the policy (log scale)\n"
        "below 1: the price has fewer failures; grey, above 1: the policy has"
    )
    ax.set_title(f"{new} against each production / composition policy", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    plots.legend_right(ax)


def draw(store: Store, ctx, out: Path) -> str:
    r, priced, others = ctx
    ds, held = at_defaults(store.ds, [r])
    present = schedulers(ds)
    xs = list(ds[r].values)
    rows = {p: {o: reductions(ds, r, p, o) for o in others} for p in priced}
    back = {p: {o: reductions(ds, r, o, p) for o in others} for p in priced}
    plt = plots.pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, max(4.6, 0.45 * len(others) + 2)))
    line_panel(ax, ds, "failure_rate", plots.XAxis(ds, r), present, scale=100, log=True)
    ax.set_ylabel(plots.FAILURE_PCT + ", log scale")
    ax.set_title("Failure rate (mean, 95 % t interval over seeds)", fontsize=10)
    plots.legend_below(fig, ax, ncol=min(len(present), 5))
    forest(ax2, rows[priced[0]], xs, priced[0])
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
        plots.image(
            "B: failure rate by r per scheduler; the hybrid's failures relative to each mechanism",
            "B_baselines.png",
        ),
        "\n".join(mech),
        "Failure rate, mean ± 95 % t interval over seeds:",
        by_scheduler(ds, "failure_rate", r, "r"),
    ]
    for p in priced:
        head = "| against | group | " + " | ".join(f"r = {label(x)}" for x in xs) + " |"
        lines = [head, "|---|---|" + "---|" * len(xs)]
        for o in others:
            cells = " | ".join(cell(red) for _, red in rows[p][o])
            lines.append(f"| `{o}` | {group(o)} | {cells} |")
        text += [
            f"Failure reduction of `{p}` against each production and composition policy "
            f"(1 - failures({p}) / failures(policy), pooled over seeds, 95 % Fieller "
            "interval over paired seeds; bold: the interval excludes 0; negative: the "
            "policy has fewer failures):",
            "\n".join(lines),
            *verdicts(p, rows[p], back[p]),
        ]
    added = [(c, policies.get(c).base) for c in others if group(c) == "composition"]
    added = [(c, b) for c, b in added if b in present]
    if added:
        head = "| composition | against | " + " | ".join(f"r = {label(x)}" for x in xs) + " |"
        lines = [head, "|---|---|" + "---|" * len(xs)]
        for c, b in added:
            cells = " | ".join(cell(red) for _, red in reductions(ds, r, c, b))
            lines.append(f"| `{c}` | `{b}` | {cells} |")
        text += [
            "What the price adds to a production mechanism: failure reduction of each "
            "composition against the mechanism it extends (same interval and marks):",
            "\n".join(lines),
        ]
    text.append(FAIRNESS)
    return "\n\n".join(text)


BASELINES = Result(
    "B",
    "Baselines: the risk price against production mechanisms",
    "baselines",
    check,
    draw,
    fallback=("severity",),  # it runs every policy too, with fewer seeds
)

__all__ = ["BASELINES", "FAIRNESS", "PRICED"]
