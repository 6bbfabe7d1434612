"""Sweeps: serial == local Dask cluster == remote scheduler; bad input fails before work."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import GRID, TINY

from otfr_vec import make_config
from otfr_vec import store as store_mod
from otfr_vec.cluster import connect, dashboard, keep
from otfr_vec.metrics import METRICS
from otfr_vec.store import done_mask
from otfr_vec.sweep import cell_seed, plan, run_sweep

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


THREADS = ["dask.processes=false", "dask.dashboard=null"]  # clusters that start in 1 s


def test_keep_reuses_a_cluster_until_a_sweep_fails():
    cfg = make_config([*THREADS, "dask.n_workers=1"], config_name="sweep")
    with keep():
        with connect(cfg.dask) as a:
            pass
        assert a.status == "running"  # kept for the next sweep
        with connect(cfg.dask) as b:
            assert b is a
        with pytest.raises(RuntimeError, match="a cell failed"), connect(cfg.dask) as d:
            assert d is a
            raise RuntimeError("a cell failed")
        assert a.status == "closed"  # a failed sweep leaves nothing behind for the next
        with connect(cfg.dask) as e:
            assert e is not a
        assert e.status == "running"
    assert e.status == "closed"  # the scope closes what it kept
    with connect(cfg.dask) as f:  # outside keep(): closed on leaving, as always
        pass
    assert f.status == "closed"
    other = make_config([*THREADS, "dask.n_workers=2"], config_name="sweep")
    with keep():
        with connect(cfg.dask) as g, connect(other.dask) as h:
            pass
        with connect(other.dask) as i:
            assert i is h is not g  # other settings: a cluster of their own
    assert g.status == h.status == "closed"
    import dask

    assert dask.config.get("scheduler", None) is None  # as before the first client


def test_multirun_runs_each_grid_on_one_cluster(serial, tmp_path):
    """-m: one command, two sweeps (sim.seed=0,1), one Dask cluster; each store is the
    one its own command writes (seed 0: the serial reference)."""
    store = str(tmp_path / "s${sim.seed}.zarr")
    p = cli(
        "-m",
        *GRID,
        "sim.seed=0,1",
        f"store={store}",
        "dask.n_workers=2",
        "dask.dashboard=null",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    announced = [line for line in p.stdout.splitlines() if line.startswith("dask:")]
    assert len(announced) == 2 and "kept from the 1 sweep before" in announced[1], p.stdout
    assert sorted(os.listdir(tmp_path)) == ["multirun", "s0.zarr", "s1.zarr"]
    assert os.listdir(tmp_path / "multirun") == ["multirun.yaml"]  # no folder per job
    ds0 = xr.open_zarr(tmp_path / "s0.zarr")
    xr.testing.assert_equal(ds0, serial)
    one = tmp_path / "one"
    q = cli(*GRID, "sim.seed=1", f"store={one / 's.zarr'}", "dask=serial", cwd=tmp_path)
    assert q.returncode == 0, q.stderr
    xr.testing.assert_equal(xr.open_zarr(tmp_path / "s1.zarr"), xr.open_zarr(one / "s.zarr"))


def _kernel_cache_stats():
    from otfr_vec.kernels.step import advance

    return sum(advance.stats.cache_hits.values()), sum(advance.stats.cache_misses.values())


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def external_dask(n_workers=2):
    """A real ``dask scheduler`` and ``dask worker`` processes on loopback; yields
    (address, workers process, scheduler process)."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_scheduler(port)]
    try:
        procs.append(_workers(address, n_workers))
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:  # the scheduler needs a moment to listen
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(n_workers, timeout=60)
                break
            except OSError:
                assert time.monotonic() < deadline, "dask scheduler did not start"
                time.sleep(0.5)
        yield address, procs
    finally:
        for proc in reversed(procs):
            _stop(proc)


ENV = {**os.environ, "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error"}


def _scheduler(port):
    cmd = [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    return subprocess.Popen(cmd, env=ENV, stderr=subprocess.DEVNULL, start_new_session=True)


def _workers(address, n):
    cmd = [BIN / "dask", "worker", address, "--nworkers", str(n), "--nthreads", "1"]
    cmd += ["--no-dashboard", "--host", "127.0.0.1"]
    return subprocess.Popen(cmd, env=ENV, stderr=subprocess.DEVNULL, start_new_session=True)


def _stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def test_remote_scheduler_equals_serial(serial, tmp_path):
    with external_dask() as (address, _):
        store = tmp_path / "s.zarr"
        args = [*GRID, "dask=address", f"dask.address={address}", f"store={store}"]
        p = cli(*args, "sweep.progress_interval=0", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert "dask: 2 workers" in p.stdout
        xr.testing.assert_equal(xr.open_zarr(store), serial)
        # not a terminal: progress lines with cells done / total, rate and ETA
        lines = [x for x in p.stderr.splitlines() if "cells/s" in x]
        assert lines and "4/4 cells (100 %)" in lines[-1] and "ETA" in lines[0], p.stderr


LONG = [*GRID[:1], "sweep.seeds=8", "cluster.pods=2", "cluster.workers_per_pod=8"]
LONG += ["sim.duration=300", "sim.warmup=4", "degradation.onset=8", "degradation.duration=20"]
LONG += ["degradation.pods=1", "sweep.batch=1"]  # 32 cells of ~0.3 s


def _start_sweep(args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "otfr_vec.sweep", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_cells(path, n, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (path / "done" / "zarr.json").exists() and done_mask(str(path)).sum() >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} cells were written in time")


def _kept(message):
    import re

    m = re.search(r"(\d+) of (\d+) cells are in the store", message)
    assert m, message
    return int(m.group(1))


def test_lost_workers_and_lost_scheduler_stop_the_sweep_keeping_cells(tmp_path):
    """Fails on the old code: the sweep hung silently once every worker had died, and a
    lost scheduler gave tracebacks."""
    path = tmp_path / "s.zarr"
    with external_dask() as (address, procs):
        args = [*LONG, "dask=address", f"dask.address={address}", f"store={path}"]
        args += ["dask.worker_timeout=2"]
        proc = _start_sweep(args, tmp_path)
        _wait_for_cells(path, 1, proc)
        _stop(procs[1])  # every worker dies
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        assert "no Dask worker for 2 s" in err and "run the same command to resume" in err
        assert "Traceback" not in out + err
        assert _kept(err) == int(store_mod.verify(str(path)).done.sum()) >= 1
        procs[1] = _workers(address, 2)  # back, and a resume goes on where it stopped
        proc = _start_sweep(args, tmp_path)
        _wait_for_cells(path, _kept(err) + 1, proc)
        _stop(procs[0])  # the scheduler dies
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        assert f"lost the Dask scheduler {address}" in err, err
        assert "Traceback" not in out + err and len(err.strip().splitlines()) == 1, err
        assert _kept(err) == int(store_mod.verify(str(path)).done.sum())


def test_ctrl_c_says_what_was_kept_and_resume_completes(tmp_path):
    """Fails on the old code: Ctrl-C printed up to 149 lines of tracebacks."""
    path = tmp_path / "s.zarr"
    args = [*LONG, "dask.n_workers=2", "dask.dashboard=null", f"store={path}"]
    proc = _start_sweep(args, tmp_path)
    _wait_for_cells(path, 1, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().startswith("interrupted: ") and len(err.strip().splitlines()) == 1, err
    assert "run the same command to resume" in err and "killing" not in out
    kept = _kept(err)
    assert 1 <= kept == int(done_mask(str(path)).sum())
    p = cli(*args, "dask=serial", cwd=tmp_path)  # the same store resumes in any mode
    assert p.returncode == 0, p.stderr
    assert f"; {kept} already done" in p.stdout and "holds 32 of 32 cells, verified" in p.stdout


def test_a_cell_equals_simulate_of_its_configuration(serial):
    """One path: the sweep's cell values are otfr_vec.simulate's numbers."""
    from otfr_vec import simulate

    cfg = make_config([*TINY, "degradation.r=0.01", f"sim.seed={cell_seed(0, 1)}"])
    ds = simulate(cfg)
    cell = serial.sel({"degradation.r": 0.01, "seed": 1})
    for name in METRICS:
        np.testing.assert_array_equal(cell[name].values, ds[name].values, err_msg=name)
    assert cell.rho_net.item() == ds.attrs["otfr_vec:rho_net"]
    assert cell.requests.item() == ds.attrs["otfr_vec:requests"]


def _numeric(var):
    return var.dtype.kind in "iufb"


def test_cf_attrs_on_every_variable_and_coordinate(serial, tmp_path):
    """Fails on the old code: no long_name anywhere, coordinates without units."""
    from xarray.plot.utils import label_from_attrs

    from otfr_vec import policies, simulate

    run = simulate(make_config([*TINY, "sim.duration=12"]))
    for ds in (serial, run):
        for name, var in {**ds.coords, **ds.data_vars}.items():
            assert var.attrs.get("long_name"), name
            if _numeric(var):
                assert var.attrs.get("units"), name
        descs = ds.scheduler_description.values.tolist()
        assert descs == [policies.get(str(s)).description for s in ds.scheduler.values]
        assert label_from_attrs(ds.failure_rate) == "failure rate [1]"
    assert serial["degradation.r"].attrs["units"] == "1"
    assert "residual bandwidth" in serial["degradation.r"].attrs["long_name"]
    assert run.window.attrs["units"] == "s"
    cfg = make_config(
        [*TINY, "+sweep.axes.health.delay=[0,30]", f"store={tmp_path / 'h.zarr'}"],
        config_name="sweep",
    )
    from otfr_vec.sweep import prepare

    path, _ = prepare(cfg, plan(cfg), say=lambda *a: None)
    delay = xr.open_zarr(path)["health.delay"]
    assert delay.attrs["units"] == "s" and delay.attrs["long_name"] == "health label delay"


def test_help_lists_keys_with_descriptions(tmp_path):
    """Fails on the old code: --help listed the dask and grid groups run rejects, and no
    key descriptions."""
    run = subprocess.run(
        [sys.executable, "-m", "otfr_vec.run", "--help"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "degradation.r = 0.1" in run.stdout and "residual bandwidth factor" in run.stdout
    assert "health.delay = 30.0 [s]" in run.stdout
    assert "grid:" not in run.stdout and "dask:" not in run.stdout
    sweep = cli("--help", cwd=tmp_path)
    assert (
        sweep.returncode == 0 and "severity" in sweep.stdout and "sweep.seeds = 1" in sweep.stdout
    )
    assert os.listdir(tmp_path) == []


def test_dashboard_page_answers():
    """Fails on the old code: the page said 'Dask needs bokeh>=3.1.0 for the dashboard'."""
    import urllib.request

    cfg = make_config(["dask.n_workers=1", "dask.dashboard=127.0.0.1:0"], config_name="sweep")
    with connect(cfg.dask) as client:
        url = dashboard(client)
        assert url.startswith("http://127.0.0.1:"), url
        with urllib.request.urlopen(url, timeout=60) as page:
            body = page.read().decode()
        assert page.status == 200 and "bokeh" in body.lower() and "needs bokeh" not in body


@pytest.mark.parametrize(
    "args, message",
    [
        (["+grid=severty"], "Available options in 'grid'"),
        (["+grid=severity", "+sweep.axes.degradation.rr=[1]"], "degradation.rr: not a config"),
        (["+grid=severity", "sweep.axes.degradation.r=[]"], "an axis needs at least one value"),
        (["+grid=severity", "sweep.axes.degradation.r=[0.1,1.5]"], "degradation.r=1.5: must be"),
        (["+grid=severity", "dask=address"], "dask.address"),
        (["+foo=bar"], "foo='bar': not a configuration key"),
        (["+grid=severity", "+degradation.rr=0.05"], "did you mean degradation.r"),
        (["+sweep.axes.degradation.r=[1,1.0]"], "1 and 1.0 are the same value"),
        (["sim.seed=${oc.env:NOPE}"], "Environment variable 'NOPE' not found"),
        (["degradation.pattern=stép"], "unquoted non-ASCII characters"),
        (["store=foo://bar"], "unknown protocol 'foo'"),
        (["dask.worker_timeout=0"], "dask.worker_timeout=0"),
    ],
)
def test_bad_input_fails_before_any_work(args, message, tmp_path):
    store = [] if any(a.startswith("store=") for a in args) else ["store=s.zarr"]
    p = cli(*args, *store, cwd=tmp_path)
    assert p.returncode != 0
    assert message in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    assert os.listdir(tmp_path) == []  # no store, nothing else


def test_plan_collects_every_bad_value(tmp_path):
    cfg = sweep_cfg(tmp_path / "s.zarr", "+sweep.axes.health.noise=[0.5,2,3]")
    with pytest.raises(ValueError) as err:
        plan(cfg)
    assert "health.noise=2.0" in str(err.value) and "health.noise=3.0" in str(err.value)
