"""Trace replay: parsing both formats, windowing, scaling, looping, errors, a packaged run."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from conftest import small

from otfr_vec import ConfigError, make_config, simulate
from otfr_vec.inputs import check_inputs
from otfr_vec.scenario.trace import (
    TraceWorkload,
    _load_cached,
    load_trace,
    packaged_traces,
    resolve_trace,
    trace_window,
)
from otfr_vec.scenario.workload import BLOCK_S, Requests

AZURE = """TIMESTAMP,ContextTokens,GeneratedTokens\r
2023-11-16 18:17:03.9799600,4808,10\r
2023-11-16 18:17:04.0319600,3180,8\r
2023-11-16 18:17:04.0319600,0,0\r
2023-11-16 18:17:06.5000000,120,300\r
"""
MOONCAKE = [
    {"timestamp": 1000, "input_length": 6758, "output_length": 500, "hash_ids": [0, 1]},
    {"timestamp": 1000, "input_length": 7322, "output_length": 490, "hash_ids": [0, 2]},
    {"timestamp": 4000, "input_length": 512, "output_length": 3, "hash_ids": [3]},
]


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, newline="")
    return str(path)


def _jsonl(rows):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


@pytest.fixture
def azure(tmp_path):
    return _write(tmp_path, "azure.csv", AZURE)


@pytest.fixture
def mooncake(tmp_path):
    return _write(tmp_path, "mc.jsonl", _jsonl(MOONCAKE))


def cfg_for(path, *overrides):
    return small("workload.kind=trace", f"workload.trace={path}", *overrides)


def check(path, *overrides):
    """The input check every entry point runs: it reads the trace (validation does not)."""
    return check_inputs(cfg_for(path, *overrides))


def replay(cfg, n_blocks=None):
    """Every arrival of the run (or of ``n_blocks`` blocks) from a TraceWorkload."""
    wl = TraceWorkload(cfg, n_prefill=16)
    n = n_blocks or int(np.ceil(cfg.sim.duration / BLOCK_S))
    return wl, Requests.concat([wl.block(b) for b in range(n)])


def test_azure_rows_parsed(azure):
    tr = load_trace(resolve_trace(azure))
    np.testing.assert_allclose(tr.arrival, [0.0, 0.052, 0.052, 2.52004])
    np.testing.assert_array_equal(tr.prompt, [4808, 3180, 1, 120])  # 0 tokens -> 1
    np.testing.assert_array_equal(tr.output, [10, 8, 1, 300])


def test_mooncake_rows_parsed_ms_to_s_from_first(mooncake):
    tr = load_trace(resolve_trace(mooncake))
    np.testing.assert_array_equal(tr.arrival, [0.0, 0.0, 3.0])
    np.testing.assert_array_equal(tr.prompt, [6758, 7322, 512])
    np.testing.assert_array_equal(tr.output, [500, 490, 3])


def test_format_detected_from_content_and_given(tmp_path, mooncake):
    odd = _write(tmp_path, "trace.txt", _jsonl(MOONCAKE))
    assert load_trace(resolve_trace(odd)).arrival.size == 3
    with pytest.raises(ConfigError, match="missing column"):
        check(mooncake, "workload.trace_format=azure")


def test_packaged_traces_by_name_and_their_real_statistics():
    assert {"azure_code", "azure_conv", "mooncake_conversation"} <= set(packaged_traces())
    tr = load_trace(resolve_trace("azure_code"))
    gaps = np.diff(tr.arrival)
    assert tr.arrival.size == 8819 and 13 < gaps.std() / gaps.mean() < 13.3  # bursty
    assert resolve_trace("azure_code.csv") == resolve_trace("azure_code")


def test_relative_path_resolves_from_cwd_before_names(tmp_path, monkeypatch):
    (tmp_path / "azure_code").write_text(_jsonl(MOONCAKE))
    monkeypatch.chdir(tmp_path)
    assert resolve_trace("azure_code") == tmp_path / "azure_code"


@pytest.mark.parametrize("name", ["azure_code", "azure_conv", "mooncake_conversation"])
def test_packaged_trace_loads_fast(name):
    path = resolve_trace(name)
    _load_cached.cache_clear()
    t0 = time.perf_counter()
    tr = load_trace(path)
    assert time.perf_counter() - t0 < 1.0 and tr.arrival.size > 8000


def test_window_counts_and_tokens_equal_the_trace(azure):
    cfg = cfg_for(
        azure, "workload.trace_start=0.05", "workload.trace_end=2.6", "workload.trace_loop=false"
    )
    _, req = replay(cfg)
    tr = load_trace(resolve_trace(azure))
    inside = (tr.arrival >= 0.05) & (tr.arrival < 2.6)
    assert len(req) == inside.sum() == 3
    assert (
        req.prompt.sum() == tr.prompt[inside].sum() and req.output.sum() == tr.output[inside].sum()
    )
    np.testing.assert_allclose(req.arrival, tr.arrival[inside] - 0.05)


def test_default_end_is_last_arrival_plus_mean_gap(azure):
    w = trace_window(cfg_for(azure).workload)
    assert w.period == pytest.approx(2.52004 * 4 / 3)
    assert w.arrival.size == 4


def test_speedup_keeps_order_and_count():
    base = make_config(["workload.kind=trace", "workload.trace=azure_conv"]).workload
    fast = make_config(
        ["workload.kind=trace", "workload.trace=azure_conv", "workload.trace_speedup=7"]
    ).workload
    a, b = trace_window(base), trace_window(fast)
    np.testing.assert_array_equal(a.prompt, b.prompt)
    np.testing.assert_allclose(b.arrival, a.arrival / 7)
    assert np.all(np.diff(b.arrival) >= 0) and b.period == pytest.approx(a.period / 7)


def test_trace_rate_sets_the_mean_rate_exactly():
    cfg = small("workload.kind=trace", "workload.trace=azure_code", "workload.trace_rate=150")
    wl, req = replay(cfg, n_blocks=int(np.ceil(3 * 8819 / 150 / BLOCK_S)))
    assert wl.rate == pytest.approx(150)
    period = wl.window.period
    assert np.sum(req.arrival < 3 * period) == 3 * 8819  # three whole loops
    assert np.all(np.diff(req.arrival) >= 0)
    # each loop replays the trace in its order: prompts repeat with the period
    first = req.prompt[:8819]
    np.testing.assert_array_equal(req.prompt[8819 : 2 * 8819], first)
    np.testing.assert_array_equal(first, load_trace(resolve_trace("azure_code")).prompt)


def test_loop_versus_stop(azure):
    wl, looped = replay(cfg_for(azure, "sim.duration=30"))
    _, once = replay(cfg_for(azure, "sim.duration=30", "workload.trace_loop=false"))
    period, arr = wl.window.period, wl.window.arrival
    assert len(once) == 4 and once.arrival.max() < period
    copies = [k * period + arr for k in range(int(30 // period) + 1)]
    expected = np.concatenate(copies)
    expected = expected[expected < 30]
    np.testing.assert_allclose(looped.arrival, expected)
    np.testing.assert_array_equal(
        looped.prompt, np.tile(wl.window.prompt, len(copies))[: len(expected)]
    )


def test_blocks_partition_the_arrivals_and_seed_only_ingress(azure):
    cfg = cfg_for(azure, "workload.trace_speedup=0.5", "sim.seed=3")
    wl, req = replay(cfg)
    for b in range(3):
        r = wl.block(b)
        assert np.all((r.arrival >= b * BLOCK_S) & (r.arrival < (b + 1) * BLOCK_S))
    again = replay(cfg)[1]
    for x, y in zip(req, again, strict=True):
        np.testing.assert_array_equal(x, y)
    other = replay(cfg_for(azure, "workload.trace_speedup=0.5", "sim.seed=4"))[1]
    np.testing.assert_array_equal(other.arrival, req.arrival)
    assert not np.array_equal(other.tie_prefill, req.tie_prefill)


@pytest.mark.parametrize(
    "text, where",
    [
        (AZURE.replace("4808", "48x8"), "line 2: ContextTokens is missing or not a number"),
        (AZURE.replace("2023-11-16 18:17:04.03", "yesterday", 1), "line 3: TIMESTAMP"),
        (AZURE.replace(",8\r", ",8,9\r"), "line 3"),  # a field too many
        (AZURE.replace(",0,0", ",0"), "line 4: GeneratedTokens is missing"),
        (AZURE.replace(",120,", ",-120,"), "line 5: ContextTokens is negative"),
        (AZURE.replace(",120,", ",12.5,"), "line 5: ContextTokens is not a whole number"),
        (AZURE.replace("06.5", "01.5"), "line 5: TIMESTAMP is earlier than on the row before"),
        (AZURE.replace("GeneratedTokens", "Generated"), "line 1: missing column(s) Generated"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "holds no request"),
        ("", "not a readable CSV"),
    ],
)
def test_bad_azure_file_names_file_and_line(tmp_path, text, where):
    path = _write(tmp_path, "bad.csv", text)
    with pytest.raises(ConfigError) as err:
        check(path)
    assert path in str(err.value) and where in str(err.value)


@pytest.mark.parametrize(
    "rows, where",
    [
        ([*MOONCAKE[:2], "{oops", MOONCAKE[2]], "line 3: not a JSON object"),
        ([MOONCAKE[0], "[1, 2]"], "line 2: not a JSON object"),
        ([MOONCAKE[0], {"timestamp": 5, "output_length": 1}], "line 2: input_length is missing"),
        ([MOONCAKE[0], {**MOONCAKE[1], "output_length": -1}], "line 2: output_length is negative"),
        ([MOONCAKE[0], {**MOONCAKE[1], "timestamp": 10}], "line 2: timestamp is earlier"),
        ([MOONCAKE[0], {**MOONCAKE[1], "input_length": True}], "line 2: input_length"),
    ],
)
def test_bad_mooncake_file_names_file_and_line(tmp_path, rows, where):
    path = _write(tmp_path, "bad.jsonl", _jsonl(rows))
    with pytest.raises(ConfigError) as err:
        check(path)
    assert path in str(err.value) and where in str(err.value)


def test_blank_lines_keep_line_numbers(tmp_path):
    rows = [MOONCAKE[0], "", {**MOONCAKE[1], "input_length": -5}]
    path = _write(tmp_path, "gap.jsonl", _jsonl(rows))
    with pytest.raises(ConfigError, match="line 3: input_length is negative"):
        check(path)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["workload.trace_start=100"], "no arrival in the window"),
        (["workload.trace_start=0.1", "workload.trace_end=0.2"], "no arrival in the window"),
        (["workload.trace_rate=5", "workload.trace_speedup=2"], "give one way to scale the trace"),
        (["workload.trace=no_such_trace"], "no such file .* packaged: azure_code"),
    ],
)
def test_bad_window_or_scaling_rejected_before_simulating(azure, overrides, match):
    with pytest.raises(ConfigError, match=match):
        simulate(cfg_for(azure, *overrides))


def test_simulate_a_packaged_trace_on_a_tiny_cluster():
    cfg = small(
        "workload.kind=trace",
        "workload.trace=azure_conv",
        "workload.trace_rate=40",
        "schedulers=[lc,fault_aware_otfr]",
    )
    ds = simulate(cfg, check=True)
    arrived = ds.arrived.sel(scheduler="lc").item()
    wl, req = replay(cfg)
    window = (req.arrival >= cfg.sim.warmup) & (req.arrival < cfg.sim.duration - cfg.sim.timeout)
    assert arrived == window.sum() > 0
    assert ds.attrs["otfr_vec:rate"] == pytest.approx(40)
    assert 0 <= ds.failure_rate.sel(scheduler="lc").item() <= 1


def test_trace_load_follows_cluster_and_trace_mean_prompt():
    from otfr_vec.scenario.trace import TraceWorkload

    for pods in (2, 4):
        cfg = small(
            "workload.kind=trace",
            "workload.trace=azure_code",
            "workload.trace_load=0.7",
            f"cluster.pods={pods}",
        )
        w = TraceWorkload(cfg, n_prefill=pods * 4)
        offered = w.rate * w.mean_prompt() / (pods * 4 * cfg.service.prefill_tokens_per_s)
        assert offered == pytest.approx(0.7, rel=1e-9)
