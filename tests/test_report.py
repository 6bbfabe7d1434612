"""The report on tiny real sweep stores: every result, store choice, half-finished and
incomplete stores, provenance, intervals, baselines from registered policies."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from omegaconf import OmegaConf

from otfr_vec import make_config, policies, simulate, store
from otfr_vec.config.sweep_schema import SweepConfig
from otfr_vec.policies import Policy, registry
from otfr_vec.report import ReportError, build_report, main, mean_ci, open_store, reduction_ci
from otfr_vec.report.plots import scheduler_style
from otfr_vec.run import save
from otfr_vec.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "cluster.pods=2",
    "cluster.workers_per_pod=8",
    "sim.duration=50",
    "sim.warmup=5",
    "degradation.onset=15",
    "degradation.duration=25",
    "degradation.pods=1",
]


def sweep(path, *overrides) -> str:
    cfg = make_config([*TINY, f"store={path}", "dask=serial", *overrides], config_name="sweep")
    return run_sweep(cfg, quiet=True)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("stores")
    s = {
        "severity": sweep(  # the study's five: the baselines tests add their own
            d / "zz_severity.zarr",
            "+grid=severity",
            "sweep.axes.degradation.r=[0.1,0.01]",
            "sweep.seeds=4",
            "schedulers=${policies:study}",
        ),
        "labels": sweep(
            d / "labels.zarr",
            "+grid=label_noise",
            "sweep.axes.health.delay=[0.0,30.0]",
            "sweep.axes.health.noise=[0.0,0.2]",
            "sweep.axes.health.miss=[0.3]",
            "sweep.seeds=1",
        ),
        # sweeps r too (one value), so it qualifies for R1 by dimension: a grid decides
        "telemetry": sweep(
            d / "aa_telemetry.zarr",
            "+grid=telemetry",
            "schedulers=${policies:study}",
            "sweep.axes.degradation.r=[0.1]",
            "sweep.seeds=1",
        ),
        "sensitivity": sweep(
            d / "sens.zarr",
            "+grid=sensitivity",
            "sweep.axes.weights.lambda_r=[0.1,3.0]",
            "sweep.axes.price.gamma=[1.0,3.0]",
            "~sweep.axes.price.halflife",
            "~sweep.axes.network.bw0",
        ),
        # workload.load without the study's 0.7: R7 and R9 must average over it and say so
        "kv": sweep(
            d / "kv.zarr",
            "sweep.name=workload",
            "+sweep.axes.network.kv_bytes_per_token=[163840,327680]",
            "+sweep.axes.workload.load=[0.5,0.85]",
            "sweep.seeds=2",
        ),
    }
    run = d / "run.zarr"
    save(simulate(make_config([*TINY, "sim.seed=1"])), str(run))
    s["run"] = str(run)
    return s


@pytest.fixture(scope="module")
def full(stores, tmp_path_factory):
    """The report on every store above, drawn once for the tests that read it."""
    out = tmp_path_factory.mktemp("full")
    path, skipped = build_report(list(stores.values()), out, say=lambda m: None)
    return path.read_text(), skipped, out


def report(tmp_path, stores_, **kw):
    path, skipped = build_report(list(stores_), tmp_path / "rep", say=lambda m: None, **kw)
    return path.read_text(), skipped


def section(text: str, key: str) -> str:
    m = re.search(rf"^## {key}: .*?(?=^## |\Z)", text, re.M | re.S)
    assert m, f"no section {key}"
    return m.group(0)


def test_report_draws_every_available_result(stores, full):
    text, skipped, out = full
    for key in ("R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "S"):
        assert f"## {key}:" in text, key
        assert list(out.glob(f"{key}_*.png")), key
    assert [s[:3] for s in skipped] == ["B (", "R10"], skipped  # no baselines, no record
    # chosen by grid, not by name order: aa_telemetry sweeps r as well
    assert f"From `{stores['severity']}`" in section(text, "R1")
    assert f"From `{stores['telemetry']}`" in section(text, "R3")
    assert "89.6 %" in section(text, "R1")  # the study's figure beside ours ...
    # ... with the keys in which this tiny store differs from the study's setting
    warning = re.search(r"\*\*Not the study's setting\*\*.*", section(text, "R1")).group(0)
    assert "`cluster.pods = 2 (study: 32)`" in warning and "sim.duration = 50" in warning
    assert "seeds | 4 | 4 |" in section(text, "R1")
    assert "held at the study's value: network.kv_bytes_per_token = 327680" in section(text, "R7")
    assert "averaged over workload.load (0.5, 0.85)" in section(text, "R9")


def test_provenance_renders_once_per_store(stores, full):
    text = full[0]
    prov = text.split("## Provenance", 1)[1]
    assert prov.count("\n### `") == len(stores)
    assert prov.count("<summary>resolved configuration</summary>") == len(stores)
    assert "otfr_vec:sweep" not in prov  # the identity repeats the config: not shown twice
    fenced = False
    for line in prov.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        # outside the YAML: headings, list items, the details tags, blank lines only
        assert line == "" or line.startswith(("### ", "- ", "<details>", "</details>")), line
    assert not fenced
    assert "- used for: R1, R2, R4" in prov


def test_several_stores_of_one_grid_are_refused_until_one_is_named(stores, tmp_path):
    other = tmp_path / "test_run.zarr"
    shutil.copytree(stores["severity"], other)
    with pytest.raises(ReportError) as err:
        build_report([stores["severity"], str(other)], tmp_path / "rep", say=lambda m: None)
    msg = str(err.value)
    assert stores["severity"] in msg and str(other) in msg and "--use severity=" in msg
    assert "R1" in msg and "cluster.pods = 2 (study: 32)" in msg
    assert not (tmp_path / "rep").exists()  # refused before anything was written
    text, _ = report(tmp_path, [stores["severity"], str(other)], use={"severity": str(other)})
    assert f"From `{other}`" in section(text, "R1") and "named with --use" in text
    assert main([stores["severity"], str(other), "--out", str(tmp_path / "cli")]) == 2


def test_bad_flags_and_paths_fail_clearly(stores, tmp_path, capsys):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ReportError, match="no such store"):
        build_report([str(tmp_path / "missing.zarr")], tmp_path / "r")
    with pytest.raises(ReportError, match="not a Zarr store"):
        build_report([str(tmp_path / "x.txt")], tmp_path / "r")
    with pytest.raises(ReportError, match="exists and is not a folder"):
        build_report([stores["severity"]], tmp_path / "x.txt")
    assert main([stores["severity"], "--use", "R42=" + stores["severity"]]) == 2
    assert "neither a result nor a grid" in capsys.readouterr().err
    assert main([stores["labels"], "--use", "R1=" + stores["labels"]]) == 2
    assert "R1 cannot be drawn from it" in capsys.readouterr().err
    assert main([]) == 2 and "no store given" in capsys.readouterr().err


def test_half_finished_store_uses_what_is_finished(stores, tmp_path):
    """An interrupted serial sweep: r = 0.01 has no finished cell, r = 0.1 three of four."""
    path = tmp_path / "half.zarr"
    shutil.copytree(stores["severity"], path)
    done = zarr.open_array(str(path / "done"), mode="r+")
    done[1, :] = False  # r = 0.01: nothing finished
    done[0, 3] = False  # r = 0.1: seed 3 not finished
    for arr in ("failure_rate", "timed_out"):  # and its chunks never written
        for chunk in path.joinpath(arr).glob("1.*"):
            chunk.unlink()
    text, _ = report(tmp_path, [str(path)])
    r1 = section(text, "R1")
    assert "**Not finished**: degradation.r = 0.1: 3 of 4 seeds; degradation.r = 0.01: 0 of 4" in r1
    assert "| seeds | **3 of 4** | **0 of 4** |" in r1
    assert "| 0.01 | — | n/a | **0 of 4** |" in r1  # no reduction made up from nothing
    assert "- not finished: degradation.r = 0.1: 3 of 4 seeds" in text


def test_lost_and_corrupted_chunks_are_left_out_and_named(stores, tmp_path):
    """A done cell whose counts read back as a lost chunk does (zeros), or whose failure
    rate no longer matches its counts, is left out, named, and counted as missing (a
    store chunk holds many cells, so the damage is written cell by cell here)."""
    path = tmp_path / "damaged.zarr"
    shutil.copytree(stores["severity"], path)
    zarr.open_array(str(path / "timed_out"), mode="r+")[0, 1] = 0  # r = 0.1, seed 1
    fr = zarr.open_array(str(path / "failure_rate"), mode="r+")
    fr[1, 3] = fr[1, 3] + 0.5  # r = 0.01, seed 3
    text, _ = report(tmp_path, [str(path)])
    r1 = section(text, "R1")
    assert "2 damaged cells left out" in r1
    assert "degradation.r = 0.1, seed 1; degradation.r = 0.01, seed 3." in r1
    assert "| seeds | **3 of 4** | **3 of 4** |" in r1
    assert re.search(r"\| 0\.1 \| [\d.]+ % \| \[.*\] % \| \*\*3 of 4\*\* \|", r1)  # reduction


def test_a_changed_value_the_counts_cannot_show_fails_its_checksum(stores, tmp_path):
    """A done cell whose TTFT was changed keeps its count identities; only the sweep's
    per-cell checksum (otfr_vec.store.verify) shows it: named and left out too."""
    path = tmp_path / "changed.zarr"
    shutil.copytree(stores["severity"], path)
    p50 = zarr.open_array(str(path / "ttft_p50"), mode="r+")
    p50[0, 2] = p50[0, 2] * 0.5  # r = 0.1, seed 2
    text, _ = report(tmp_path, [str(path)])
    r1 = section(text, "R1")
    assert "1 damaged cell left out" in r1, r1
    assert "degradation.r = 0.1, seed 2." in r1


def test_store_lacking_variables_draws_the_rest(stores, tmp_path):
    ds = xr.open_zarr(stores["severity"]).load().drop_vars(["resilience_index", "gap_to_oracle"])
    path = tmp_path / "lacking.zarr"
    store.write_dataset(ds, str(path))
    text, skipped = report(tmp_path, [str(path)])
    assert any(s.startswith("R2") and "`resilience_index`" in s for s in skipped), skipped
    assert "## R1:" in text and "## R4:" in text and "Gap to" not in text
    assert "- variables absent from the store: resilience_index, gap_to_oracle" in text


def test_a_hole_is_not_averaged_over(stores, tmp_path):
    """R9 averages workload.load (no 0.7 on this grid): a missing cell must drop that seed
    from its point, flagged, not shrink the average to the cells that are left."""
    path = tmp_path / "holed.zarr"
    shutil.copytree(stores["kv"], path)
    zarr.open_array(str(path / "done"), mode="r+")[0, 1, 0] = False  # kv 163840, load 0.85
    text, _ = report(tmp_path, [str(path)])
    r9 = section(text, "R9")
    assert "| seeds | **1 of 2** | 2 |" in r9
    full, _ = report(tmp_path / "full", [stores["kv"]])
    assert "| seeds | 2 | 2 |" in section(full, "R9")


def test_intervals_have_honest_coverage():
    """95 % intervals over 3-4 seeds must cover about 95 % of the time (the percentile
    bootstrap the report used before covered 76 % and 80 % in this very setting)."""
    g = np.random.default_rng(7)
    for n in (3, 4):
        mean_hits = red_hits = 0
        reps = 3000
        for _ in range(reps):
            base = g.normal(100.0, 15.0, n)
            new = 0.3 * base + g.normal(0.0, 6.0, n)  # true reduction 0.7
            m = mean_ci(base)
            mean_hits += abs(m.mean - 100.0) <= m.half
            r = reduction_ci(new, base)
            red_hits += r.lo <= 0.7 <= r.hi
        assert 0.93 <= mean_hits / reps <= 0.97, (n, mean_hits / reps)
        assert 0.93 <= red_hits / reps <= 0.975, (n, red_hits / reps)


def test_reduction_interval_on_the_severity_grids_r_02_cell():
    # failures of fault_aware_otfr / fault_aware_lc over the 4 seeds of make sweep at r=0.2
    r = reduction_ci([589, 738, 559, 545], [664, 883, 694, 639])
    assert r.point == pytest.approx(1 - 2431 / 2880)
    assert r.lo < 0.11 and r.hi > 0.20  # about the per-seed t interval [10.1, 20.9] %
    one = reduction_ci([1.0], [10.0])
    assert one.point == pytest.approx(0.9) and np.isnan(one.lo) and one.n == 1
    # a baseline that is not distinguishable from zero gives an unbounded interval
    assert reduction_ci([1.0, 0.0, 2.0], [0.0, 3.0, 0.0]).hi == np.inf


@pytest.fixture
def production():
    """Three policies registered as production / composition mechanisms, for this test
    (removed afterwards: a monkeypatch would restore what the teardown deletes)."""
    names = {"test_od": "production", "test_ewma": "production", "test_od_price": "composition"}
    colours = {"test_od": "#8c564b", "test_ewma": "#e377c2", "test_od_price": "#17becf"}
    for k, (name, grp) in enumerate(names.items()):
        policies.register(Policy(name, f"{name} desc", "a test", colours[name], 50 + k, grp))
    try:
        yield list(names)
    finally:
        for name in names:
            registry._REGISTRY.pop(name, None)


def baselines_store(src: str, path: Path) -> str:
    """A store of the baselines grid: the study's five plus the registered mechanisms,
    whose failure counts are scaled from study schedulers of the same cells; one
    (test_ewma) has fewer failures than the hybrid, one name is not registered."""
    ds = xr.open_zarr(src).load()
    per_seed = xr.DataArray([0.5, 0.35, 0.45, 0.4], dims="seed")
    metrics = ["failure_rate", "timed_out", "failed_other", "arrived"]

    def like(source, name, factor):
        new = ds[metrics].sel(scheduler=[source]).assign_coords(scheduler=[name])
        for v in ("failure_rate", "timed_out", "failed_other"):
            new[v] = new[v] * factor
        return new

    extra = [
        like("fault_aware_lc", "test_od", 0.8 + 0.1 * per_seed),
        like("fault_aware_otfr", "test_ewma", per_seed),
        like("fault_aware_otfr", "test_od_price", 1.5 + 0.0 * per_seed),
        like("lc", "mystery", 1.0),
    ]
    out = xr.concat([ds[metrics], *extra], dim="scheduler")
    out["done"] = ds["done"]
    cfg = OmegaConf.create(ds.attrs["otfr_vec:config"])
    cfg.sweep.name = "baselines"
    out.attrs = {**ds.attrs, "otfr_vec:config": OmegaConf.to_yaml(cfg)}
    for v in out.variables.values():
        v.encoding = {}  # counts scaled to floats: not the source's int encoding
    out.to_zarr(path, zarr_format=2, consolidated=True)
    return str(path)


def test_baselines_result_from_registered_policies(stores, production, tmp_path):
    base = baselines_store(stores["severity"], tmp_path / "baselines.zarr")
    text, skipped = report(tmp_path, [stores["severity"], base])
    b = section(text, "B")
    assert f"From `{base}`" in b and f"From `{stores['severity']}`" in section(text, "R1")
    assert (tmp_path / "rep" / "B_baselines.png").stat().st_size > 20_000
    # every scheduler of the store, in registry order, unknown names last
    rows = re.findall(r"^\| `(\w+)` \| [\d.]+ ±", b, re.M)
    order = [*policies.names("study"), *production, "mystery"]
    assert rows[: len(order)] == order, rows
    # the hybrid against each mechanism, with intervals, and the one that wins named
    against = re.search(r"Failure reduction of `fault_aware_otfr` against.*?\n\n(.*?)\n\n", b, re.S)
    table = against.group(1)
    assert [ln.split("`")[1] for ln in table.splitlines()[2:]] == production
    assert re.search(r"\| `test_ewma` \| production \| \*\*-\d", table)  # it wins: bold
    wins = re.search(r"\*\*Where a production mechanism wins against `fault_aware_otfr`.*", b)
    # test_ewma has 35-50 % of the hybrid's failures per seed: said as its own reduction
    assert re.search(r"`test_ewma` at r = 0\.1: (5\d|6\d)\.\d % fewer failures \[", wins.group(0))
    assert "test_od" not in wins.group(0).replace("test_od_price", "")
    assert "Failure reduction of `otfr` against" in b  # and otfr, too
    assert "per proxy" in b  # the fairness note
    assert scheduler_style("test_od")["color"] == "#8c564b"
    assert scheduler_style("test_od")["ls"] != scheduler_style("lc")["ls"]


def test_decision_overhead_from_the_benchmark_record(stores, tmp_path):
    rec = ROOT / "benchmarks" / "RESULTS.json"
    text, skipped = report(tmp_path, [stores["severity"]], bench=rec)
    assert not any(s.startswith("R10") for s in skipped), skipped
    r10 = section(text, "R10")
    assert "pure Python" in r10 and "| 1,024 |" in r10
    assert (tmp_path / "rep" / "R10_decision.png").stat().st_size > 10_000
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"decision": {}}))
    with pytest.raises(ReportError, match="not a benchmark record"):
        report(tmp_path, [stores["severity"]], bench=bad)


def test_open_store_says_what_it_is(stores):
    sev = open_store(stores["severity"])
    assert sev.kind == "sweep" and sev.grid == "severity" and sev.axes == ["degradation.r"]
    assert "cluster.pods = 2 (study: 32)" in sev.differs()
    assert "degradation.r" not in " ".join(sev.differs())  # swept keys are not a difference
    run = open_store(stores["run"])
    assert run.kind == "run" and run.grid is None
    # a store that ran the study's setting says so
    tiny = ("cluster", "sim", "degradation")
    sev.config = {k: v for k, v in sev.config.items() if not k.startswith(tiny)}
    study = OmegaConf.to_container(OmegaConf.structured(SweepConfig))
    for key in tiny:
        for k, v in study[key].items():
            sev.config[f"{key}.{k}"] = v
    assert sev.differs() == [] and "the study's setting" in sev.describe()


def test_module_entry_point(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "otfr_vec.report", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "--use KEY=PATH" in done.stdout
