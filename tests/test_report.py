"""The report on tiny stores: every figure and table, skips, and clear failures."""

import itertools
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from conftest import small

from otfr_vec import simulate
from otfr_vec.report import build_report, main, reduction_ci
from otfr_vec.run import save

TINY = [
    "cluster.pods=2",
    "cluster.workers_per_pod=8",
    "sim.duration=50",
    "sim.warmup=5",
    "degradation.onset=15",
    "degradation.duration=25",
]
SCALARS = [
    "failure_rate",
    "timeout_share",
    "resilience_index",
    "deflection_ratio",
    "gap_to_oracle",
    "arrived",
    "completed",
    "timed_out",
    "failed_other",
]


def grid_store(path, axes: dict, seeds=(0, 1)):
    """A sweep-like store: one dimension per swept key, `seed` and `scheduler`."""
    cells = []
    for values in itertools.product(*axes.values(), seeds):
        *vals, seed = values
        over = [f"{k}={v}" for k, v in zip(axes, vals, strict=True)] + [f"sim.seed={seed}"]
        ds = simulate(small(*TINY, *over))[SCALARS].drop_attrs()
        cells.append(
            ds.expand_dims({**{k: [v] for k, v in zip(axes, vals, strict=True)}, "seed": [seed]})
        )
    ds = xr.combine_by_coords(cells)
    ds.attrs["otfr_vec:config"] = "tiny"
    save(ds, str(path))
    return str(path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("stores")
    sev = grid_store(d / "severity.zarr", {"degradation.r": [0.1, 0.01]})
    lab = grid_store(
        d / "labels.zarr", {"health.delay": [0, 30], "health.noise": [0.0, 0.2]}, seeds=(0,)
    )
    run = d / "run.zarr"
    save(simulate(small(*TINY)), str(run))
    sens = grid_store(
        d / "sens.zarr", {"weights.lambda_r": [0.1, 3.0], "price.gamma": [1.0, 3.0]}, seeds=(0,)
    )
    kv = grid_store(
        d / "kv.zarr",
        {"network.kv_bytes_per_token": [163840, 327680], "workload.load": [0.5, 0.7]},
        seeds=(0,),
    )
    return sev, lab, str(run), sens, kv


def test_report_draws_every_available_result(stores, tmp_path):
    report, skipped = build_report(list(stores), tmp_path, tmp_path / "none.md")
    text = report.read_text()
    for key in ("R1", "R2", "R4", "R5", "R6", "R7", "R8", "R9", "S"):
        assert f"## {key}:" in text, key
        assert list(tmp_path.glob(f"{key}_*.png")), key
    assert "89.6" in text  # the study's figure next to ours
    assert any(s.startswith("R3") for s in skipped) and any(s.startswith("R10") for s in skipped)
    assert "## Provenance" in text and "severity.zarr" in text


def test_missing_dimension_is_a_skip_not_a_crash(stores, tmp_path):
    _, lab, *_ = stores
    report, skipped = build_report([lab], tmp_path, tmp_path / "none.md")
    assert any(s.startswith("R1") and "degradation.r" in s for s in skipped)
    assert "## R6:" in report.read_text()


def test_not_a_store_fails_clearly(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(SystemExit, match="no such store"):
        main([str(tmp_path / "missing.zarr")])
    with pytest.raises(SystemExit, match="not"):
        main([str(tmp_path / "x.txt")])


def test_reduction_ci_pooled_and_bracketing():
    h = np.array([1.0, 2.0, 3.0, 2.0])
    b = np.array([10.0, 20.0, 30.0, 20.0])
    p, lo, hi = reduction_ci(h, b)
    assert p == pytest.approx(0.9) and lo <= p <= hi


def test_decision_overhead_from_benchmark_results(stores, tmp_path):
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "RESULTS.md"
    report, skipped = build_report([stores[0]], tmp_path, bench)
    assert not any(s.startswith("R10") for s in skipped), skipped
    text = report.read_text()
    assert "## R10:" in text and "pure Python" in text
    assert (tmp_path / "R10_decision.png").stat().st_size > 10_000
