"""Markdown tables: metrics by scheduler with t intervals and seed counts, reductions
with Fieller intervals. Every scheduler a store holds appears, in registry order."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from .. import policies
from .stats import Mean, Reduction, mean_ci, reduction_ci
from .stores import SCHEDULER, SEED, Skip, label

FAILED = ("timed_out", "failed_other")


def pct(m: float, half: float = math.nan, digits: int = 3) -> str:
    if not np.isfinite(m):
        return "—"
    if not np.isfinite(half):
        return f"{100 * m:.{digits}f} %"
    return f"{100 * m:.{digits}f} ± {100 * half:.{digits}f} %"


def num(m: float, half: float = math.nan) -> str:
    if not np.isfinite(m):
        return "—"
    return f"{m:.3f} ± {half:.3f}" if np.isfinite(half) else f"{m:.3f}"


def interval(r: Reduction) -> str:
    if r.n < 2 or not np.isfinite(r.point):
        return "n/a (one seed)" if r.n == 1 else "n/a"
    if not (np.isfinite(r.lo) and np.isfinite(r.hi)):
        return "unbounded (baseline failures not distinguishable from 0)"
    return f"[{100 * r.lo:.1f}, {100 * r.hi:.1f}] %"


def schedulers(ds) -> list[str]:
    """Every scheduler of the store, in registry order (unknown names last)."""
    return policies.ordered(ds[SCHEDULER].values)


def per_seed(da: xr.DataArray, **at) -> np.ndarray:
    """Values over seeds of ``da`` at coordinates ``at`` (one value if there is no seed)."""
    return np.atleast_1d(da.sel(at).values.astype(float)).ravel()


def seeds_cell(ns: list[int], total: int) -> str:
    lo, hi = min(ns), max(ns)
    text = str(hi) if lo == hi else f"{lo}-{hi}"
    return text if lo == total else f"**{text} of {total}**"


def by_scheduler(ds, metric: str, xdim: str, xhead: str, percent: bool = True) -> str:
    """Mean ± 95 % t half-width over seeds, one row per scheduler, one column per value of
    ``xdim``; a last row counts the seeds behind each column, in bold when short of the
    store's seed count. A cell whose count differs from its column's says its own n."""
    if metric not in ds:
        raise Skip(f"the store has no variable `{metric}`")
    total = ds.sizes.get(SEED, 1)
    xs = ds[xdim].values
    scheds = schedulers(ds)
    stats: dict[tuple[str, int], Mean] = {
        (s, j): mean_ci(per_seed(ds[metric], scheduler=s, **{xdim: x}))
        for s in scheds
        for j, x in enumerate(xs)
    }
    lines = [
        f"| scheduler \\ {xhead} | " + " | ".join(label(x) for x in xs) + " |",
        "|---|" + "---|" * len(xs),
    ]
    for s in scheds:
        cells = []
        for j in range(len(xs)):
            st = stats[(s, j)]
            text = pct(st.mean, st.half) if percent else num(st.mean, st.half)
            top = max(stats[(t, j)].n for t in scheds)
            cells.append(text + (f" (n={st.n})" if st.n != top and st.n else ""))
        lines.append(f"| `{s}` | " + " | ".join(cells) + " |")
    counts = [seeds_cell([stats[(s, j)].n for s in scheds], total) for j in range(len(xs))]
    lines.append("| seeds | " + " | ".join(counts) + " |")
    return "\n".join(lines)


def failures(ds) -> xr.DataArray:
    """Failed requests (timed out + failed otherwise) per cell and scheduler."""
    absent = [v for v in FAILED if v not in ds]
    if absent:
        raise Skip(f"the store has no variable {', '.join(f'`{v}`' for v in absent)}")
    return ds[FAILED[0]] + ds[FAILED[1]]


def reductions(ds, xdim: str, new: str, base: str) -> list[tuple[object, Reduction]]:
    """Failure reduction of ``new`` against ``base`` per value of ``xdim``, failures
    pooled over seeds (the seeds are paired: same random numbers)."""
    missing = [s for s in (new, base) if s not in ds[SCHEDULER].values]
    if missing:
        raise Skip(f"needs scheduler{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    bad = failures(ds)
    return [
        (
            x,
            reduction_ci(
                per_seed(bad, scheduler=new, **{xdim: x}),
                per_seed(bad, scheduler=base, **{xdim: x}),
            ),
        )
        for x in ds[xdim].values
    ]


def reduction_table(rows, xhead: str, total: int, study: dict | None = None) -> str:
    """One row per value: the pooled reduction, its 95 % Fieller interval, the seeds, and
    (``study``: {value: %}) the study's figure beside it."""
    head = f"| {xhead} | reduction | 95 % interval | seeds |" + (" study |" if study else "")
    lines = [head, "|---|---|---|---|" + ("---|" if study else "")]
    for x, r in rows:
        point = f"{100 * r.point:.1f} %" if np.isfinite(r.point) else "—"
        row = f"| {label(x)} | {point} | {interval(r)} | {seeds_cell([r.n], total)} |"
        if study is not None:
            fig = study.get(round(float(x), 4))
            row += f" {fig} % |" if fig is not None else " |"
        lines.append(row)
    return "\n".join(lines)


__all__ = [
    "by_scheduler",
    "failures",
    "interval",
    "num",
    "pct",
    "per_seed",
    "reduction_table",
    "reductions",
    "schedulers",
    "seeds_cell",
]
