"""Sweeps share a scheduler's run between cells that differ only in keys it does not
read (``sweep.reuse``), and the one-at-a-time design runs only the points it names."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from conftest import TINY, small

from otfr_vec import engine, make_config, policies
from otfr_vec.report.stores import open_store
from otfr_vec.sweep import chunks, count_runs, families, plan, run_sweep

# each changes keys some policies do not read (the base: telemetry none, labels on)
VARIANTS = {
    "labels": ["health.delay=5", "health.miss=0", "health.noise=0.2", "health.refresh=2"],
    "granularity": ["health.granularity=worker"],
    "threshold": ["health.threshold=0.95"],
    "price": ["price.alpha=0.5", "price.beta=0.5", "price.gamma=2", "price.eta=0.5"]
    + ["price.halflife=2", "price.kappa=0.1"],
    "telemetry": ["telemetry.mode=delayed", "telemetry.delay=3"],
    "weights": ["weights.lambda_f=10", "weights.lambda_r=1", "weights.lambda_p=0.5"],
    "knobs": ["breaker.failure_threshold=2", "epp.queue_weight=1", "p2c_lc.choices=3"],
}
# who must share a run with the base under each variant (at least these; for "labels"
# exactly these: every policy but the two that read labels)
SHARED = {
    "labels": set(policies.names()) - {"fault_aware_lc", "fault_aware_otfr"},
    "granularity": {"lc", "otfr", "oracle", "breaker"},
    "threshold": {"lc", "otfr", "breaker"},  # the labels are made with it
    "price": {"lc", "fault_aware_lc", "breaker", "envoy_od"},
    "telemetry": {"lc", "fault_aware_lc", "oracle", "breaker"},
    "weights": {"breaker", "envoy_od", "prequal"},
    "knobs": {"lc", "otfr", "oracle", "prequal"},
}


def _cfg(*extra):
    return small("schedulers=${policies:all}", "sim.duration=40", "health.delay=10", *extra)


def _same_state(a, b) -> bool:
    return all(
        np.array_equal(x, y, equal_nan=x.dtype.kind == "f") for x, y in zip(a, b, strict=True)
    )


@pytest.fixture(scope="module")
def base():
    cfg = _cfg()
    return cfg, engine.run(cfg).states


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_equal_run_inputs_give_bit_identical_states(base, variant):
    cfg_a, states_a = base
    cfg_b = _cfg(*VARIANTS[variant])
    states_b = engine.run(cfg_b).states
    shared = set()
    for s in policies.names():
        if engine.run_inputs(cfg_a, s) == engine.run_inputs(cfg_b, s):
            shared.add(s)
            assert _same_state(states_a[s], states_b[s]), f"{s} reads {variant}"
    assert SHARED[variant] <= shared
    if variant == "labels":
        assert shared == SHARED[variant]
        for s in ("fault_aware_lc", "fault_aware_otfr"):  # the variant does reach them
            assert not _same_state(states_a[s], states_b[s])


def test_run_inputs_tell_apart_what_a_policy_reads(base):
    cfg, _ = base
    for s, change in [
        ("fault_aware_lc", "health.noise=0.1"),
        ("oracle", "health.threshold=0.9"),
        ("otfr", "price.gamma=2"),
        ("wrr_orca", "price.halflife=2"),  # it reads the utilisation the price keeps
        ("otfr", "telemetry.mode=direct"),
        ("breaker", "breaker.failure_threshold=2"),
        ("lc", "weights.lambda_p=0.5"),
        ("lc", "degradation.r=0.05"),
        ("lc", "sim.seed=3"),
    ]:
        assert engine.run_inputs(cfg, s) != engine.run_inputs(_cfg(change), s), (s, change)


AXES = [
    "+sweep.axes.health.noise=[0,0.2]",
    "+sweep.axes.telemetry.mode=[none,direct]",
    "+sweep.axes.price.gamma=[1,3]",
    "+sweep.axes.breaker.failure_threshold=[10,2]",
]


def _sweep(path, *extra):
    args = ["+grid=severity", "schedulers=${policies:all}", "sweep.seeds=2", *TINY, *AXES]
    args.append("sweep.axes.degradation.r=[0.05]")
    return make_config([*args, f"store={path}", *extra], config_name="sweep")


def test_a_sweep_with_shared_runs_equals_one_without(tmp_path):
    cfg = _sweep(tmp_path / "on.zarr", "dask.n_workers=2", "dask.dashboard=null")
    p = plan(cfg)
    n_cells = len(p.cells)
    assert n_cells == 2**4 * 2
    n_all = n_cells * len(policies.names())
    assert count_runs(p.cells, p.runs) < n_all / 3  # the production ones run once a seed
    from otfr_vec.cluster import connect

    with connect(cfg.dask) as client:
        on = xr.open_zarr(run_sweep(cfg, client, quiet=True)).load()
    off_cfg = _sweep(tmp_path / "off.zarr", "dask=serial", "sweep.reuse=false")
    assert plan(off_cfg).runs is None
    off = xr.open_zarr(run_sweep(off_cfg, quiet=True)).load()
    xr.testing.assert_equal(on, off)


def test_a_resumed_sweep_reruns_the_shared_runs_its_cells_need(tmp_path):
    import zarr

    path = tmp_path / "r.zarr"
    ref = xr.open_zarr(run_sweep(_sweep(path, "dask=serial"), quiet=True)).load()
    done = zarr.open_group(str(path), mode="r+")["done"]
    mask = done[...]
    assert mask.shape == (1, 2, 2, 2, 2, 2)  # r, noise, mode, gamma, threshold, seed
    mask[:, 1, ..., 0] = False  # noise 0.2, seed 0: lc's run there was made at noise 0
    done[...] = mask
    p = plan(_sweep(path, "dask=serial"))
    todo = [c for c in p.cells if not mask[c[0]]]
    assert len(todo) == 8 and count_runs(todo, p.runs) < 8 * len(policies.names())
    again = xr.open_zarr(run_sweep(_sweep(path, "dask=serial"), quiet=True)).load()
    xr.testing.assert_equal(again, ref)


def test_families_link_cells_transitively_and_chunks_keep_threads_busy():
    todo = [((i,), {}) for i in range(6)]
    runs = {(0,): ("a", "x"), (1,): ("a", "y"), (2,): ("b", "y"), (3,): ("c", "z")}
    runs |= {(4,): ("d", "w"), (5,): ("c", "v")}
    fams = families(todo, runs)
    assert [[at for at, _ in f] for f in fams] == [[(0,), (1,), (2,)], [(3,), (5,)], [(4,)]]
    assert families(todo, None) == [[c] for c in todo]
    assert count_runs(todo, runs) == 9 and count_runs([((0,), {"schedulers": [1, 2]})], None) == 2
    big = [[((i, j), {}) for j in range(18)] for i in range(5)]
    cut = chunks(big, threads=2, batch=None)
    assert len(cut) == 10 and all(len(c) == 9 for c in cut)  # 2 per family, not 1
    assert len(chunks(big, threads=1, batch=None)) == 5
    assert [len(c) for c in chunks(big[:1], threads=2, batch=4)] == [4, 4, 4, 4, 2]


def _oat(path, *extra):
    args = ["+grid=sensitivity", *TINY, "sweep.seeds=2", f"store={path}"]
    args += ["sweep.axes.weights.lambda_r=[1,3]", "sweep.axes.price.gamma=[0.1,1,3]"]
    return make_config([*args, *extra], config_name="sweep")


def test_one_at_a_time_runs_the_centre_and_each_axis_alone(tmp_path):
    cfg = _oat(tmp_path / "s.zarr", "dask=serial")
    p = plan(cfg)
    axes = list(p.axes)
    assert axes == ["weights.lambda_r", "price.gamma", "price.halflife", "network.bw0"]
    points = sorted({at[:-1] for at, _ in p.cells})
    assert len(points) == 1 + 1 + 2 + 2 + 2  # centre (3, 1, 5, 12.5e9) and each axis alone
    centre = (1, 1, 1, 1)
    assert all(sum(a != b for a, b in zip(pt, centre, strict=True)) <= 1 for pt in points)
    assert p.identity["sweep.design"] == "one_at_a_time"
    ds = xr.open_zarr(run_sweep(cfg, quiet=True))
    assert int(ds.planned.sum()) == 8 and int(ds.done.sum()) == 16
    assert bool((ds.done == ds.planned).all())  # the other points stay empty
    store = open_store(str(tmp_path / "s.zarr"))
    assert store.cells == store.finished == 16 and store.unfinished == []
    # a resume finds every planned cell done; a full-grid plan is another sweep
    assert run_sweep(cfg, quiet=True)
    with pytest.raises(Exception, match="sweep.design"):
        run_sweep(_oat(tmp_path / "s.zarr", "dask=serial", "sweep.design=grid"), quiet=True)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["sweep.axes.price.gamma=[0.1,3]"], "lacks price.gamma's base value 1.0"),
        (["sweep.design=corners"], "sweep.design='corners': allowed values are grid"),
    ],
)
def test_a_design_that_cannot_run_fails_before_any_work(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        plan(_oat(tmp_path / "s.zarr", *extra))
    assert list(tmp_path.iterdir()) == []
