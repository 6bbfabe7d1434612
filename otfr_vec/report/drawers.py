"""The study's results R1-R9 and the sensitivity result: what each needs from a store
(``check``, which raises Skip) and its figure and tables (``draw``, Markdown)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import policies
from . import plots
from .stats import mean_ci
from .stores import SCHEDULER, SEED, Skip, Store, at_defaults, label
from .tables import by_scheduler, per_seed, reduction_table, reductions, schedulers

HYBRID, BASELINE = "fault_aware_otfr", "fault_aware_lc"  # the study's headline comparison
PRICED = (HYBRID, "otfr")  # the study's schedulers that pay the risk price
STUDY_R1 = {0.1: 89.6, 0.05: 90.5, 0.01: 95.7}  # the study's R1 reductions, %


@dataclass(frozen=True)
class Result:
    key: str
    title: str
    grid: str | None  # the grid this result comes from (preferred among stores)
    check: Callable[[Store], object]  # raises Skip; returns what draw needs
    draw: Callable[[Store, object, Path], str]  # Markdown
    fallback: tuple = ()  # grids preferred, in order, when no store of ``grid`` is given


def dim(store: Store, key: str) -> str:
    for d in store.axes:
        if d == key or d.replace("/", ".") == key:
            return d
    found = ", ".join(store.axes) or "none"
    raise Skip(f"needs a swept `{key}` (swept: {found})")


def dims_among(store: Store, keys, what: str, least: int = 1) -> list[str]:
    dims = [d for d in store.axes if d in keys]
    if len(dims) < least:
        many = f"at least {least} " if least > 1 else ""
        raise Skip(f"needs {many}swept {what} ({', '.join(keys)})")
    return dims


def has(store: Store, *names: str) -> None:
    absent = [n for n in names if n not in store.ds]
    if absent:
        raise Skip(f"the store has no variable {', '.join(f'`{n}`' for n in absent)}")


def has_pair(store: Store) -> None:
    absent = [s for s in (HYBRID, BASELINE) if s not in store.ds[SCHEDULER].values]
    if absent:
        raise Skip(f"needs scheduler {' and '.join(absent)} for the reduction")


# ---------------------------------------------------------------- shared pieces


def line_panel(ax, ds, metric, xa: plots.XAxis, scheds, scale=1.0, log=False) -> None:
    """One line per scheduler: mean over seeds with its 95 % t interval, dodged."""
    lows, highs, seen, zeros = [], [], np.zeros(len(xa.values), bool), []
    for k, s in enumerate(scheds):
        st = [mean_ci(per_seed(ds[metric], scheduler=s, **{xa.dim: x})) for x in xa.values]
        m = np.array([a.mean for a in st]) * scale
        half = np.array([a.half for a in st]) * scale
        x = xa.positions(k, len(scheds))
        style = plots.scheduler_style(s)
        if xa.categorical:  # no line between categories
            style["ls"] = "none"
        plots.errorbar(ax, x, m, half, log=log, label=s, **style)
        lows += list(m) + list(m - np.nan_to_num(half))
        highs += list(m + np.nan_to_num(half))
        seen |= np.isfinite(m)
        zeros += [(xi, style["color"]) for xi, mi in zip(x, m, strict=True) if mi == 0]
    xa.apply(ax)
    xa.mark_missing(ax, ~seen)
    if log:
        plots.log_limits(ax, lows, highs)
        plots.mark_zeros(ax, zeros)
    else:
        ax.grid(alpha=0.3)


def reduction_panel(ax, rows, xa: plots.XAxis, color, label_=None, k=0, of=1) -> None:
    p = np.array([100 * r.point for _, r in rows])
    lo = np.array([100 * r.lo for _, r in rows])
    hi = np.array([100 * r.hi for _, r in rows])
    err = np.array([p - lo, hi - p])
    err[~np.isfinite(err)] = 0.0  # one seed or unbounded: no bar (the table says which)
    x = xa.positions(k, of)
    ax.errorbar(x, p, yerr=err, color=color, marker="o", capsize=3, label=label_)
    for xi, pi in zip(x, p, strict=True):
        if np.isfinite(pi):
            ax.annotate(
                f"{pi:.1f}", (xi, pi), textcoords="offset points", xytext=(5, -11), fontsize=7
            )


def zero_based(axes, rows_list) -> None:
    """Shared y limits from 0 (or below, if a reduction is negative) to 100 %."""
    lows = [100 * r.lo for rows in rows_list for _, r in rows if np.isfinite(r.lo)]
    lows += [100 * r.point for rows in rows_list for _, r in rows if np.isfinite(r.point)]
    bottom = min([0.0, *lows])
    for ax in axes:
        ax.set_ylim(bottom - 5 if bottom < 0 else 0, 102)
        ax.axhline(0, color="k", lw=0.8)


def source_note(store: Store, note: str = "") -> str:
    text = f"From `{store.path}` ({store.describe()})."
    if note:
        text += f" {note[0].upper()}{note[1:]}"
    if store.seeds == 2:
        text += (
            " With 2 seeds a 95 % t interval is wide by design (t = 12.7); more seeds: "
            "`sweep.seeds=N`."
        )
    if store.damaged:
        text += (
            "\n\n**Damaged cells left out** (marked done, but a value cannot be read or "
            "is missing, or the counts disagree: arrived is not completed + failed + in "
            "flight, or failure_rate x arrived is not the failures; a lost or corrupted "
            f"chunk): {'; '.join(store.damaged[:6])}"
            + (f"; and {len(store.damaged) - 6} more" if len(store.damaged) > 6 else "")
            + "."
        )
    if store.unfinished:
        shown = "; ".join(store.unfinished[:6])
        more = f"; and {len(store.unfinished) - 6} more points" if len(store.unfinished) > 6 else ""
        text += (
            f"\n\n**Not finished**: {shown}{more}. Those points count fewer seeds (bold in "
            "the seeds rows) or none (—)."
        )
    return text


def study_warning(store: Store) -> str:
    """Beside the study's figures: say plainly when this store's setting is not the
    study's, naming the keys."""
    diff = store.differs()
    if diff is None:
        return (
            "**Caution**: the store records no configuration, so whether it ran the study's "
            "setting is unknown; compare with the study's figures with care."
        )
    if diff:
        return (
            "**Not the study's setting**: this store differs from it in "
            + "; ".join(f"`{d}`" for d in diff)
            + ". The study's figures beside ours are for its own setting, not this one."
        )
    return "The store ran the study's setting (every other key at its default)."


# ---------------------------------------------------------------- R1, R2, R4


def check_r(store: Store):
    has(store, "failure_rate")
    return dim(store, "degradation.r")


def r1(store: Store, r: str, out: Path) -> str:
    ds, held = at_defaults(store.ds, [r])
    plt = plots.pyplot()
    xa = plots.XAxis(ds, r)
    pair = {HYBRID, BASELINE} <= set(ds[SCHEDULER].values) and "timed_out" in ds
    fig, axes = plt.subplots(1, 2 if pair else 1, figsize=(12 if pair else 7, 4.4), squeeze=False)
    ax = axes[0][0]
    line_panel(ax, ds, "failure_rate", xa, schedulers(ds), scale=100, log=True)
    ax.set_ylabel(plots.FAILURE_PCT + ", log scale")
    ax.set_title("Failure rate by scheduler (mean, 95 % t interval over seeds)", fontsize=10)
    plots.legend_below(fig, ax)
    text = [
        source_note(store, held),
        plots.image(
            "R1: failure rate by r per scheduler; the hybrid's reduction and the study's",
            "R1_failure_rate.png",
        ),
        "Failure rate, mean ± 95 % t interval over seeds:",
        by_scheduler(ds, "failure_rate", r, "r"),
    ]
    if pair:
        rows = reductions(ds, r, HYBRID, BASELINE)
        ax2 = axes[0][1]
        reduction_panel(ax2, rows, xa, policies.color(HYBRID), f"{HYBRID} vs {BASELINE}")
        study_x = [x for x in xa.values if round(float(x), 4) in STUDY_R1]
        if study_x:
            other = bool(store.differs() or store.differs() is None)
            ax2.plot(
                study_x,
                [STUDY_R1[round(float(x), 4)] for x in study_x],
                "kD",
                mfc="none",
                ms=7,
                label="the study" + (" (its own setting, not this store's)" if other else ""),
            )
        zero_based([ax2], [rows])
        xa.apply(ax2)
        ax2.set_ylabel(f"failure reduction vs {BASELINE} (%)")
        ax2.set_title(
            f"1 - failures({HYBRID}) / failures({BASELINE}), pooled over seeds",
            fontsize=10,
        )
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=8, loc="lower right")
        text += [
            f"Failure reduction of `{HYBRID}` against `{BASELINE}` (failures pooled over "
            "seeds, 95 % Fieller interval over paired seeds), beside the study's figure:",
            reduction_table(rows, "r", store.seeds, study=STUDY_R1),
            study_warning(store),
        ]
    else:
        text.append(f"No reduction: the store lacks `{HYBRID}`, `{BASELINE}` or failure counts.")
    fig.tight_layout()
    plots.save(fig, out / "R1_failure_rate.png")
    if "gap_to_oracle" in ds and "oracle" in ds[SCHEDULER].values:
        text += [
            "Gap to `oracle` (failure rate minus the oracle's, same run):",
            by_scheduler(ds, "gap_to_oracle", r, "r"),
        ]
    return "\n\n".join(text)


def by_r(store: Store, r: str, out: Path, metric: str, name: str, ylabel: str) -> str:
    """A unitless metric by degradation severity: figure and table."""
    has(store, metric)
    ds, held = at_defaults(store.ds, [r])
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    line_panel(ax, ds, metric, plots.XAxis(ds, r), schedulers(ds))
    ax.set_ylabel(ylabel)
    plots.legend_right(ax)
    plots.save(fig, out / f"{name}.png")
    return "\n\n".join(
        [
            source_note(store, held),
            plots.image(
                f"{name.split('_')[0]}: {ylabel.splitlines()[0]} by r per scheduler", f"{name}.png"
            ),
            "Mean ± 95 % t interval over seeds:",
            by_scheduler(ds, metric, r, "r", percent=False),
        ]
    )


def r2(store, r, out):
    return by_r(
        store, r, out, "resilience_index", "R2_resilience", "resilience index (1 = unharmed)"
    )


def r4(store, r, out):
    return by_r(
        store,
        r,
        out,
        "deflection_ratio",
        "R4_deflection",
        "traffic deflection ratio\n(1 = no traffic to degraded pods)",
    )


# ---------------------------------------------------------------- R3


def check_r3(store: Store):
    has(store, "failure_rate")
    mode = dim(store, "telemetry.mode")
    facet = "degradation.r" if "degradation.r" in store.axes else None
    return mode, facet


def r3(store: Store, ctx, out: Path) -> str:
    mode, facet = ctx
    ds, held = at_defaults(store.ds, [mode, facet] if facet else [mode])
    facets = list(ds[facet].values) if facet else [None]
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, len(facets), figsize=(4.6 * len(facets) + 1.6, 4), squeeze=False)
    text = [
        source_note(store, held),
        plots.image(
            "R3: failure rate by telemetry mode per scheduler, one panel per r", "R3_telemetry.png"
        ),
    ]
    xa = plots.XAxis(ds, mode)
    for ax, fv in zip(axes[0], facets, strict=True):
        sub = ds.sel({facet: fv}) if facet else ds
        line_panel(ax, sub, "failure_rate", xa, schedulers(ds), scale=100, log=True)
        ax.set_ylabel(plots.FAILURE_PCT + ", log scale")
        if facet:
            ax.set_title(f"r = {label(fv)}", fontsize=10)
            text.append(f"**r = {label(fv)}**")
        text.append(by_scheduler(sub, "failure_rate", mode, "telemetry"))
        try:
            rows = reductions(sub, mode, HYBRID, BASELINE)
            text.append(reduction_table(rows, "telemetry", store.seeds))
        except Skip as why:
            text.append(f"No reduction: {why}.")
    plots.legend_right(axes[0][-1])
    fig.tight_layout()
    plots.save(fig, out / "R3_telemetry.png")
    return "\n\n".join(text)


# ---------------------------------------------------------------- R5, R6

LABEL_KEYS = ("health.delay", "health.miss", "health.noise")


def check_r5(store: Store):
    has(store, "timed_out", "failed_other")
    has_pair(store)
    return dims_among(store, LABEL_KEYS, "label delay, miss or noise")


def r5(store: Store, dims, out: Path) -> str:
    plt = plots.pyplot()
    fig, axes = plt.subplots(
        1, len(dims), figsize=(4.4 * len(dims), 3.8), squeeze=False, sharey=True
    )
    text, all_rows = [source_note(store)], []
    for ax, d in zip(axes[0], dims, strict=True):
        ds, held = at_defaults(store.ds, [d])
        rows = reductions(ds, d, HYBRID, BASELINE)
        all_rows.append(rows)
        xa = plots.XAxis(ds, d)
        reduction_panel(ax, rows, xa, policies.color(HYBRID))
        xa.apply(ax)
        ax.grid(alpha=0.3)
        text += [
            f"**Varying `{d}`** ({held or 'no other swept key'})",
            reduction_table(rows, d, store.seeds),
        ]
    zero_based(axes[0], all_rows)
    axes[0][0].set_ylabel(f"failure reduction of {HYBRID}\nvs {BASELINE} (%)")
    fig.suptitle(
        "Gain of the hybrid as labels degrade: one key varied, the others at the study's "
        "value; failures pooled over seeds, 95 % Fieller interval",
        fontsize=9,
    )
    fig.tight_layout()
    plots.save(fig, out / "R5_label_gain.png")
    text.insert(
        1,
        plots.image(
            "R5: the hybrid's reduction against fault_aware_lc as each label key varies",
            "R5_label_gain.png",
        ),
    )
    text.insert(
        2,
        "Each panel varies one label key; every other swept key is held at the study's "
        "value (averaged only where the grid lacks it). Failures are summed over seeds "
        "before the ratio; panels share one zero-based axis.",
    )
    return "\n\n".join(text)


def check_r6(store: Store):
    has(store, "failure_rate")
    has_pair(store)
    return dim(store, "health.delay"), dim(store, "health.noise")


def r6(store: Store, ctx, out: Path) -> str:
    delay, noise = ctx
    ds, held = at_defaults(store.ds, [delay, noise])
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4))
    total = ds.sizes.get(SEED, 1)
    grids, counts = {}, {}
    for s in (BASELINE, HYBRID):
        st = [
            [
                mean_ci(per_seed(ds.failure_rate, scheduler=s, **{delay: dv, noise: nv}))
                for nv in ds[noise].values
            ]
            for dv in ds[delay].values
        ]
        grids[s] = np.array([[100 * c.mean for c in row] for row in st])
        counts[s] = np.array([[c.n for c in row] for row in st])
    vmax = float(np.nanmax(grids[BASELINE])) if np.isfinite(grids[BASELINE]).any() else 1.0
    import matplotlib.colors as mcolors

    norm = mcolors.Normalize(vmin=0, vmax=vmax or 1.0)
    cmap = plt.get_cmap("magma_r")
    for ax, s in zip(axes, (BASELINE, HYBRID), strict=True):
        im = ax.imshow(grids[s], origin="lower", aspect="auto", cmap=cmap, norm=norm)
        ax.set_xticks(range(ds.sizes[noise]), [label(v) for v in ds[noise].values])
        ax.set_yticks(range(ds.sizes[delay]), [label(v) for v in ds[delay].values])
        ax.set_xlabel(plots.axis_label(ds, noise))
        ax.set_ylabel(plots.axis_label(ds, delay))
        ax.set_title(f"{s}: failure rate (%)", fontsize=10)
        for (i, j), v in np.ndenumerate(grids[s]):
            n = counts[s][i, j]
            txt = "—" if not np.isfinite(v) else f"{v:.2f}" + (f"\nn={n}" if n < total else "")
            color = plots.text_color(cmap(norm(v))) if np.isfinite(v) else "black"
            ax.text(j, i, txt, ha="center", va="center", fontsize=8, color=color)
        fig.colorbar(im, ax=ax, label=plots.FAILURE_PCT)
    fig.suptitle(
        f"Mean over seeds; one colour scale for both ({held or 'no other key'})", fontsize=9
    )
    fig.tight_layout()
    plots.save(fig, out / "R6_delay_noise.png")
    rows = [
        "| delay (s) \\ noise | " + " | ".join(label(v) for v in ds[noise].values) + " |",
        "|---|" + "---|" * ds.sizes[noise],
    ]
    for i, dv in enumerate(ds[delay].values):
        cells = []
        for j in range(ds.sizes[noise]):
            h, b = grids[HYBRID][i, j], grids[BASELINE][i, j]
            n = min(counts[HYBRID][i, j], counts[BASELINE][i, j])
            cell = "—" if not (np.isfinite(h) and np.isfinite(b)) else f"{h:.3f} / {b:.3f}"
            cells.append(cell + (f" (**n={n} of {total}**)" if n < total else ""))
        rows.append(f"| {label(dv)} | " + " | ".join(cells) + " |")
    return "\n\n".join(
        [
            source_note(store, held),
            plots.image(
                "R6: failure rate over label delay x noise, fault_aware_lc and the hybrid",
                "R6_delay_noise.png",
            ),
            f"Failure rate % (`{HYBRID}` / `{BASELINE}`), mean over seeds:",
            "\n".join(rows),
        ]
    )


# ---------------------------------------------------------------- R7, R9, sensitivity

STRESS_KEYS = ("cluster.pods", "cluster.workers_per_pod", "workload.load", "workload.rate")
WORKLOAD_KEYS = (
    "workload.kind",
    "workload.trace",
    "workload.prompt_dist",
    "workload.output_dist",
    "workload.prompt_mean",
    "network.kv_bytes_per_token",
)
SENSITIVITY_KEYS = (
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


def failure_by_each(store: Store, dims, out: Path, prefix: str, reduction: bool) -> str:
    """Failure rate along each swept key (the others at the study's value): one figure
    per key, its table, and the hybrid's reduction where asked."""
    parts = [source_note(store)]
    plt = plots.pyplot()
    for d in dims:
        ds, held = at_defaults(store.ds, [d])
        name = f"{prefix}_{d.split('.')[-1]}.png"
        fig, ax = plt.subplots(figsize=(7.5, 4))
        line_panel(ax, ds, "failure_rate", plots.XAxis(ds, d), schedulers(ds), 100, log=True)
        ax.set_ylabel(plots.FAILURE_PCT + ", log scale")
        plots.legend_right(ax)
        plots.save(fig, out / name)
        parts += [
            f"**Varying `{d}`** ({held or 'no other swept key'})",
            plots.image(f"{prefix.split('_')[0]}: failure rate by {d} per scheduler", name),
            by_scheduler(ds, "failure_rate", d, d),
        ]
        if reduction:
            try:
                parts.append(reduction_table(reductions(ds, d, HYBRID, BASELINE), d, store.seeds))
            except Skip as why:
                parts.append(f"No reduction: {why}.")
    return "\n\n".join(parts)


def check_r7(store):
    has(store, "failure_rate")
    return dims_among(store, STRESS_KEYS, "cluster size or load")


def r7(store, dims, out):
    return failure_by_each(store, dims, out, "R7_stress", reduction=True)


def check_r9(store):
    has(store, "failure_rate")
    return dims_among(store, WORKLOAD_KEYS, "request distribution or KV size")


def r9(store, dims, out):
    return failure_by_each(store, dims, out, "R9_workload", reduction=True)


def check_sensitivity(store):
    has(store, "failure_rate")
    return dims_among(store, SENSITIVITY_KEYS, "price, weight or bandwidth keys", least=2)


def sensitivity(store: Store, dims, out: Path) -> str:
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, len(dims), figsize=(4.2 * len(dims) + 1.5, 3.8), squeeze=False)
    study = [s for s in schedulers(store.ds) if s in policies.names("study")]
    parts = []
    for ax, d in zip(axes[0], dims, strict=True):
        ds, held = at_defaults(store.ds, [d])
        line_panel(ax, ds, "failure_rate", plots.XAxis(ds, d), study, 100, log=True)
        parts += [f"**Varying `{d}`** ({held or 'no other swept key'})"]
        try:
            parts.append(reduction_table(reductions(ds, d, HYBRID, BASELINE), d, store.seeds))
        except Skip as why:
            parts.append(f"No reduction: {why}.")
        parts.append(by_scheduler(ds, "failure_rate", d, d))
    axes[0][0].set_ylabel(plots.FAILURE_PCT + ", log scale")
    plots.legend_right(axes[0][-1])
    fig.suptitle("One key at a time, every other swept key at the study's value", fontsize=10)
    fig.tight_layout()
    plots.save(fig, out / "S_sensitivity.png")
    return "\n\n".join(
        [
            source_note(store),
            plots.image(
                "S: failure rate as each price, weight or bandwidth key varies alone",
                "S_sensitivity.png",
            ),
            *parts,
        ]
    )


RESULTS = [
    Result("R1", "Failure rate by degradation severity", "severity", check_r, r1),
    Result("R2", "Resilience index", "severity", check_r, r2),
    Result("R3", "Telemetry modes", "telemetry", check_r3, r3),
    Result("R4", "Traffic deflection", "severity", check_r, r4),
    Result("R5", "Gain as health labels degrade", "label_noise", check_r5, r5),
    Result("R6", "Label delay x label noise", "label_noise", check_r6, r6),
    Result("R7", "Stress: cluster size and load", "stress", check_r7, r7),
    Result("R9", "Workload robustness", "workload", check_r9, r9),
    Result(
        "S",
        "Sensitivity: where the claims stop holding",
        "sensitivity",
        check_sensitivity,
        sensitivity,
    ),
]

__all__ = ["RESULTS", "BASELINE", "HYBRID", "PRICED", "STUDY_R1", "Result"]
