"""Simulate one scenario for every scheduler and print a table (Hydra entry point).

python -m otfr_vec.run degradation.r=0.05 telemetry.mode=none health.delay=20
python -m otfr_vec.run sim.seed=3 out=outputs/run.zarr
"""

from __future__ import annotations

import os
import sys

import hydra
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from . import store
from .config import CONF_DIR, ConfigError, keys, validate
from .explain import print_notes
from .inputs import check_inputs
from .store import StoreError

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


def save(ds, path: str) -> str:
    """Save a run's dataset at ``path``: a new path, or a run dataset this tool wrote
    (replaced atomically); anything else is refused (StoreError) and left untouched."""
    path = store.resolve(path, "out")
    store.check_target(path, "out", "run")
    with store.lock(path, key="out"):
        store.save_run(ds, path)
    return path


def check(cfg) -> str | None:
    """Everything that can fail before simulating: keys, values, and the ``out=`` path
    (new, or a run dataset this tool wrote; writable). Returns the resolved out path."""
    unknown = keys.unknown(cfg, "run")
    if unknown:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(unknown))
    check_inputs(validate(cfg))
    if not cfg.out:
        return None
    path = store.resolve(cfg.out, "out")
    store.check_target(path, "out", "run")
    return path


def main_cfg(cfg: DictConfig) -> int:
    try:
        out = check(cfg)
        if out is None:
            return _simulate(cfg, None)
        with store.lock(out, key="out"):
            return _simulate(cfg, out)
    except (ConfigError, StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OmegaConfBaseException as err:
        print(f"error: {keys.omegaconf_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was saved", file=sys.stderr)
        return 130
    except OSError as err:
        print(f"error: cannot save out={cfg.out} ({err.strerror or err})", file=sys.stderr)
        return 1


def _simulate(cfg, out: str | None) -> int:
    from tqdm import tqdm

    from .api import simulate
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
    if out:
        store.save_run(ds, out)
        print(f"saved {out}")
    return 0


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    code = main_cfg(cfg)
    if code:
        sys.exit(code)


def main() -> None:
    """The command line: overrides Hydra cannot parse are reported before it tries."""
    keys.exit_on_bad_argv()
    _hydra_main()


if __name__ == "__main__":
    main()
