"""``compare``: one configuration in the testbed and in the simulator, over seeds.

For each seed ``sim.seed + k`` (k < ``--seeds``) the same configuration runs in the
simulator (``otfr_vec.simulate``: seconds) and in the testbed (one real run per scheduler,
``sim.duration`` each). Both see the same workload, degradation and label draws. The
table gives, per metric and scheduler, the mean over seeds with its 95 % t-interval on
each side and the paired difference testbed - simulator with its interval; below it, the
schedulers' order by failure rate on each side.

Every testbed run is kept as ``OUT/testbed-seed<S>.zarr`` (and the simulator's as
``OUT/sim-seed<S>.zarr``) the moment it finishes; a rerun with the same configuration
and options reuses them (a killed comparison resumes), a store made with another
configuration is refused. ``OUT/compare.md`` holds the table, ``OUT/compare.png`` the
per-seed points (testbed against simulator), ``OUT/compare.zarr`` the per-seed metrics
of both sides (dims ``source``, ``seed``, ``scheduler``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr
from omegaconf import OmegaConf

from ..config import ConfigError

METRICS = ("failure_rate", "timeout_share", "ttft_p50", "ttft_p99", "e2e_p50", "deflection_ratio")
SCALE = {"failure_rate": (100, "%"), "timeout_share": (1, ""), "deflection_ratio": (1, "")}


def seed_config(cfg, seed: int):
    c = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    c.sim.seed = int(seed)
    return c


def _fingerprint(cfg, opts) -> str:
    d = OmegaConf.to_container(cfg, resolve=True)
    d.pop("out", None)
    o = {k: v for k, v in vars(opts).items() if k not in ("force", "keep")}
    return json.dumps({"config": d, "options": o}, sort_keys=True)


def _load_or_run(path: Path, fp: str, make):
    if path.exists():
        ds = xr.open_zarr(path).load()
        if ds.attrs.get("testbed:fingerprint") != fp:
            raise ConfigError(
                f"{path} was made with another configuration or options; use another --out "
                "or remove it"
            )
        return ds, False
    ds = make()
    ds.attrs["testbed:fingerprint"] = fp
    from ..run import save

    save(ds, str(path))
    return ds, True


def scalar_table(parts: dict) -> xr.Dataset:
    """``parts[source][seed]`` datasets -> one dataset (source, seed, scheduler)."""
    rows = []
    for source, by_seed in parts.items():
        seeds = sorted(by_seed)
        rows.append(
            xr.concat(
                [by_seed[s][list(METRICS)].expand_dims(seed=[s]) for s in seeds], dim="seed"
            ).expand_dims(source=[source])
        )
    return xr.concat(rows, dim="source")


def _fmt(v: float, ci: float, scale: float) -> str:
    if not np.isfinite(v):
        return "n/a"
    s = f"{v * scale:.3g}"
    return s + (f" ± {ci * scale:.2g}" if np.isfinite(ci) else "")


def format_compare(tab: xr.Dataset, schedulers) -> str:
    from ..report import mean_ci

    lines = [
        "| metric | scheduler | testbed | simulator | testbed - simulator |",
        "|---|---|---|---|---|",
    ]
    for m in METRICS:
        scale, unit = SCALE.get(m, (1, "s"))
        for s in schedulers:
            tb = tab[m].sel(source="testbed", scheduler=s).values
            sim = tab[m].sel(source="simulator", scheduler=s).values
            cells = [_fmt(c.mean, c.half, scale) for c in map(mean_ci, (tb, sim, tb - sim))]
            lines.append(f"| {m} ({unit or '1'}) | {s} | " + " | ".join(cells) + " |")
    order = {}
    for src in ("testbed", "simulator"):
        fr = tab.failure_rate.sel(source=src).mean("seed")
        order[src] = [str(x) for x in fr.scheduler.values[np.argsort(fr.values, kind="stable")]]
    lines += [
        "",
        "Order by mean failure rate (lowest first): testbed "
        + " < ".join(order["testbed"])
        + "; simulator "
        + " < ".join(order["simulator"])
        + (" (same order)" if order["testbed"] == order["simulator"] else " (DIFFERENT order)"),
        "",
        *pair_lines(tab, schedulers),
    ]
    return "\n".join(lines)


def pair_lines(tab: xr.Dataset, schedulers) -> list[str]:
    """Does the simulator's ordering carry over, pair by pair: for every pair of
    schedulers, the paired difference of failure rates over seeds on each side (mean and
    95 % t-interval); a side *separates* a pair when its interval excludes 0."""
    from scipy.stats import kendalltau

    from ..report import mean_ci

    fr = {src: tab.failure_rate.sel(source=src) for src in ("testbed", "simulator")}
    means = {src: [float(fr[src].sel(scheduler=s).mean()) for s in schedulers] for src in fr}
    tau = kendalltau(means["testbed"], means["simulator"]).statistic
    lines = [
        f"Kendall's tau between the two orders by mean failure rate: {tau:.2f} "
        f"({len(schedulers)} schedulers; 1 = the same order).",
        "",
        "| pair (a vs b) | simulator: a - b (%) | testbed: a - b (%) | verdict |",
        "|---|---|---|---|",
    ]
    for i, a in enumerate(schedulers):
        for b in schedulers[i + 1 :]:
            d = {
                src: mean_ci((fr[src].sel(scheduler=a) - fr[src].sel(scheduler=b)).values)
                for src in fr
            }
            sep = {src: abs(c.mean) > c.half for src, c in d.items()}  # NaN half: False
            same_sign = np.sign(d["testbed"].mean) == np.sign(d["simulator"].mean)
            if sep["simulator"]:
                verdict = (
                    "carries over (testbed separates it too)"
                    if sep["testbed"] and same_sign
                    else "same sign, not separated in the testbed"
                    if same_sign
                    else "REVERSED in the testbed"
                    + (" (separated)" if sep["testbed"] else " (not separated)")
                )
            else:
                verdict = "the simulator does not separate it" + (
                    "; the testbed does" if sep["testbed"] else ""
                )
            cells = [_fmt(d[src].mean, d[src].half, 100) for src in ("simulator", "testbed")]
            lines.append(f"| {a} vs {b} | " + " | ".join(cells) + f" | {verdict} |")
    return lines


def plot_compare(tab: xr.Dataset, schedulers, path: Path) -> None:
    """Testbed against simulator, one point per seed and scheduler, per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..policies import color

    shown = ("failure_rate", "ttft_p50", "ttft_p99")
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 4.0))
    for ax, m in zip(axes, shown, strict=True):
        scale, unit = SCALE.get(m, (1, "s"))
        lo, hi = np.inf, -np.inf
        for s in schedulers:
            x = tab[m].sel(source="simulator", scheduler=s).values * scale
            y = tab[m].sel(source="testbed", scheduler=s).values * scale
            ax.scatter(x, y, color=color(s), label=s, s=30)
            v = np.concatenate([x, y])
            v = v[np.isfinite(v)]
            if v.size:
                lo, hi = min(lo, v.min()), max(hi, v.max())
        if np.isfinite(lo):
            pad = 0.05 * (hi - lo or 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#999999", lw=0.8, zorder=0)
        ax.set_xlabel(f"simulator {m} ({unit or '1'})")
        ax.set_ylabel(f"testbed {m} ({unit or '1'})")
        ax.set_title(m)
    axes[0].legend(fontsize=8)
    fig.suptitle("Testbed vs simulator: one point per seed (same workload and scenario)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cmd_compare(cfg, opts, n_seeds: int, out: Path) -> int:
    from ..api import simulate
    from ..policies import ordered
    from .run import run_testbed

    if n_seeds < 1:
        raise ConfigError(f"--seeds {n_seeds}: must be >= 1")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    schedulers = ordered(cfg.schedulers)
    seeds = [int(cfg.sim.seed) + k for k in range(n_seeds)]
    parts: dict = {"testbed": {}, "simulator": {}}
    for k, seed in enumerate(seeds):
        c = seed_config(cfg, seed)
        fp = _fingerprint(c, opts)
        parts["simulator"][seed], _ = _load_or_run(
            out / f"sim-seed{seed}.zarr", fp, lambda c=c: simulate(c)
        )
        print(
            f"compare: seed {seed} ({k + 1}/{n_seeds}): testbed, {len(schedulers)} scheduler(s) "
            f"x {c.sim.duration:g} s",
            file=sys.stderr,
            flush=True,
        )
        parts["testbed"][seed], ran = _load_or_run(
            out / f"testbed-seed{seed}.zarr", fp, lambda c=c: run_testbed(c, opts)
        )
        if not ran:
            print(f"compare: seed {seed}: testbed store reused", file=sys.stderr)
    tab = scalar_table(parts)
    tab.attrs["testbed:router"] = parts["testbed"][seeds[0]].attrs.get("testbed:router", "")
    text = format_compare(tab, schedulers)
    host_bound = [s for s in seeds if parts["testbed"][s].attrs.get("testbed:host_bound", 0)]
    note = (
        f"\n\nHost-bound testbed runs (timing set by the host, not the model): seeds {host_bound}"
        if host_bound
        else ""
    )
    header = (
        f"# Testbed vs simulator\n\nSeeds {seeds}; schedulers {', '.join(schedulers)}; "
        f"router {tab.attrs['testbed:router']}; means over seeds with 95 % t-intervals.\n\n"
    )
    (out / "compare.md").write_text(header + text + note + "\n")
    from ..run import save

    save(tab, str(out / "compare.zarr"))
    plot_compare(tab, schedulers, out / "compare.png")
    print(text + note)
    print(f"saved {out / 'compare.md'}, {out / 'compare.png'} and {out / 'compare.zarr'}")
    return 0
