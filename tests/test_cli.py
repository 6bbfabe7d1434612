import os
import subprocess
import sys

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
