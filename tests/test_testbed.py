"""The testbed's pieces that need no root: configuration, schedules, sharing rules, errors."""

from __future__ import annotations

import numpy as np
import pytest

from otfr_vec import policies
from otfr_vec.config import ConfigError
from otfr_vec.engine import make_scenario
from otfr_vec.testbed import __main__ as cli
from otfr_vec.testbed.bed import rate_schedule
from otfr_vec.testbed.config import Options, check_options, make_testbed_config
from otfr_vec.testbed.flows import fluid_times


def test_scaled_defaults_keep_the_study_regime():
    cfg = make_testbed_config()
    sc = make_scenario(cfg)
    assert sc.rho_net == pytest.approx(0.18)  # rule 2
    share = len(sc.degradation.pods) / cfg.cluster.pods
    assert cfg.workload.load / (1 - share) == pytest.approx(0.8)  # rule 3
    mean_kv = cfg.workload.prompt_mean * cfg.network.kv_bytes_per_token
    assert mean_kv / cfg.network.bw0 == pytest.approx(0.06)  # 60 ms at nominal bandwidth


def test_not_root_is_a_clear_message(monkeypatch, capsys):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err
    assert "needs root" in err and "otfr_vec.run" in err


def test_the_console_script_is_the_module_entry_point(capsys):
    from importlib import import_module
    from pathlib import Path

    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    module, func = pyproject["project"]["scripts"]["otfr-testbed"].split(":")
    assert getattr(import_module(module), func) is cli.main
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0 and "{run,compare}" in capsys.readouterr().out


def test_unsupported_settings_name_the_key():
    with pytest.raises(ConfigError, match=r"faults\.workers=2"):
        make_testbed_config(["faults.workers=2"])
    with pytest.raises(ConfigError, match="at most 32 worker processes"):
        make_testbed_config(["cluster.pods=8", "cluster.workers_per_pod=8"])
    with pytest.raises(ConfigError, match=r"--leaf 'red'"):
        check_options(Options(leaf="red"))


def test_run_refuses_to_replace_a_foreign_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("os.geteuid", lambda: 0)
    foreign = tmp_path / "mine.zarr"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    assert cli.main(["run", "--out", str(foreign)]) == 2
    assert "not a store written by the testbed" in capsys.readouterr().err
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_rate_schedule_takes_step_and_flap_edges_exactly():
    cfg = make_testbed_config(["degradation.onset=15.03", "degradation.duration=10"])
    times, factor = rate_schedule(make_scenario(cfg).degradation, 60.0, 0.1)
    assert times == [0.0, 15.03, 25.03]
    q = int(make_scenario(cfg).degradation.pods[0])
    assert [f[q] for f in factor] == [1.0, 0.1, 1.0]
    cfg = make_testbed_config(["degradation.pattern=flap", "degradation.duration=10"])
    times, factor = rate_schedule(make_scenario(cfg).degradation, 60.0, 0.1)
    q = int(make_scenario(cfg).degradation.pods[0])
    assert times == [0.0, 15.0, 17.5, 20.0, 22.5]  # period 5 s, duty 0.5, ends at 25 s
    assert [f[q] for f in factor] == [1.0, 0.1, 1.0, 0.1, 1.0]


def test_sharing_rules_on_hand_checked_cases():
    bw = {0: 1.0, 1: 1.0, 2: 1.0, 3: 0.1}
    same_sender = [dict(start=0, bytes=1.0, src=0, dst=1), dict(start=0, bytes=1.0, src=0, dst=2)]
    assert fluid_times(same_sender, bw) == pytest.approx([2.0, 2.0])
    # one sender, a healthy and a degraded receiver: the model holds the healthy flow at
    # bw_p / 2 while both run; max-min gives it what the degraded one cannot use
    mixed = [dict(start=0, bytes=1.0, src=0, dst=1), dict(start=0, bytes=1.0, src=0, dst=3)]
    assert fluid_times(mixed, bw, "model") == pytest.approx([2.0, 1.0 / 0.1])
    assert fluid_times(mixed, bw, "maxmin") == pytest.approx([1.0 / 0.9, 10.0])
    staggered = [dict(start=0, bytes=1.0, src=0, dst=1), dict(start=0.5, bytes=1.0, src=0, dst=2)]
    assert fluid_times(staggered, bw) == pytest.approx([1.5, 1.5])
    # a rate change mid-flow (degradation onset), and a flow cut at its deadline
    slowed = fluid_times(
        [dict(start=0, bytes=1.0, src=0, dst=1)], bw, changes=([0.5], [{0: 0.5, 1: 1.0}])
    )
    assert slowed == pytest.approx([0.5 + 0.5 / 0.5])
    cut = [dict(start=0, bytes=1.0, src=0, dst=1, stop=0.5), dict(start=0, bytes=1.0, src=0, dst=2)]
    got = fluid_times(cut, bw)
    assert np.isnan(got[0]) and got[1] == pytest.approx(0.5 + 0.75)  # 0.25 B shared, 0.75 alone


def test_the_router_is_the_online_library_and_shows_each_policy_what_the_simulator_does():
    from otfr_vec.online import Router
    from otfr_vec.testbed.routing import make_router, router_source, sees_truth

    cfg = make_testbed_config()
    for name in policies.names():
        assert sees_truth(name, cfg) == ((True, True) if name == "oracle" else (False, False))
    r = make_router("fault_aware_otfr", cfg)
    assert isinstance(r, Router) and router_source() == "otfr_vec.online"
    assert (r.n_workers, r.n_prefill, r.pod.tolist()) == (8, 4, [0, 1, 2, 3, 0, 1, 2, 3])
    r.tick(2.5)
    assert r.price_series(4).shape == (4, 4) and np.isnan(r.price_series(4)[3]).all()


def test_records_reduce_to_the_simulators_metrics():
    """A run's records -> the Dataset, on hand-made records (no processes needed)."""
    from otfr_vec import simulate
    from otfr_vec.scenario.workload import Stream
    from otfr_vec.testbed.bed import RunOutput
    from otfr_vec.testbed.dataset import policy_dataset
    from otfr_vec.testbed.router import TIMES

    cfg = make_testbed_config(["sim.duration=20", "schedulers=[lc]"])
    sc = make_scenario(cfg)
    req = Stream(sc.workload).until(20.0)
    keep = req.arrival < 20.0
    a = req.arrival[keep]
    n = a.size
    wl = {"arrival": a, "prompt": req.prompt[keep], "output": req.output[keep]}
    wl["ingress"] = req.ingress[keep]
    rec = {f"t_{k}": np.full(n, np.nan) for k in TIMES}
    rec["t_recv"] = rec["t_route_p"] = a.copy()
    rec["t_route_d"] = a + 0.2
    rec["t_first"] = a + 0.5
    rec["t_end"] = a + 2.0
    rec["t_resolve"] = a + 0.5
    rec["p"] = np.zeros(n, np.int64)
    rec["d"] = np.full(n, 4, np.int64)  # pod 0's decode worker
    rec["outcome"] = np.ones(n, np.int8)
    rec["where"] = np.zeros(n, np.int8)
    bad = np.arange(n) % 10 == 0  # every tenth times out at its deadline
    rec["outcome"][bad] = 2
    rec["t_resolve"][bad] = a[bad] + 3.0
    rec["t_first"][bad] = rec["t_end"][bad] = np.nan
    rec.update(decide_ns=np.array([100, 200]), lag=np.zeros(3), backstops=np.int64(0))
    rec["price"] = np.full((sc.n_win, 4), 0.25)
    out = RunOutput(rec, np.zeros(n), {"cpu": {}}, wl, 1.0, 1)
    ds = policy_dataset(out, cfg, sc, "lc")
    x = ds.sel(scheduler="lc")
    meas = (a >= cfg.sim.warmup) & (a < cfg.sim.duration - cfg.sim.timeout)
    assert int(x.arrived) == meas.sum()
    assert int(x.timed_out) == (meas & bad).sum()
    assert float(x.failure_rate) == pytest.approx((meas & bad).sum() / meas.sum())
    assert float(x.ttft_p50) == pytest.approx(0.5, rel=0.012)  # the kernel's histogram
    assert float(x.e2e_p99) == pytest.approx(2.0, rel=0.012)
    assert int(x.completed + x.timed_out + x.failed_other + x.in_flight) == int(x.arrived)
    assert int(x.routed.sum()) == int(x.decisions) == 2 * n
    assert int(x.routed.sel(pod=0).sum()) == 2 * n  # everything went to pod 0
    assert int(x.failures.sum()) == 2 * bad.sum()  # charged to both workers' pod
    assert int(x.window_failures.sum()) == (meas & bad).sum()
    sim = simulate(cfg)
    for name, var in sim.data_vars.items():
        assert ds[name].dims == var.dims and ds[name].attrs == var.attrs, name
    assert (ds.price == 0.25).all()
    np.testing.assert_array_equal(ds.health_label, sim.health_label)


def test_compare_formats_both_sides_and_judges_the_order_pair_by_pair():
    """compare's table from per-seed metrics (no runs): means with intervals, paired
    differences, the order on each side and which pairs carry over."""
    import xarray as xr

    from otfr_vec.testbed.compare import METRICS, format_compare

    seeds, scheds = [0, 1, 2, 3], ["lc", "otfr", "p2c_peak_ewma"]
    fr = {  # failure rates per seed: lc worst on both sides; otfr vs p2c swaps
        "simulator": [[0.10, 0.12, 0.11, 0.13], [0.01, 0.012, 0.011, 0.013], [0.02] * 4],
        "testbed": [[0.09, 0.13, 0.10, 0.12], [0.03, 0.031, 0.029, 0.03], [0.02] * 4],
    }
    data = {m: (("source", "seed", "scheduler"), np.full((2, 4, 3), 0.5)) for m in METRICS}
    data["failure_rate"] = (
        ("source", "seed", "scheduler"),
        np.array([np.array(fr[src]).T for src in ("testbed", "simulator")]),
    )
    tab = xr.Dataset(data, coords={"source": ["testbed", "simulator"], "seed": seeds,
                                   "scheduler": scheds})  # fmt: skip
    text = format_compare(tab, scheds)
    # lc: testbed 9, 13, 10, 12 %: mean 11, sd 1.83, t(3) = 3.18: 11 ± 2.9; paired -0.5 ± 1.6
    assert "| failure_rate (%) | lc | 11 ± 2.9 | 11.5 ± 2.1 | -0.5 ± 1.6 |" in text
    assert "testbed p2c_peak_ewma < otfr < lc; simulator otfr < p2c_peak_ewma < lc" in text
    assert "(DIFFERENT order)" in text and "Kendall's tau" in text
    assert "| lc vs otfr | 10.4 ± 1.8 | 8 ± 2.8 | carries over" in text
    assert "| otfr vs p2c_peak_ewma |" in text and "REVERSED in the testbed (separated)" in text
