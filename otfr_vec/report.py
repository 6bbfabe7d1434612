"""Figures and tables of the study's results (R1-R10) from sweep stores.

    python -m otfr_vec.report outputs/severity.zarr outputs/label_noise.zarr --out outputs/report

Each result declares the dimensions it needs; a store set that lacks them yields that
result's skip message and the rest of the report. Every number in REPORT.md is computed
here from the stores (means over seeds with 95 % confidence intervals), and the report
embeds the provenance of the stores it read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from . import policies

STUDY_R1 = {0.10: 89.6, 0.05: 90.5, 0.01: 95.7}  # the study, % (docs/MODEL.md section 1)
HYBRID, BASELINE = "fault_aware_otfr", "fault_aware_lc"


class Skip(Exception):
    """A result cannot be drawn from the given stores; the message says why."""


# ---------------------------------------------------------------- statistics


def t95(n: int) -> float:
    """Two-sided 95 % Student t quantile for n - 1 degrees of freedom (n >= 2)."""
    table = {
        1: 12.706,
        2: 4.303,
        3: 3.182,
        4: 2.776,
        5: 2.571,
        6: 2.447,
        7: 2.365,
        8: 2.306,
        9: 2.262,
        10: 2.228,
        15: 2.131,
        20: 2.086,
        30: 2.042,
    }
    df = n - 1
    if df in table:
        return table[df]
    keys = [k for k in table if k <= df]
    return table[max(keys)] if df < 30 else 1.96


def mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of its 95 % confidence interval over the last axis (seeds)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    if v.size == 1:
        return float(v[0]), float("nan")
    return float(v.mean()), float(t95(v.size) * v.std(ddof=1) / math.sqrt(v.size))


def reduction_ci(hybrid: np.ndarray, baseline: np.ndarray, rng_seed: int = 0):
    """Reduction 1 - sum(hybrid)/sum(baseline) over seeds, with a 95 % bootstrap CI.

    Pooled over seeds (a ratio of sums, not a mean of per-seed ratios, which is unstable
    when one seed has almost no failures); the interval resamples seeds, deterministically.
    """
    h, b = np.asarray(hybrid, float), np.asarray(baseline, float)
    if b.sum() <= 0:
        return float("nan"), float("nan"), float("nan")
    point = 1.0 - h.sum() / b.sum()
    if h.size < 2:
        return point, float("nan"), float("nan")
    g = np.random.default_rng(rng_seed)
    idx = g.integers(0, h.size, (2000, h.size))
    hs, bs = h[idx].sum(axis=1), b[idx].sum(axis=1)
    ok = bs > 0
    boots = 1.0 - hs[ok] / bs[ok]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(point), float(lo), float(hi)


# ---------------------------------------------------------------- store helpers


def find_dim(ds: xr.Dataset, key: str) -> str | None:
    """The dimension of ``ds`` for config key ``key`` (``degradation.r`` or just ``r``)."""
    for d in ds.dims:
        if d == key or d.replace("/", ".") == key:
            return d
    short = key.split(".")[-1]
    hits = [d for d in ds.dims if str(d).split(".")[-1] == short]
    return hits[0] if len(hits) == 1 else None


def swept_dims(ds: xr.Dataset) -> list[str]:
    return [d for d in ds["failure_rate"].dims if d not in ("scheduler", "seed")]


def collapse(da: xr.DataArray, keep: list[str]) -> xr.DataArray:
    """Average every swept dimension not in ``keep`` (size-1 ones are just dropped)."""
    for d in list(da.dims):
        if d not in keep and d not in ("scheduler", "seed"):
            da = da.isel({d: 0}) if da.sizes[d] == 1 else da.mean(d)
    return da


def at_defaults(ds: xr.Dataset, keep: list[str]) -> xr.Dataset:
    """``ds`` with every swept dimension not in ``keep`` at its configuration default.

    A dimension whose default value was not swept is averaged instead.
    """
    from omegaconf import OmegaConf

    from .config.schema import Config

    defaults = OmegaConf.structured(Config)
    for d in swept_dims(ds):
        if d in keep:
            continue
        value = OmegaConf.select(defaults, str(d))
        hit = [v for v in ds[d].values if value is not None and v == value]
        ds = ds.sel({d: hit[0]}) if hit else ds.mean(d)
    return ds


def with_seed(da: xr.DataArray) -> xr.DataArray:
    return da if "seed" in da.dims else da.expand_dims(seed=[0])


def fmt_pct(v: float, ci: float | None = None) -> str:
    if not np.isfinite(v):
        return "n/a"
    if ci is None or not np.isfinite(ci):
        return f"{100 * v:.3f} %"
    return f"{100 * v:.3f} ± {100 * ci:.3f} %"


def label(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


# ---------------------------------------------------------------- figures


@dataclass
class Result:
    key: str
    title: str
    needs: tuple[str, ...]  # config keys that must be swept dimensions
    draw: Callable  # (ds, out_dir) -> markdown text


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_lines(ds, metric, xdim, path, ylabel, log=False, schedulers=None, facet=None):
    """Mean over seeds with 95 % CI bars, one line per scheduler, one panel per facet."""
    plt = _plt()
    schedulers = [
        s for s in policies.ordered(ds.scheduler.values) if s in (schedulers or policies.names())
    ]
    facets = list(ds[facet].values) if facet else [None]
    fig, axes = plt.subplots(1, len(facets), figsize=(4.8 * len(facets), 3.8), squeeze=False)
    keep = [xdim] + ([facet] if facet else [])
    da = with_seed(collapse(ds[metric], keep))
    xs = ds[xdim].values
    categorical = xs.dtype.kind in "OUS"
    for ax, fv in zip(axes[0], facets, strict=True):
        sub = da.sel({facet: fv}) if facet else da
        for k, s in enumerate(schedulers):
            stats = [mean_ci(sub.sel(scheduler=s, **{xdim: x}).values.ravel()) for x in xs]
            m = np.array([a for a, _ in stats])
            ci = np.array([b for _, b in stats])
            pos = np.arange(len(xs)) + (k - len(schedulers) / 2) * 0.06 if categorical else xs
            scale = 100 if metric.endswith("rate") else 1
            ci = np.nan_to_num(ci)
            # on a log axis a bar must not cross zero: clip the lower half at the mean
            yerr = np.array([np.minimum(ci, np.abs(m)) if log else ci, ci]) * scale
            ax.errorbar(
                pos,
                m * scale,
                yerr=yerr,
                label=s,
                color=policies.color(s),
                marker="o",
                ms=4,
                capsize=3,
                ls="-" if not categorical else "none",
            )
        if categorical:
            ax.set_xticks(np.arange(len(xs)), [label(x) for x in xs])
        ax.set_xlabel(xdim)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("symlog", linthresh=1e-3 if not metric.endswith("rate") else 1e-2)
            ax.set_ylim(bottom=0)
        if facet:
            ax.set_title(f"{facet} = {label(fv)}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(ds, metric, xdim, pct=True, schedulers=None) -> str:
    schedulers = [
        s for s in policies.ordered(ds.scheduler.values) if s in (schedulers or policies.names())
    ]
    da = with_seed(collapse(ds[metric], [xdim]))
    head = f"| {xdim} | " + " | ".join(schedulers) + " |"
    lines = [head, "|" + "---|" * (len(schedulers) + 1)]
    for x in ds[xdim].values:
        cells = []
        for s in schedulers:
            m, ci = mean_ci(da.sel(scheduler=s, **{xdim: x}).values.ravel())
            cells.append(
                fmt_pct(m, ci)
                if pct
                else (f"{m:.3f} ± {ci:.3f}" if np.isfinite(ci) else f"{m:.3f}")
            )
        lines.append(f"| {label(x)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _gain(ds, dim):
    """(value, reduction, CI low, CI high, seeds) of the hybrid vs fault_aware_lc per value
    of ``dim``, failures pooled over seeds (and over other swept keys)."""
    if not {HYBRID, BASELINE} <= set(ds.scheduler.values):
        raise Skip(f"needs schedulers {HYBRID} and {BASELINE}")
    bad = with_seed(collapse(ds["timed_out"] + ds["failed_other"], [dim]))
    rows = []
    for x in ds[dim].values:
        h = bad.sel(scheduler=HYBRID, **{dim: x}).values.ravel()
        b = bad.sel(scheduler=BASELINE, **{dim: x}).values.ravel()
        rows.append((x, *reduction_ci(h, b), h.size))
    return rows


def reduction_table(ds, xdim) -> str:
    """Hybrid vs fault_aware_lc failure reduction per value of ``xdim`` with 95 % CI."""
    is_r = xdim == find_dim(ds, "degradation.r")  # the study's R1 figures go beside r
    lines = [
        f"| {xdim} | reduction | 95 % CI | seeds |" + (" study |" if is_r else ""),
        "|---|---|---|---|" + ("---|" if is_r else ""),
    ]
    for x, p, lo, hi, n in _gain(ds, xdim):
        ci = f"[{100 * lo:.1f}, {100 * hi:.1f}] %" if np.isfinite(lo) else "n/a (one seed)"
        row = f"| {label(x)} | {100 * p:.1f} % | {ci} | {n} |"
        if is_r:
            study = STUDY_R1.get(round(float(x), 2))
            row += f" {study} % |" if study else " |"
        lines.append(row)
    return "\n".join(lines)


def need(ds, *keys) -> list[str]:
    dims = []
    for k in keys:
        d = find_dim(ds, k)
        if d is None:
            raise Skip(
                f"needs a swept dimension `{k}` (found: {', '.join(swept_dims(ds)) or 'none'})"
            )
        dims.append(d)
    return dims


# ---------------------------------------------------------------- the results


def r1(ds, out):
    (r,) = need(ds, "degradation.r")
    plot_lines(ds, "failure_rate", r, out / "R1_failure_rate.png", "failure rate (%)", log=True)
    return (
        f"![R1](R1_failure_rate.png)\n\nFailure rate (mean ± 95 % CI over seeds):\n\n"
        f"{table(ds, 'failure_rate', r)}\n\n"
        f"Failure reduction of `{HYBRID}` against `{BASELINE}` (pooled over seeds, bootstrap "
        f"CI over seeds), next to the study's figure:\n\n{reduction_table(ds, r)}\n\n"
        f"Gap to oracle:\n\n{table(ds, 'gap_to_oracle', r)}"
    )


def by_r(ds, out, metric, name, ylabel):
    """A unitless metric by degradation severity: figure and table."""
    (r,) = need(ds, "degradation.r")
    plot_lines(ds, metric, r, out / f"{name}.png", ylabel)
    return f"![{name}]({name}.png)\n\n{table(ds, metric, r, pct=False)}"


def r2(ds, out):
    return by_r(ds, out, "resilience_index", "R2_resilience", "resilience index")


def r3(ds, out):
    (mode,) = need(ds, "telemetry.mode")
    r = find_dim(ds, "degradation.r")
    plot_lines(
        ds, "failure_rate", mode, out / "R3_telemetry.png", "failure rate (%)", log=True, facet=r
    )
    return (
        f"![R3](R3_telemetry.png)\n\n{table(ds, 'failure_rate', mode)}\n\n"
        f"{reduction_table(ds, mode)}"
    )


def r4(ds, out):
    return by_r(ds, out, "deflection_ratio", "R4_deflection", "traffic deflection ratio")


def r5(ds, out):
    dims = [
        d
        for d in (find_dim(ds, k) for k in ("health.delay", "health.miss", "health.noise"))
        if d is not None
    ]
    if not dims:
        raise Skip("needs a swept `health.delay`, `health.miss` or `health.noise`")
    plt = _plt()
    fig, axes = plt.subplots(1, len(dims), figsize=(4.5 * len(dims), 3.6), squeeze=False)
    text = []
    for ax, d in zip(axes[0], dims, strict=True):
        rows = _gain(ds, d)
        xs = np.arange(len(rows)) if ds[d].dtype.kind in "OUS" else ds[d].values
        p = np.array([100 * r[1] for r in rows])
        err = np.array([[100 * (r[1] - r[2]), 100 * (r[3] - r[1])] for r in rows]).T
        ax.errorbar(
            xs, p, yerr=np.nan_to_num(err), color=policies.color(HYBRID), marker="o", capsize=3
        )
        ax.set_xlabel(d)
        ax.set_ylabel(f"failure reduction vs {BASELINE} (%)")
        ax.grid(alpha=0.3)
        text.append(reduction_table(ds, d))
    fig.suptitle("Gain of the hybrid as labels degrade")
    fig.tight_layout()
    fig.savefig(out / "R5_label_gain.png", dpi=110)
    plt.close(fig)
    return "![R5](R5_label_gain.png)\n\n" + "\n\n".join(text)


def sensitivity(ds, out):
    keys = (
        "weights.lambda_r",
        "weights.lambda_p",
        "weights.lambda_f",
        "price.alpha",
        "price.beta",
        "price.gamma",
        "price.eta",
        "price.halflife",
        "price.kappa",
        "network.bw0",
    )
    dims = [d for d in swept_dims(ds) if d in keys]
    if len(dims) < 2:
        raise Skip(f"needs at least two swept price, weight or bandwidth keys ({', '.join(keys)})")
    slices = {d: at_defaults(ds, [d]) for d in dims}  # one key at a time, others at default
    plt = _plt()
    fig, axes = plt.subplots(1, len(dims), figsize=(4.2 * len(dims), 3.6), squeeze=False)
    for ax, d in zip(axes[0], dims, strict=True):
        sl = slices[d]
        for sched in (BASELINE, "otfr", HYBRID):
            y = 100 * sl["failure_rate"].sel(scheduler=sched)
            y = y.mean("seed") if "seed" in y.dims else y
            ax.plot(
                range(sl.sizes[d]), y.values, marker="o", color=policies.color(sched), label=sched
            )
        ax.set_xticks(range(sl.sizes[d]), [label(v) for v in sl[d].values])
        ax.set_yscale("log")
        ax.set_xlabel(d)
        ax.set_ylabel("failure rate (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("One key at a time, every other swept key at its default")
    fig.tight_layout()
    fig.savefig(out / "S_sensitivity.png", dpi=110)
    plt.close(fig)
    parts = [
        reduction_table(sl, d) + "\n\n" + table(sl, "failure_rate", d) for d, sl in slices.items()
    ]
    return (
        "![S](S_sensitivity.png)\n\nEach key varied alone, every other swept key held at "
        "its default (`otfr_vec/config/schema.py`; averaged where the grid lacks the "
        "default):\n\n" + "\n\n".join(parts)
    )


def r6(ds, out):
    delay, noise = need(ds, "health.delay", "health.noise")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    fr = collapse(ds["failure_rate"], [delay, noise])
    grids = {}
    for ax, s in zip(axes, (BASELINE, HYBRID), strict=True):
        z = 100 * fr.sel(scheduler=s).mean("seed" if "seed" in fr.dims else []).transpose(
            delay, noise
        )
        grids[s] = z
        im = ax.imshow(
            z.values,
            origin="lower",
            aspect="auto",
            cmap="magma_r",
            vmin=0,
            vmax=float(100 * fr.sel(scheduler=BASELINE).max()),
        )
        ax.set_xticks(range(ds.sizes[noise]), [label(v) for v in ds[noise].values])
        ax.set_yticks(range(ds.sizes[delay]), [label(v) for v in ds[delay].values])
        ax.set_xlabel(f"{noise}")
        ax.set_ylabel(f"{delay} (s)")
        ax.set_title(f"{s}: failure rate (%)")
        for (i, j), v in np.ndenumerate(z.values):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="#777")
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(out / "R6_delay_noise.png", dpi=110)
    plt.close(fig)
    rows = [
        f"| {delay} \\ {noise} | " + " | ".join(label(v) for v in ds[noise].values) + " |",
        "|---|" + "---|" * ds.sizes[noise],
    ]
    for i, dv in enumerate(ds[delay].values):
        cells = [
            f"{grids[HYBRID].values[i, j]:.3f} / {grids[BASELINE].values[i, j]:.3f}"
            for j in range(ds.sizes[noise])
        ]
        rows.append(f"| {label(dv)} | " + " | ".join(cells) + " |")
    return (
        "![R6](R6_delay_noise.png)\n\nFailure rate % (hybrid / fault_aware_lc), mean over "
        "seeds:\n\n" + "\n".join(rows)
    )


def failure_by_each(ds, out, keys, prefix, what, reduction=False):
    """Failure rate along each swept key among ``keys``: one figure and table per key."""
    dims = [d for d in swept_dims(ds) if d in keys]
    if not dims:
        raise Skip(f"needs a swept {what} ({', '.join(keys)})")
    parts = []
    for d in dims:
        name = f"{prefix}_{str(d).split('.')[-1]}.png"
        plot_lines(ds, "failure_rate", d, out / name, "failure rate (%)", log=True)
        text = f"![{prefix}]({name})\n\n{table(ds, 'failure_rate', d)}"
        parts.append(text + (f"\n\n{reduction_table(ds, d)}" if reduction else ""))
    return "\n\n".join(parts)


def r7(ds, out):
    keys = ("cluster.pods", "cluster.workers_per_pod", "workload.load", "workload.rate")
    return failure_by_each(ds, out, keys, "R7_stress", "cluster size or load")


def r9(ds, out):
    keys = (
        "workload.kind",
        "workload.trace",
        "workload.prompt_dist",
        "workload.output_dist",
        "workload.prompt_mean",
        "network.kv_bytes_per_token",
    )
    return failure_by_each(
        ds, out, keys, "R9_workload", "request distribution or KV size", reduction=True
    )


def r8(ds, out):
    """Mechanism time series of one run: factor, price, traffic share, failures."""
    if not {"window", "pod"} <= set(ds.dims) or "price" not in ds:
        raise Skip("needs a single-run store with time series (`python -m otfr_vec.run out=...`)")
    if "seed" in ds.dims:
        ds = ds.isel(seed=0)
    for d in swept_dims(ds):
        ds = ds.isel({d: 0})
    plt = _plt()
    t = ds.window.values
    f = ds.bandwidth_factor.values
    degraded = f.min(axis=0) < 1.0
    if not degraded.any():
        raise Skip("the run has no degraded pod")
    fig, ax = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    ax[0].plot(t, f[:, degraded].mean(1), color="k", label="degraded pods")
    ax[0].plot(t, ds.health_label.values[:, degraded].mean(1), color="k", ls=":", label="label")
    ax[0].set_ylabel("bandwidth factor / label")
    for s in ds.scheduler.values:
        s = str(s)
        routed = ds.routed.sel(scheduler=s).values.astype(float)
        total = routed.sum(1)
        share = np.divide(
            routed[:, degraded].sum(1), total, out=np.full_like(total, np.nan), where=total > 0
        )
        ax[2].plot(t, 100 * share, color=policies.color(s), label=s)
        fails = ds.failures.sel(scheduler=s).values
        ax[3].plot(t, fails[:, degraded].sum(1), color=policies.color(s))
        if s in ("otfr", HYBRID):
            price = ds.price.sel(scheduler=s).values
            ax[1].plot(
                t, price[:, degraded].mean(1), color=policies.color(s), label=f"{s} degraded"
            )
            ax[1].plot(
                t,
                price[:, ~degraded].mean(1),
                color=policies.color(s),
                ls="--",
                label=f"{s} healthy",
            )
    ax[1].set_ylabel("risk price pi")
    ax[2].set_ylabel("traffic to degraded pods (%)")
    ax[3].set_ylabel("failures charged to\ndegraded pods / window")
    ax[3].set_xlabel("time (s)")
    for a in ax:
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "R8_mechanism.png", dpi=110)
    plt.close(fig)
    return (
        "![R8](R8_mechanism.png)\n\nDegraded pods: "
        f"{', '.join(str(p) for p in ds.pod.values[degraded])}.\n\n"
        f"{table(ds.expand_dims(x=['run']), 'failure_rate', 'x')}"
    )


def read_md_table(text: str, heading: str) -> list[dict]:
    """The first Markdown table after the line starting with ``heading``, as dicts."""
    lines = text.splitlines()
    at = next((i for i, ln in enumerate(lines) if ln.startswith(heading)), None)
    if at is None:
        return []
    block = []
    for ln in lines[at + 1 :]:
        if ln.startswith("|"):
            block.append(ln)
        elif block:
            break
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in block]
    if len(rows) < 3:
        return []
    return [dict(zip(rows[0], r, strict=False)) for r in rows[2:]]


def median_of(cell: str) -> float:
    """``'1,511.3 [1,506.7-1,511.5]'`` -> 1511.3."""
    return float(cell.split("[")[0].replace(",", "").strip())


def r10(results_md: Path, out):
    """Decision overhead, read from the benchmark results (``make bench``)."""
    if not results_md.exists():
        raise Skip(f"no benchmark results at {results_md} (run `make bench`)")
    text = results_md.read_text()
    rows = [r for r in read_md_table(text, "## Decision latency") if r.get("scheduler") == HYBRID]
    if not rows:
        raise Skip(f"{results_md} has no decision-latency table for {HYBRID}")
    variants = [
        c
        for c in rows[0]
        if c not in ("targets", "scheduler") and "x" not in c.split() and c != "rebuild"
    ]
    n = np.array([int(r["targets"].replace(",", "")) for r in rows])
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for v in variants:
        ax.loglog(n, [median_of(r[v]) for r in rows], marker="o", label=v)
    ax.axhline(1e6, color="k", ls="--", lw=1, label="the study: ~1 ms")
    ax.set_xlabel("targets")
    ax.set_ylabel(f"ns per {HYBRID} decision (median)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "R10_decision.png", dpi=110)
    plt.close(fig)
    head = [ln for ln in text.splitlines() if ln.startswith("- ")][:4]
    cols = ["targets", *variants]
    table_md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    table_md += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    return (
        f"![R10](R10_decision.png)\n\nFrom `{results_md}` (ns per decision, median "
        "[min-max]):\n\n" + "\n".join(head) + "\n\n" + "\n".join(table_md)
    )


RESULTS = [
    Result("R1", "Failure rate by degradation severity", ("degradation.r",), r1),
    Result("R2", "Resilience index", ("degradation.r",), r2),
    Result("R3", "Telemetry modes", ("telemetry.mode",), r3),
    Result("R4", "Traffic deflection", ("degradation.r",), r4),
    Result("R5", "Gain as health labels degrade", (), r5),
    Result("R6", "Label delay x label noise", ("health.delay", "health.noise"), r6),
    Result("R7", "Stress: cluster size and load", (), r7),
    Result("R8", "Mechanism time series of one run", (), r8),
    Result("R9", "Workload robustness", (), r9),
    Result("S", "Sensitivity: where the claims stop holding", (), sensitivity),
]


# ---------------------------------------------------------------- the report


def open_store(path: str) -> xr.Dataset:
    p = Path(path)
    if not p.exists():
        raise SystemExit(f"error: {path}: no such store")
    try:
        ds = xr.open_zarr(p)
    except Exception as err:  # zarr raises several types for "not a store"
        raise SystemExit(f"error: {path}: not a Zarr store readable by xarray ({err})") from None
    if "failure_rate" not in ds or "scheduler" not in ds.dims:
        raise SystemExit(f"error: {path}: not an otfr_vec store (no failure_rate by scheduler)")
    if "done" in ds:  # a sweep still running or interrupted: use finished cells only
        done = ds["done"].load()
        if not bool(done.any()):
            raise SystemExit(f"error: {path}: no finished cell yet")
        if not bool(done.all()):
            print(
                f"note: {path}: {int(done.sum())} of {done.size} cells finished; "
                "the report uses those",
                file=sys.stderr,
            )
            ds = ds.where(done)
    return ds


def provenance(path: str, ds: xr.Dataset) -> str:
    keep = {k: v for k, v in ds.attrs.items() if not str(k).endswith("config")}
    dims = ", ".join(f"{d}={n}" for d, n in ds.sizes.items())
    lines = [f"- `{path}`: {dims}"]
    lines += [f"  - {k}: {v}" for k, v in sorted(keep.items())]
    cfg = next((v for k, v in ds.attrs.items() if str(k).endswith("config")), None)
    if cfg:
        lines.append(
            "  <details><summary>resolved config</summary>\n\n```yaml\n"
            f"{cfg if isinstance(cfg, str) else json.dumps(cfg, indent=1)}\n```\n</details>"
        )
    return "\n".join(lines)


def build_report(stores: list[str], out: Path, bench: Path) -> tuple[Path, list[str]]:
    out.mkdir(parents=True, exist_ok=True)
    opened = [(s, open_store(s)) for s in stores]
    sections, skipped = [], []
    for res in RESULTS:
        reasons = []
        for path, ds in opened:
            try:
                text = res.draw(ds.load(), out)
            except Skip as why:
                reasons.append(f"`{path}`: {why}")
                continue
            sections.append(f"## {res.key}: {res.title}\n\nFrom `{path}`.\n\n{text}")
            break
        else:
            skipped.append(f"{res.key} ({res.title}) skipped: " + "; ".join(reasons))
    try:
        sections.append(f"## R10: Scheduler decision overhead\n\n{r10(bench, out)}")
    except Skip as why:
        skipped.append(f"R10 (decision overhead) skipped: {why}")
    body = [
        "# otfr_vec report",
        "",
        "Every number below is computed from the stores listed "
        "under *Provenance*; figures show means over seeds with 95 % confidence intervals.",
        "",
    ]
    body += sections
    if skipped:
        body += ["## Skipped", ""] + [f"- {s}" for s in skipped]
    body += ["", "## Provenance", ""] + [provenance(p, ds) for p, ds in opened]
    report = out / "REPORT.md"
    report.write_text("\n\n".join(body).replace("\n\n\n", "\n\n") + "\n")
    return report, skipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m otfr_vec.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("stores", nargs="+", help="Zarr stores written by sweeps or runs")
    ap.add_argument("--out", help="output folder (default: next to the first store)")
    ap.add_argument(
        "--bench",
        default="benchmarks/RESULTS.md",
        help="benchmark results for R10 (reads the .json beside it)",
    )
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.stores[0]).resolve().parent / "report"
    report, skipped = build_report(args.stores, out, Path(args.bench))
    for s in skipped:
        print(f"skip: {s}", file=sys.stderr)
    print(f"wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
