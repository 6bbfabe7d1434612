"""The sweep store: kills at random moments resume to the uninterrupted result; damaged
cells are found and recomputed; one writer at a time; foreign stores and files untouched."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
import zarr

from otfr_vec import make_config, store
from otfr_vec.store import StoreError
from otfr_vec.sweep import SweepStopped, plan, prepare, run_sweep

TINY = ["cluster.pods=2", "cluster.workers_per_pod=8", "sim.duration=40", "sim.warmup=4"]
TINY += ["degradation.onset=8", "degradation.duration=20", "degradation.pods=1"]
GRID = [
    "+grid=severity",
    "schedulers=${policies:study}",
    "sweep.axes.degradation.r=[0.2,0.1,0.05]",
    "sweep.seeds=3",
    *TINY,
]


def sweep_cfg(path, *overrides):
    return make_config([*GRID, f"store={path}", *overrides], config_name="sweep")


def cli(*args, cwd, **kw):
    return subprocess.run(
        [sys.executable, "-m", "otfr_vec.sweep", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "s.zarr"
    return xr.open_zarr(run_sweep(sweep_cfg(path, "dask=serial"), quiet=True)).load()


@pytest.fixture
def finished(uninterrupted, tmp_path):
    """A finished copy of the reference store."""
    path = tmp_path / "s.zarr"
    run_sweep(sweep_cfg(path, "dask=serial"), quiet=True)
    return path


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def test_killed_at_random_moments_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL of the driver (and its workers) at random moments of several runs: while
    starting, creating the template, mid-cell, mid-write; every state left behind
    verifies, and the last run completes to the uninterrupted store."""
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    slow = [*GRID, "sim.duration=300", "sweep.seeds=4"]  # 12 cells of ~0.3 s: kills land among them
    ref = xr.open_zarr(
        run_sweep(
            make_config(
                [*slow, "dask=serial", f"store={tmp_path / 'ref.zarr'}"], config_name="sweep"
            ),
            quiet=True,
        )
    ).load()
    path = tmp_path / "s.zarr"
    args = [*slow, f"store={path}", "sweep.batch=1"]
    moments = []
    for run in range(3):
        mode = ["dask=serial"] if run != 1 else ["dask.n_workers=2", "dask.dashboard=null"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "otfr_vec.sweep", *args, *mode],
            cwd=tmp_path,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if rng.random() < 0.25:  # while starting up or writing the template
            moments.append(("start", round(rng.uniform(0.2, 1.5), 2)))
        else:  # once the store exists: among the cells and their writes
            deadline = time.monotonic() + 60
            while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            moments.append(("cells", round(rng.uniform(0.0, 3.5), 2)))
        time.sleep(moments[-1][1])
        _kill_group(proc)
        if path.exists():  # whatever a kill left: no cell marked done that is not intact
            status = store.verify(str(path))
            assert not status.damaged and not status.unreadable, (seed, moments)
    p = cli(*args, "dask.n_workers=2", "dask.dashboard=null", cwd=tmp_path)
    assert p.returncode == 0, (seed, moments, p.stderr)
    assert "Traceback" not in p.stderr and "killing" not in p.stdout + p.stderr
    resumed = xr.open_zarr(path)
    xr.testing.assert_equal(resumed, ref)
    assert resumed.attrs["otfr_vec:sweep"] == ref.attrs["otfr_vec:sweep"]
    assert not os.path.exists(f"{path}.lock")  # released on success


def test_half_written_cell_is_not_done_and_is_rerun(uninterrupted, tmp_path):
    cfg = sweep_cfg(tmp_path / "s.zarr", "dask=serial")
    path, todo = prepare(cfg, plan(cfg))
    assert len(todo) == uninterrupted.done.size
    # a cell whose metrics landed but whose checksum and done flag did not (killed between)
    group = zarr.open_group(path, mode="r+")
    group["failure_rate"][1, 1] = 7.0
    group["arrived"][1, 1] = 7
    assert not store.done_mask(path).any()
    xr.testing.assert_equal(xr.open_zarr(run_sweep(cfg, quiet=True)), uninterrupted)


def test_resume_with_nothing_left_touches_nothing_and_starts_no_cluster(finished, tmp_path):
    files = {p: p.stat().st_mtime_ns for p in finished.rglob("*") if "c" in p.parts}
    p = cli(*GRID, f"store={finished}", cwd=tmp_path)  # default dask=local
    assert p.returncode == 0, p.stderr
    assert "9 already done" in p.stdout and "ran 0 cells" in p.stdout
    assert "dask:" not in p.stdout  # no cluster was started
    assert {p: p.stat().st_mtime_ns for p in finished.rglob("*") if "c" in p.parts} == files


def test_different_configuration_is_refused_before_any_cluster(finished, tmp_path):
    files = {p: p.stat().st_mtime_ns for p in finished.rglob("*")}
    for change, expect in [
        ("sim.duration=30", "sim.duration: store has 40.0, this run has 30.0"),
        ("sweep.seeds=2", "sweep.seeds: store has 3, this run has 2"),
        ("sweep.axes.degradation.r=[0.05]", "sweep.axes"),
    ]:
        with pytest.raises(StoreError, match="different configuration") as err:
            run_sweep(sweep_cfg(finished, "dask=serial", change), quiet=True)
        assert expect in str(err.value)
    p = cli(*GRID, "sim.duration=30", f"store={finished}", cwd=tmp_path)
    assert p.returncode == 2 and "sim.duration: store has 40.0" in p.stderr
    assert "dask:" not in p.stdout and "Traceback" not in p.stderr
    assert {p: p.stat().st_mtime_ns for p in finished.rglob("*")} == files  # untouched
    # overwrite discards it and starts again
    cfg = sweep_cfg(finished, "dask=serial", "sim.duration=30", "sweep.overwrite=true")
    ds = xr.open_zarr(run_sweep(cfg, quiet=True))
    assert "duration: 30.0" in ds.attrs["otfr_vec:config"] and bool(ds.done.all())


def test_overwrite_never_deletes_what_otfr_vec_did_not_write(tmp_path):
    """Fails on the old code: sweep.overwrite=true deleted any directory."""
    notes = tmp_path / "s.zarr"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    for extra in ([], ["sweep.overwrite=true"]):
        with pytest.raises(StoreError, match="otfr_vec did not write") as err:
            run_sweep(sweep_cfg(notes, "dask=serial", *extra), quiet=True)
        assert "notes.txt" in str(err.value)
    assert (notes / "notes.txt").read_text() == "mine"
    (notes / "notes.txt").unlink()  # an empty directory is not a store either
    with pytest.raises(StoreError, match="not a store written by otfr_vec"):
        run_sweep(sweep_cfg(notes, "dask=serial", "sweep.overwrite=true"), quiet=True)
    assert notes.is_dir()


@pytest.mark.parametrize("damage", ["delete", "junk", "change", "coordinate"])
def test_damaged_cells_are_named_and_recomputed(uninterrupted, finished, damage, capsys):
    """Fails on the old code: a lost chunk resumed as "ran 0 cells" with NaN read back,
    a junk chunk gave a codec traceback."""
    chunk = finished / "failure_rate" / "c" / "0" / "0" / "0"
    assert chunk.is_file()
    if damage == "delete":
        chunk.unlink()
    elif damage == "junk":
        chunk.write_bytes(os.urandom(64))
    elif damage == "change":  # a valid chunk with one value changed behind our back
        arr = zarr.open_group(str(finished), mode="r+")["failure_rate"]
        arr[2, 1, 0] = arr[2, 1, 0] + 0.5
    else:  # the axis values themselves: lost, so they would read as NaN
        (finished / "degradation.r" / "c" / "0").unlink()
        run_sweep(sweep_cfg(finished, "dask=serial"))
        out = capsys.readouterr().out
        assert "rewrote damaged coordinates degradation.r" in out and "ran 0 cells" in out
        xr.testing.assert_equal(xr.open_zarr(finished), uninterrupted)
        return
    status = store.verify(str(finished))
    expected = 1 if damage == "change" else 9
    assert len(status.damaged) == expected and not status.done.all()
    run_sweep(sweep_cfg(finished, "dask=serial"))
    out = capsys.readouterr().out
    assert f"{expected} finished cells are damaged and will be recomputed" in out
    assert "degradation.r=0.05 seed=1" in out
    assert f"ran {expected} cells" in out and "holds 9 of 9 cells, verified" in out
    xr.testing.assert_equal(xr.open_zarr(finished), uninterrupted)


def _holder(path, ready):
    code = (
        "import sys, time\n"
        "from otfr_vec import store\n"
        f"with store.lock({str(path)!r}):\n"
        f"    open({str(ready)!r}, 'w').close()\n"
        "    time.sleep(60)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def test_one_writer_at_a_time_and_stale_locks_taken_over(finished, tmp_path, capsys):
    """Fails on the old code: a second writer raced the first (unreadable stores)."""
    ready = tmp_path / "ready"
    holder = _holder(finished, ready)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert time.monotonic() < deadline and holder.poll() is None
            time.sleep(0.05)
        files = {p: p.stat().st_mtime_ns for p in finished.rglob("*")}
        for extra in ([], ["sweep.overwrite=true"]):
            with pytest.raises(StoreError, match="another otfr_vec process is writing") as err:
                run_sweep(sweep_cfg(finished, "dask=serial", *extra), quiet=True)
            assert f"pid {holder.pid} on host {socket.gethostname()}" in str(err.value)
        assert {p: p.stat().st_mtime_ns for p in finished.rglob("*")} == files
    finally:
        _kill_group(holder)
    # the holder died without cleaning up: its lock file is stale and taken over
    lock = f"{finished}.lock"
    assert os.path.exists(lock) and json.loads(open(lock).read())["pid"] == holder.pid
    run_sweep(sweep_cfg(finished, "dask=serial"))
    assert f"took over the stale lock of pid {holder.pid}" in capsys.readouterr().out
    assert not os.path.exists(lock)


def test_a_changed_trace_file_is_refused_on_resume(tmp_path):
    """Fails on the old code: a resume mixed two workloads."""
    from otfr_vec.scenario.trace import resolve_trace

    trace = tmp_path / "trace.csv"
    shutil.copy(resolve_trace("azure_code"), trace)
    over = [
        *TINY,
        "workload.kind=trace",
        f"workload.trace={trace}",
        "workload.trace_load=0.7",
        "+sweep.axes.degradation.r=[0.1]",
        "dask=serial",
    ]
    path = tmp_path / "s.zarr"
    cfg = make_config([*over, f"store={path}"], config_name="sweep")
    run_sweep(cfg, quiet=True)
    lines = trace.read_text().splitlines()
    head, first = lines[0], lines[1].split(",")
    first[-2] = str(int(first[-2]) + 100)  # one prompt length changed
    trace.write_text("\n".join([head, ",".join(first), *lines[2:]]) + "\n")
    with pytest.raises(StoreError, match="different configuration") as err:
        run_sweep(make_config([*over, f"store={path}"], config_name="sweep"), quiet=True)
    assert f"workload.trace={trace}" in str(err.value) and "sha256" in str(err.value)


def test_thousands_of_cells_stay_a_few_hundred_files(tmp_path):
    """Fails on the old code: one chunk per cell per variable (1,199 files for 54 cells)."""
    cfg = make_config(
        [
            "+sweep.axes.degradation.r=[0.2,0.15,0.1,0.08,0.05,0.03,0.02,0.01]",
            "+sweep.axes.health.delay=[0,5,10,20,30,60]",
            "+sweep.axes.health.noise=[0,0.05,0.1,0.2,0.3]",
            "sweep.seeds=10",
            f"store={tmp_path / 's.zarr'}",
        ],
        config_name="sweep",
    )
    p = plan(cfg)
    assert len(p.cells) == 2400
    path, todo = prepare(cfg, p, say=lambda *a: None)
    writer = store.Writer(path)
    n = len(p.cells[0][1]["schedulers"])
    rng = np.random.default_rng(0)
    for at, _ in todo:  # values of the right shapes: the layout is what is tested
        values = {name: rng.random(n) for name in store.WRITE_ORDER if name in store.METRICS}
        values.update(rho_net=0.18, offered_rate=1.0, requests=10)
        writer.add(at, values)
    assert writer.flush() == 2400
    n_files = sum(len(files) for _, _, files in os.walk(path))
    assert n_files < 300, n_files
    status = store.verify(path)
    assert status.done.all() and not status.damaged


@contextlib.contextmanager
def tmpfs(path, size):
    """A small tmpfs at ``path`` (root only), unmounted on every exit path."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs (CI runs as root)")
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
    if r.returncode:
        pytest.skip("cannot mount a tmpfs on this machine")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_read_only_directory_is_refused_before_any_work(finished, tmp_path):
    """Fails on the old code: tracebacks (a new store), or an error after the simulation."""
    with tmpfs(tmp_path / "ro", "4m") as ro:
        shutil.copytree(finished, ro / "s.zarr")
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        for target in ("s.zarr", "new.zarr"):  # a resume, a new store
            p = cli(*GRID, f"store={ro / target}", cwd=tmp_path)
            assert p.returncode == 2, p.stderr
            assert "Read-only file system" in p.stderr and "Traceback" not in p.stderr
            assert "dask:" not in p.stdout
        p = subprocess.run(
            [sys.executable, "-m", "otfr_vec.run", *TINY, f"out={ro / 'run.zarr'}"],
            capture_output=True,
            text=True,
        )
        assert p.returncode == 2 and "Read-only file system" in p.stderr
        assert "simulated" not in p.stdout  # refused before simulating


def test_a_full_disk_stops_with_one_line_and_resumes(uninterrupted, tmp_path):
    with tmpfs(tmp_path / "small", "1m") as disk:
        cfg = sweep_cfg(disk / "s.zarr", "dask=serial")
        prepare(cfg, plan(cfg), say=lambda *a: None)  # the template fits
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        os.truncate(filler, max(0, filler.stat().st_size - 8192))  # room for the lock only
        with pytest.raises(SweepStopped) as err:
            run_sweep(cfg, quiet=True)
        msg = str(err.value)
        assert "No space left on device" in msg and "run the same command to resume" in msg
        assert "0 of 9 cells are in the store" in msg
        filler.unlink()
        xr.testing.assert_equal(xr.open_zarr(run_sweep(cfg, quiet=True)), uninterrupted)


def test_a_url_store_resumes(uninterrupted):
    """fsspec URLs are stores too: the second run finds the first one's cells."""
    cfg = sweep_cfg("memory://otfr-test/s.zarr", "dask=serial")
    run_sweep(cfg, quiet=True)
    _, todo = prepare(cfg, plan(cfg), say=lambda *a: None)
    assert todo == []
    xr.testing.assert_equal(xr.open_zarr("memory://otfr-test/s.zarr"), uninterrupted)
