"""Sweeps: serial == local Dask cluster == remote scheduler; bad input fails before work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from otfr_vec import make_config
from otfr_vec.cluster import connect
from otfr_vec.sweep import cell_seed, plan, run_sweep

TINY = ["cluster.pods=2", "cluster.workers_per_pod=4", "sim.duration=20", "sim.warmup=4"]
TINY += ["degradation.onset=8", "degradation.duration=6", "degradation.pods=1"]
GRID = ["+grid=severity", "sweep.axes.degradation.r=[0.1,0.01]", "sweep.seeds=2", *TINY]
BIN = Path(sys.executable).parent


def sweep_cfg(store, *overrides):
    return make_config([*GRID, f"store={store}", *overrides], config_name="sweep")


def cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "otfr_vec.sweep", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The reference: the sweep run cell after cell in this process."""
    path = tmp_path_factory.mktemp("serial") / "s.zarr"
    return xr.open_zarr(run_sweep(sweep_cfg(path, "dask=serial"), quiet=True)).load()


def test_cell_seeds_depend_on_sim_seed_and_index_only(serial):
    assert serial.cell_seed.values.tolist() == [cell_seed(0, 0), cell_seed(0, 1)]
    assert cell_seed(0, 0) != cell_seed(0, 1) != cell_seed(1, 1)
    # common random numbers: every r of a seed index sees the same arrivals
    arrived = serial.arrived.sel(scheduler="lc").values  # [r, seed]
    assert (arrived == arrived[0]).all()
    fr = serial.failure_rate.sel(scheduler="lc").values
    assert (fr[:, 0] != fr[:, 1]).all()


def test_store_layout(serial):
    assert dict(serial.sizes) == {"degradation.r": 2, "seed": 2, "scheduler": 5}
    assert serial.failure_rate.attrs["units"] == "1"
    assert "oracle" in serial.gap_to_oracle.attrs["description"]
    assert (serial.gap_to_oracle.sel(scheduler="oracle") == 0).all()
    assert serial.gap_to_oracle.notnull().all()
    assert serial.done.all()
    for key in ("config", "versions", "git_commit", "host", "start", "end"):
        assert f"otfr_vec:{key}" in serial.attrs
    assert "duration: 20.0" in serial.attrs["otfr_vec:config"]  # base override applied


def test_local_cluster_of_two_workers_equals_serial(serial, tmp_path):
    cfg = sweep_cfg(tmp_path / "s.zarr", "dask.n_workers=2", "dask.dashboard=null")
    with connect(cfg.dask) as client:
        ds = xr.open_zarr(run_sweep(cfg, client, quiet=True))
        # the workers loaded the compiled kernels from Numba's on-disk cache
        stats = client.run(_kernel_cache_stats)
    xr.testing.assert_equal(ds, serial)
    assert len(stats) == 2
    for hits, misses in stats.values():
        assert hits > 0 and misses == 0


def _kernel_cache_stats():
    from otfr_vec.kernels.step import advance

    return sum(advance.stats.cache_hits.values()), sum(advance.stats.cache_misses.values())


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_remote_scheduler_equals_serial(serial, tmp_path):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error"}
    procs = [
        subprocess.Popen(
            [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port)]
            + ["--no-dashboard"],
            env=env,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        procs.append(
            subprocess.Popen(
                [BIN / "dask", "worker", address, "--nworkers", "2", "--nthreads", "1"]
                + ["--no-dashboard", "--host", "127.0.0.1"],
                env=env,
                stderr=subprocess.DEVNULL,
            )
        )
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:  # the scheduler needs a moment to listen
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(2, timeout=60)
                break
            except OSError:
                assert time.monotonic() < deadline, "dask scheduler did not start"
                time.sleep(0.5)
        store = tmp_path / "s.zarr"
        p = cli(*GRID, "dask=address", f"dask.address={address}", f"store={store}", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert "dask: 2 workers" in p.stdout
        xr.testing.assert_equal(xr.open_zarr(store), serial)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize(
    "args, message",
    [
        (["+grid=severty"], "Available options in 'grid'"),
        (["+grid=severity", "+sweep.axes.degradation.rr=[1]"], "degradation.rr: not a config"),
        (["+grid=severity", "sweep.axes.degradation.r=[]"], "an axis needs at least one value"),
        (["+grid=severity", "sweep.axes.degradation.r=[0.1,1.5]"], "degradation.r=1.5: must be"),
        (["+grid=severity", "dask=address"], "dask.address"),
    ],
)
def test_bad_input_fails_before_any_work(args, message, tmp_path):
    p = cli(*args, "store=s.zarr", cwd=tmp_path)
    assert p.returncode != 0
    assert message in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert os.listdir(tmp_path) == []  # no store, nothing else


def test_plan_collects_every_bad_value(tmp_path):
    cfg = sweep_cfg(tmp_path / "s.zarr", "+sweep.axes.health.noise=[0.5,2,3]")
    with pytest.raises(ValueError) as err:
        plan(cfg)
    assert "health.noise=2.0" in str(err.value) and "health.noise=3.0" in str(err.value)
