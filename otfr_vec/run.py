"""Simulate one scenario for every scheduler and print a table (Hydra entry point).

python -m otfr_vec.run degradation.r=0.05 telemetry.mode=none health.delay=20
python -m otfr_vec.run sim.seed=3 out=outputs/run.zarr
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig

from .config import CONF_DIR, ConfigError, validate
from .explain import print_notes
from .inputs import check_inputs

COLUMNS = [
    ("failure_rate", "fail %", 100, "{:8.3f}"),
    ("timeout_share", "tmo share", 1, "{:9.2f}"),
    ("resilience_index", "resil", 1, "{:7.3f}"),
    ("deflection_ratio", "deflect", 1, "{:8.3f}"),
    ("gap_to_oracle", "gap %", 100, "{:7.3f}"),
    ("ttft_p50", "ttft50", 1, "{:7.3f}"),
    ("ttft_p99", "ttft99", 1, "{:7.3f}"),
    ("e2e_p50", "e2e50", 1, "{:7.2f}"),
    ("e2e_p99", "e2e99", 1, "{:7.2f}"),
    ("arrived", "arrived", 1, "{:9d}"),
    ("completed", "completed", 1, "{:9d}"),
    ("timed_out", "timed_out", 1, "{:9d}"),
    ("failed_other", "failed", 1, "{:7d}"),
    ("in_flight", "in_flight", 1, "{:9d}"),
]


def format_table(ds) -> str:
    """The per-scheduler metrics as a fixed-width text table."""
    name_w = max(len(str(s)) for s in ds.scheduler.values) + 2
    head = "scheduler".ljust(name_w) + " ".join(
        h.rjust(len(fmt.format(0.0 if "d" not in fmt else 0))) for _, h, _, fmt in COLUMNS
    )
    lines = [head, "-" * len(head)]
    for s in ds.scheduler.values:
        cells = []
        for var, _, scale, fmt in COLUMNS:
            v = ds[var].sel(scheduler=s).item()
            cells.append(fmt.format(int(v)) if "d" in fmt else fmt.format(v * scale))
        lines.append(str(s).ljust(name_w) + " ".join(cells))
    return "\n".join(lines)


def save(ds, path: str) -> None:
    """Write ``ds`` to a Zarr store at ``path`` atomically (a temporary store, renamed)."""
    import shutil

    tmp = f"{path.rstrip('/')}.tmp-{os.getpid()}"
    try:
        ds.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def main_cfg(cfg: DictConfig) -> int:
    from tqdm import tqdm

    from .api import simulate

    try:
        check_inputs(validate(cfg))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from .engine import make_scenario

    sc = make_scenario(cfg)
    lay = sc.layout
    print(
        f"otfr_vec: {cfg.cluster.pods} pods x {cfg.cluster.workers_per_pod} workers "
        f"({lay.n_prefill} prefill, {lay.n_workers - lay.n_prefill} decode), "
        f"{sc.rate:.1f} req/s, rho_net = {sc.rho_net:.3f}, degradation {cfg.degradation.pattern} "
        f"r = {cfg.degradation.r} on pods {sc.degradation.pods.tolist()}, "
        f"telemetry {cfg.telemetry.mode}, seed {cfg.sim.seed}"
    )
    threads = min(len(cfg.schedulers), os.cpu_count() or 1)
    with tqdm(
        total=100,
        unit="%",
        desc="simulating",
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        bar_format="{l_bar}{bar}| {elapsed}<{remaining}",
    ) as bar:

        def progress(frac):
            bar.update(round(100 * frac) - bar.n)

        ds = simulate(cfg, threads=threads, progress=progress)
    print(format_table(ds))
    print_notes(ds, cfg)
    n = ds.attrs["otfr_vec:requests"] * ds.sizes["scheduler"]
    wall = ds.attrs["otfr_vec:wall_s"]
    print(
        f"simulated {n:,} requests ({ds.sizes['scheduler']} schedulers) in {wall:.1f} s with "
        f"{threads} threads: {n / wall:,.0f} requests/s"
    )
    if cfg.out:
        save(ds, cfg.out)
        print(f"saved {cfg.out}")
    return 0


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    code = main_cfg(cfg)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
