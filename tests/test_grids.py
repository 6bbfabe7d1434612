"""Every grid of conf/grid composes, validates and runs end to end at a tiny size."""

from __future__ import annotations

import math

import pytest
import xarray as xr
from omegaconf import OmegaConf, open_dict

from otfr_vec import make_config
from otfr_vec.config import CONF_DIR
from otfr_vec.sweep import plan, run_sweep

GRIDS = sorted(p.stem for p in (CONF_DIR / "grid").glob("*.yaml"))
TINY = ["cluster.workers_per_pod=4", "sim.duration=20", "sim.warmup=4", "degradation.onset=8"]
TINY += ["degradation.duration=6", "degradation.pods=1", "dask=serial"]


def test_the_study_grids_exist():
    assert {"severity", "telemetry", "label_noise", "stress", "sensitivity"} <= set(GRIDS)


@pytest.mark.parametrize("grid", GRIDS)
def test_grid_header_and_full_size_plan(grid):
    text = (CONF_DIR / "grid" / f"{grid}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    assert f"python -m otfr_vec.sweep +grid={grid}" in text
    assert "laptop" in text  # the measured runtime
    cfg = make_config([f"+grid={grid}"], config_name="sweep")
    p = plan(cfg)  # composes and validates every cell at the study size
    sizes = [len(v) for v in p.axes.values()]
    points = math.prod(sizes) if cfg.sweep.design == "grid" else 1 + sum(n - 1 for n in sizes)
    assert p.axes and len(p.cells) == cfg.sweep.seeds * points
    assert cfg.sweep.seeds >= 5  # every table of the study has intervals
    assert cfg.store == f"outputs/{cfg.sweep.name}.zarr"


@pytest.mark.parametrize("grid", GRIDS)
def test_grid_runs_tiny(grid, tmp_path):
    cfg = make_config([f"+grid={grid}", *TINY, f"store={tmp_path / 's.zarr'}"], "sweep")
    full = plan(cfg).axes
    axes = {k: v[:2] for k, v in full.items()}  # two values per axis
    if cfg.sweep.design != "grid":  # one of them the base value, which the design varies around
        base = {k: OmegaConf.select(cfg, k) for k in full}
        axes = {k: [base[k], next(x for x in v if x != base[k])] for k, v in full.items()}
    if "cluster.pods" not in axes:
        cfg.cluster.pods = 2
    if cfg.workload.rate is not None:  # a grid's fixed rate would swamp 8 workers
        cfg.workload.rate = 12.0  # 0.6 of their prefill capacity at 2000-token prompts
    with open_dict(cfg):
        cfg.sweep.axes = axes
    cfg.sweep.seeds = 1
    ds = xr.open_zarr(run_sweep(cfg, quiet=True))
    assert list(ds.failure_rate.dims) == [*axes, "seed", "scheduler"]
    planned = ds.planned if "planned" in ds.coords else True  # what the design runs
    assert bool((ds.done == planned).all())
    assert (ds.arrived.where(ds.done) != 0).all()
