"""What a run prints about its numbers: the scale sentence and the warnings (issue 12)."""

from __future__ import annotations

import pytest
from conftest import small

from otfr_vec import simulate
from otfr_vec.explain import notes
from otfr_vec.run import main_cfg


def texts(cfg):
    ds = simulate(cfg)
    return ds, [str(n) for n in notes(ds, cfg)]


def test_scale_sentence_gives_rho_net_and_the_degraded_link_load():
    cfg = small("schedulers=[lc]")
    ds, out = texts(cfg)
    rho = ds.attrs["otfr_vec:rho_net"]
    assert out[0].startswith(f"note: rho_net = {rho:.3g} ")
    assert f"rho_net / r = {rho / 0.1:.3g}x what it can carry" in out[0]
    assert "time out" in out[0]


def test_a_link_that_keeps_up_is_said_to():
    _, out = texts(small("schedulers=[lc]", "network.bw0=50e9"))
    assert "of what it can carry: it keeps up" in out[0]


def test_prefill_only_has_no_network_load():
    _, out = texts(small("schedulers=[lc]", "cluster.prefill_fraction=1"))
    assert out[0] == (
        "note: rho_net = 0: no KV cache crosses the network (cluster.prefill_fraction=1 "
        "(prefill only))."
    )


def test_missed_labels_tie_is_explained():
    """health.miss=1: no episode is labelled, so fault_aware_lc routes exactly as lc."""
    ds, out = texts(small("health.miss=1", "schedulers=[lc,fault_aware_lc,otfr]"))
    assert ds.failure_rate.sel(scheduler="lc") == ds.failure_rate.sel(scheduler="fault_aware_lc")
    (tie,) = [t for t in out if "identical results" in t]
    assert tie.startswith("warning: identical results for lc = fault_aware_lc: they made")
    assert "health.miss = 1" in tie and "sweep.seeds" in tie and "otfr" not in tie.split(":")[1]


def test_no_tie_warning_when_labels_are_seen():
    _, out = texts(small("health.miss=0", "schedulers=[lc,fault_aware_lc]"))
    assert not [t for t in out if "identical" in t]


@pytest.mark.parametrize(
    "overrides, fix",
    [
        (["workload.load=0.01"], "raise workload.load or workload.rate"),
        (
            ["workload.kind=trace", "workload.trace=azure_code"],  # unscaled: ~2.6 req/s
            "scale the trace with workload.trace_load",
        ),
    ],
)
def test_near_zero_load_warned(overrides, fix):
    _, out = texts(small("schedulers=[lc]", *overrides))
    (warn,) = [t for t in out if "near zero" in t]
    assert warn.startswith("warning: the offered load is near zero") and fix in warn


def test_default_load_not_warned():
    _, out = texts(small("schedulers=[lc]"))
    assert not [t for t in out if "near zero" in t or "only" in t]


def test_onset_before_a_measured_window_warned():
    _, out = texts(small("schedulers=[lc]", "degradation.onset=5.5"))
    assert any("no pre-onset baseline" in t for t in out)


def test_run_prints_the_notes_after_its_table(capsys):
    assert main_cfg(small("health.miss=1", "schedulers=[lc,fault_aware_lc]")) == 0
    out = capsys.readouterr().out
    table_end = out.index("fault_aware_lc ")
    assert table_end < out.index("note: rho_net = ") < out.index("warning: identical results")


def test_a_degradation_after_the_run_is_warned_and_explains_the_tie():
    """Onset past sim.duration: no link degrades, every scheduler ties; the tie is not
    blamed on missed labels (health.miss=0: every episode would have been labelled)."""
    ds, out = texts(
        small("degradation.onset=70", "health.miss=0", "schedulers=[lc,fault_aware_lc]")
    )
    assert float(ds.bandwidth_factor.min()) == 1.0
    (warn,) = [t for t in out if "no measured request meets a degraded link" in t]
    assert "degradation.onset=70 s is not before sim.duration=" in warn
    (tie,) = [t for t in out if "identical results" in t]
    assert "see the warning above" in tie and "health.miss" not in tie


def test_a_degradation_over_before_the_warmup_is_warned():
    ds, out = texts(small("schedulers=[lc]", "degradation.onset=1", "degradation.duration=2"))
    assert float(ds.bandwidth_factor.min()) < 1.0
    (warn,) = [t for t in out if "no measured request meets a degraded link" in t]
    assert "over before the measured window opens" in warn


def test_a_measured_degradation_is_not_warned():
    _, out = texts(small("schedulers=[lc]"))
    assert not [t for t in out if "degraded link:" in t]
