import os
import subprocess
import sys

import pytest
import xarray as xr

SMALL = [
    "cluster.pods=2",
    "cluster.workers_per_pod=8",
    "sim.duration=40",
    "sim.warmup=5",
    "degradation.onset=10",
    "degradation.duration=20",
]


def _run(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "otfr_vec.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_run_prints_table_and_saves(tmp_path):
    out = tmp_path / "one.zarr"
    p = _run([*SMALL, f"out={out}"], tmp_path)
    assert p.returncode == 0, p.stderr
    for name in ("lc", "fault_aware_lc", "otfr", "fault_aware_otfr", "oracle", "rho_net"):
        assert name in p.stdout
    ds = xr.open_zarr(out)
    assert list(ds.scheduler.values) == [
        "lc",
        "fault_aware_lc",
        "otfr",
        "fault_aware_otfr",
        "oracle",
    ]
    assert ds.failure_rate.attrs["units"] == "1" and "description" in ds.failure_rate.attrs
    assert sorted(os.listdir(tmp_path)) == ["one.zarr"]  # nothing else written


def test_bad_input_fails_clearly_and_writes_nothing(tmp_path):
    out = tmp_path / "bad.zarr"
    p = _run([*SMALL, "degradation.r=1.5", f"out={out}"], tmp_path)
    assert p.returncode != 0
    assert "degradation.r=1.5" in p.stderr and "(0, 1]" in p.stderr
    assert os.listdir(tmp_path) == []
    p = _run(["telemetry.modee=none"], tmp_path)
    assert p.returncode != 0 and "telemetry.modee" in p.stderr
    assert os.listdir(tmp_path) == []


def test_out_never_deletes_what_otfr_vec_did_not_write(tmp_path):
    """Fails on the old code: out=. emptied the current directory, out=DIR wiped notes and
    said "saved", and a path that cannot be written failed only after the simulation."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    (tmp_path / "afile").write_text("mine")
    for out, expect in [
        (".", "holds files otfr_vec did not write (afile, notes)"),
        ("notes", "holds files otfr_vec did not write (a.txt)"),
        ("afile", "is a file, not a store"),
        ("afile/x.zarr", "is a file, so the store cannot be made there"),
        ("foo://bar", "unknown protocol 'foo'"),
    ]:
        p = _run([*SMALL, f"out={out}"], tmp_path)
        assert p.returncode == 2, (out, p.stderr)
        assert expect in p.stderr, (out, p.stderr)
        assert "simulated" not in p.stdout and "Traceback" not in p.stderr  # before any work
    assert sorted(os.listdir(tmp_path)) == ["afile", "notes"]
    assert (tmp_path / "notes" / "a.txt").read_text() == "mine"
    assert (tmp_path / "afile").read_text() == "mine"


def test_out_replaces_its_own_run_dataset_but_not_a_sweep_store(tmp_path):
    out = tmp_path / "one.zarr"
    for seed in (1, 2):
        p = _run([*SMALL, f"sim.seed={seed}", f"out={out}"], tmp_path)
        assert p.returncode == 0, p.stderr
        assert f"seed: {seed}" in xr.open_zarr(out).attrs["otfr_vec:config"]
    assert sorted(os.listdir(tmp_path)) == ["one.zarr"]  # no lock or temporary left
    from otfr_vec import make_config
    from otfr_vec.sweep import run_sweep

    sweep = tmp_path / "s.zarr"
    cfg = make_config(
        [*SMALL, "+sweep.axes.degradation.r=[0.1]", "dask=serial", f"store={sweep}"],
        config_name="sweep",
    )
    run_sweep(cfg, quiet=True)
    p = _run([*SMALL, f"out={sweep}"], tmp_path)
    assert p.returncode == 2 and "is an otfr_vec sweep store, not a run store" in p.stderr
    assert xr.open_zarr(sweep).done.all()


@pytest.mark.parametrize(
    "arg, message",
    [
        ("+degradation.rr=0.05", "degradation.rr=0.05: not a configuration key; did you mean"),
        ("+foo=bar", "foo='bar': not a configuration key"),
        ("sim.seed=${oc.env:NOPE}", "Environment variable 'NOPE' not found"),
        ("degradation.pattern=stép", "unquoted non-ASCII characters; quote the value"),
    ],
)
def test_bad_overrides_give_one_message(arg, message, tmp_path):
    """Fails on the old code: +KEY=VALUE was silently ignored, the others gave tracebacks
    or Hydra's lexer dump."""
    p = _run([*SMALL, arg], tmp_path)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and p.stderr.startswith("error: ")
    assert "Traceback" not in p.stderr and "simulated" not in p.stdout
    assert os.listdir(tmp_path) == []
