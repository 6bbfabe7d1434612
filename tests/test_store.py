"""The sweep store: killed sweeps resume to the uninterrupted result; foreign stores refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr

from otfr_vec import ConfigError, make_config
from otfr_vec.store import done_mask
from otfr_vec.sweep import plan, prepare, run_sweep

TINY = ["cluster.pods=2", "cluster.workers_per_pod=8", "sim.duration=40", "sim.warmup=4"]
TINY += ["degradation.onset=8", "degradation.duration=20", "degradation.pods=1"]
GRID = ["+grid=severity", "sweep.axes.degradation.r=[0.2,0.1,0.05]", "sweep.seeds=3", *TINY]


def sweep_cfg(store, *overrides):
    return make_config([*GRID, f"store={store}", *overrides], config_name="sweep")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "s.zarr"
    return xr.open_zarr(run_sweep(sweep_cfg(path, "dask=serial"), quiet=True)).load()


def test_sigkilled_sweep_resumes_to_the_uninterrupted_result(uninterrupted, tmp_path):
    store = tmp_path / "s.zarr"
    args = [*GRID, f"store={store}", "dask.n_workers=2", "dask.dashboard=null", "sweep.batch=1"]
    cmd = [sys.executable, "-m", "otfr_vec.sweep", *args]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        n_done, deadline = 0, time.monotonic() + 120
        while n_done < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
            if (store / "done" / ".zarray").exists():
                n_done = int(done_mask(str(store)).sum())
        assert proc.poll() is None, "the sweep ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # the driver, mid-sweep
        proc.wait()
    finally:
        try:  # its local cluster's worker processes, started by the test's command
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    killed_at = done_mask(str(store))
    assert 2 <= killed_at.sum() < killed_at.size
    p = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"; {int(killed_at.sum())} already done" in p.stdout
    resumed = xr.open_zarr(store)
    xr.testing.assert_equal(resumed, uninterrupted)
    assert resumed.attrs["otfr_vec:sweep"] == uninterrupted.attrs["otfr_vec:sweep"]


def test_half_written_cell_is_not_done_and_is_rerun(uninterrupted, tmp_path):
    cfg = sweep_cfg(tmp_path / "s.zarr", "dask=serial")
    path, todo = prepare(cfg, plan(cfg))
    assert len(todo) == uninterrupted.done.size
    # a cell whose metrics landed but whose done flag did not (killed between the writes)
    index, _ = todo[4]
    region = {dim: slice(i, i + 1) for dim, i in index.items()}
    junk = uninterrupted[["failure_rate", "arrived"]].isel(region) * 0 + 7
    junk.drop_vars(list(junk.coords)).to_zarr(path, region=region, zarr_format=2)
    assert not done_mask(path).any()
    xr.testing.assert_equal(xr.open_zarr(run_sweep(cfg, quiet=True)), uninterrupted)


def test_resume_skips_done_cells(uninterrupted, tmp_path):
    cfg = sweep_cfg(tmp_path / "s.zarr", "dask=serial")
    run_sweep(cfg, quiet=True)
    chunk = tmp_path / "s.zarr" / "failure_rate" / "0.0.0"
    before = chunk.stat().st_mtime_ns
    _, todo = prepare(cfg, plan(cfg))
    assert todo == []
    run_sweep(cfg, quiet=True)
    assert chunk.stat().st_mtime_ns == before


def test_different_configuration_is_refused_naming_the_difference(tmp_path):
    store = tmp_path / "s.zarr"
    run_sweep(sweep_cfg(store, "dask=serial", "sweep.axes.degradation.r=[0.1]"), quiet=True)
    files = {p: p.stat().st_mtime_ns for p in store.rglob("*")}
    for change, expect in [
        ("sim.duration=30", "sim.duration: store has 40.0, this run has 30.0"),
        ("sweep.seeds=2", "sweep.seeds: store has 3, this run has 2"),
        ("sweep.axes.degradation.r=[0.05]", "sweep.axes"),
    ]:
        cfg = sweep_cfg(store, "dask=serial", "sweep.axes.degradation.r=[0.1]", change)
        with pytest.raises(ConfigError, match="different configuration") as err:
            run_sweep(cfg, quiet=True)
        assert expect in str(err.value)
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*")} == files  # untouched
    p = subprocess.run(
        [sys.executable, "-m", "otfr_vec.sweep", *GRID, "sweep.axes.degradation.r=[0.1]"]
        + ["sim.duration=30", f"store={store}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and "sim.duration: store has 40.0" in p.stderr
    # overwrite discards it and starts again
    cfg = sweep_cfg(store, "dask=serial", "sweep.axes.degradation.r=[0.1]", "sim.duration=30")
    cfg.sweep.overwrite = True
    ds = xr.open_zarr(run_sweep(cfg, quiet=True))
    assert "duration: 30.0" in ds.attrs["otfr_vec:config"] and bool(ds.done.all())


def test_not_a_sweep_store_is_refused(tmp_path):
    (tmp_path / "s.zarr").mkdir()
    with pytest.raises(ConfigError, match="not an otfr_vec sweep store"):
        run_sweep(sweep_cfg(tmp_path / "s.zarr", "dask=serial"), quiet=True)
    assert np.array_equal(os.listdir(tmp_path / "s.zarr"), [])
