"""Every registered policy: validates, runs with the invariants checked at every step, is
deterministic, has a colour, exposes its knobs with ranges, and matches its kernel."""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import pytest
import xarray as xr

from otfr_vec import ConfigError, make_config, policies, simulate
from otfr_vec.engine import run
from otfr_vec.policies.registry import Policy

ALL = policies.names()
SMALL = [
    "cluster.pods=4",
    "cluster.workers_per_pod=8",
    "sim.duration=40",
    "sim.warmup=5",
    "degradation.onset=15",
    "degradation.duration=15",
    "degradation.pods=1",
    "faults.workers=2",
    "faults.onset=20",
    "faults.duration=8",
    "envoy_od.interval=2",  # timers fire often in a short run
    "breaker.timeout_duration=5",
]


def test_the_registry_holds_the_public_names():
    assert set(policies.STUDY) == {"lc", "fault_aware_lc", "otfr", "fault_aware_otfr", "oracle"}
    for name in ("envoy_od", "p2c_peak_ewma", "breaker", "epp", "prequal", "wrr_orca"):
        assert policies.get(name).group == "production"
    for name in ("epp_otfr", "envoy_od_otfr"):
        assert policies.get(name).group == "composition"
    with pytest.raises(KeyError, match="allowed: lc, fault_aware_lc"):
        policies.get("round_robin")


@pytest.mark.parametrize("name", ALL)
def test_every_policy_is_described(name):
    pol = policies.get(name)
    assert pol.description and pol.source and pol.group in policies.GROUPS
    assert pol.color.startswith("#") and len(pol.color) == 7
    if pol.knobs is not None:
        cfg = make_config()
        assert pol.section in cfg  # its knob section is part of the config schema
        for f in dataclasses.fields(pol.knobs):
            assert f.metadata.get("help") and f.metadata.get("source"), f"{name}.{f.name}"
        for key, value in pol.fixed.items():
            assert getattr(policies.knobs_of(name, cfg), key) == value


def test_colours_are_distinct_and_orders_unique():
    pols = [policies.get(n) for n in ALL]
    assert len({p.color for p in pols}) == len(pols)
    assert len({p.order for p in pols}) == len(pols)


def test_every_policy_runs_conserving_requests_and_deterministically():
    cfg = make_config([*SMALL, f"schedulers=[{','.join(ALL)}]"])
    a = run(cfg, check=True)  # raises on any conservation / non-negativity violation
    b = run(cfg, threads=2)
    for name in ALL:
        sa, sb = a.states[name], b.states[name]
        for field in sa._fields:
            assert np.array_equal(getattr(sa, field), getattr(sb, field)), (name, field)
        assert sa.cnt.sum() > 0


def test_results_do_not_depend_on_the_calendar_size(monkeypatch):
    """Rings of 8 buckets (every decode laps its ring ~100 times, a prefill several
    times) give the states of the default rings, bit for bit, for every policy: each
    step takes exactly its own ends, decode ends in (time, sequence) order, prefill ends
    in (time, worker) order."""
    from otfr_vec.kernels import structs

    cfg = make_config([*SMALL, f"schedulers=[{','.join(ALL)}]", "sim.timeout_scope=e2e"])
    ref = run(cfg, check=True)
    monkeypatch.setattr(structs, "CAL_SIZE", 8)
    got = run(cfg, check=True)
    for name in ALL:
        r, g = ref.states[name], got.states[name]
        assert g.cal.size == g.pcal.size == 8 and r.cal.size > 8
        dec = r.qi[structs.Q_STATE] == structs.DEC  # linked in a bucket: links differ
        for qi in (r.qi, g.qi):
            qi[[structs.Q_NEXT, structs.Q_PREV]] *= ~dec
        for wi in (r.wi, g.wi):  # workers linked in a prefill-end bucket
            wi[[structs.W_PNEXT, structs.W_PPREV]] = 0
        for field in r._fields:
            if field not in ("cal", "pcal"):
                assert np.array_equal(getattr(r, field), getattr(g, field)), (name, field)
        assert dec.sum() == r.ctr[structs.N_DEC] > 0


@pytest.mark.parametrize("layout", [[], ["cluster.pods=1", "cluster.workers_per_pod=24"]])
def test_every_route_picks_the_same_workers_for_every_policy(layout):
    """Per-pod minima, tournament trees and full scans: the same choices, bit for bit,
    on the study's pod layout and on one large pod."""
    cfg = make_config([*SMALL, *layout, f"schedulers=[{','.join(ALL)}]", "health.noise=0.2"])
    runs = {route: run(cfg, route=route) for route in ("pods", "tree", "scan")}
    assert {p.tree for p in runs["tree"].params.values()} == {1}
    assert {p.tree for p in runs["pods"].params.values()} == {0}
    for name in ALL:
        ref = runs["pods"].states[name]
        for route in ("tree", "scan"):
            got = runs[route].states[name]
            for field in ref._fields:
                if not field.startswith("g_"):  # the routing caches themselves differ
                    assert np.array_equal(getattr(ref, field), getattr(got, field)), (
                        name,
                        route,
                        field,
                    )


def test_auto_route_takes_trees_and_pods_keeps_per_pod_minima():
    from otfr_vec.engine import use_tree

    assert use_tree("auto") and use_tree("tree")
    assert not use_tree("pods") and not use_tree("scan")
    cfg = make_config(SMALL)  # and the run follows it
    assert run(cfg).params["lc"].tree == 1 and run(cfg, route="pods").params["lc"].tree == 0


def test_policies_share_the_workload_and_the_scenario():
    """Common random numbers: every policy sees the same arrivals and degradation."""
    ds = simulate(make_config([*SMALL, f"schedulers=[{','.join(ALL)}]"]))
    assert len(set(ds.arrived.values.tolist())) == 1
    assert isinstance(ds, xr.Dataset) and list(ds.scheduler.values) == list(ALL)


def test_knobs_out_of_range_are_refused_naming_the_key():
    with pytest.raises(ConfigError) as err:
        make_config(
            [
                "envoy_od.max_ejection_percent=150",
                "prequal.probes_per_query=4",
                "breaker.failure_threshold=0",
                "p2c_peak_ewma.decay_time=0",
            ]
        )
    msg = str(err.value)
    for key in (
        "envoy_od.max_ejection_percent=150",
        "prequal.probes_per_query=4",
        "breaker.failure_threshold=0",
        "p2c_peak_ewma.decay_time=0",
    ):
        assert key in msg, msg


def test_knob_indices_cover_every_field_once():
    """The Python knobs and the kernel's knob vector are one mapping, field by field."""
    for section, cls in policies.knob_sections().items():
        module = importlib.import_module(f"otfr_vec.policies.{cls.__module__.rsplit('.', 1)[1]}")
        index = module.INDEX
        assert sorted(index.values()) == sorted(f.name for f in dataclasses.fields(cls)), section
        kernel = importlib.import_module(module.K.__name__)
        assert sorted(index) == list(range(kernel.N_KNOBS)), section


def test_a_policy_registered_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        policies.register(Policy("lc", "x", "x", "#000000", 99, "study"))


def test_compositions_name_the_mechanism_they_extend():
    for name in policies.names("composition"):
        base = policies.get(name).base
        assert base in policies.names("production"), name
        assert policies.get(name).section == policies.get(base).section  # the same knobs


def test_every_policy_appears_in_the_baselines_report(tmp_path):
    """A tiny baselines sweep of every registered policy: each one is in the report's
    baselines tables, the compositions against their mechanisms too."""
    from otfr_vec.report import build_report
    from otfr_vec.sweep import run_sweep

    cfg = make_config(
        [
            *SMALL[:7],
            "+grid=baselines",
            "sweep.axes.degradation.r=[0.1,0.01]",
            "sweep.seeds=2",
            f"store={tmp_path / 'baselines.zarr'}",
            "dask=serial",
        ],
        config_name="sweep",
    )
    path = run_sweep(cfg, quiet=True)
    report, _ = build_report([path], tmp_path / "report", say=lambda m: None)
    text = report.read_text()
    section = text.split("## B:", 1)[1].split("\n## ", 1)[0]
    for name in ALL:
        assert f"`{name}`" in section, name
    for name in policies.names("composition"):
        assert f"| `{name}` | `{policies.get(name).base}` |" in section
