"""Bad input refused before anything runs, with one bounded message naming the key or file.

Each case here was accepted, ran to NaN, or ended in a traceback before these checks
(issue 13): an empty measured window, a missing or directory trace path, a CSV row with
a field too many, a 1 GiB junk trace (echoed whole into the message), a token count of
1e308, and sizes whose memory no machine has.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import small

from otfr_vec import ConfigError, make_config, simulate
from otfr_vec.errors import QUOTE_LIMIT
from otfr_vec.inputs import check_inputs

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
ROW = "2023-11-16 18:17:03.9799600,4808,10\n"


def trace_cfg(path, *overrides):
    return small("workload.kind=trace", f"workload.trace={path}", *overrides)


def refused(cfg) -> str:
    with pytest.raises(ConfigError) as err:
        check_inputs(cfg)
    return str(err.value)


@pytest.mark.parametrize(
    "overrides",
    [
        ["sim.timeout=1000"],
        ["sim.duration=120", "sim.warmup=119.9"],
        ["sim.duration=60", "sim.warmup=57", "sim.timeout=3"],  # [57, 57): empty too
    ],
)
def test_empty_measured_window_refused(overrides):
    with pytest.raises(ConfigError) as err:
        make_config(overrides)
    msg = str(err.value)
    assert "measured window" in msg and "is empty" in msg
    for key in ("sim.warmup", "sim.timeout", "sim.duration"):
        assert key in msg


def test_shortest_measured_window_accepted():
    make_config(["sim.duration=60", "sim.warmup=56.9", "sim.timeout=3"])


def test_validation_reads_no_file_the_input_check_does(tmp_path):
    missing = tmp_path / "nowhere" / "trace.csv"
    cfg = trace_cfg(missing)  # composing and validating never opens the trace
    assert "no such file" in refused(cfg) and str(missing.name) in refused(cfg)
    with pytest.raises(ConfigError, match="no such file"):
        simulate(cfg)


def test_config_layer_imports_nothing_from_the_scenario_layer():
    """The loop config/validate -> scenario/trace -> config/validate is gone: errors live in
    otfr_vec/errors.py, the lowest layer, and validation does no file IO."""
    root = Path(__file__).resolve().parents[1] / "otfr_vec"
    for path in (root / "config").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = "." * node.level + (node.module or "")
                assert "scenario" not in mod and "inputs" not in mod, (path.name, mod)
    errors = ast.parse((root / "errors.py").read_text())
    assert not [n for n in ast.walk(errors) if isinstance(n, ast.ImportFrom) and n.level]


def test_missing_trace_path_is_one_message(tmp_path):
    msg = refused(trace_cfg("/nonexistent/dir/x.csv"))
    assert "workload.trace='/nonexistent/dir/x.csv': no such file" in msg


def test_directory_trace_path_is_one_message(tmp_path):
    (tmp_path / "adir").mkdir()
    msg = refused(trace_cfg(tmp_path / "adir"))
    assert "is a directory, not a trace" in msg


@pytest.mark.parametrize(
    "text, where",
    [
        (HEADER + ROW.replace(",10\n", ",10,7\n") + ROW, "line 2: more fields than the 3"),
        (
            HEADER + ROW + ROW.replace(",10\n", ",10,7,8\n"),
            "line 3: 5 fields, but the header has 3",
        ),
    ],
)
def test_csv_row_with_extra_fields_named_by_line(tmp_path, text, where):
    path = tmp_path / "extra.csv"
    path.write_text(text)
    msg = refused(trace_cfg(path))
    assert str(path) in msg and where in msg


@pytest.mark.parametrize("start", [b"x" * 4096, b'{"timestamp": 1, ' + b"7" * 4096])
def test_one_gib_junk_trace_refused_quickly_with_a_bounded_message(tmp_path, start):
    path = tmp_path / "junk.csv"
    with open(path, "wb") as fh:  # 1 GiB without a line break; sparse, so cheap to make
        fh.write(start)
        fh.truncate(1 << 30)
    t0 = time.perf_counter()
    msg = refused(trace_cfg(path))
    assert time.perf_counter() - t0 < 5  # from its head alone, never read whole
    assert "no line break in the first 1 MiB" in msg
    assert len(msg) < len(str(path)) + 6 * QUOTE_LIMIT


def test_long_junk_header_is_quoted_bounded(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("a," * 100_000 + "\n" + "1," * 100_000 + "\n")
    msg = refused(trace_cfg(path))
    assert "missing column(s) TIMESTAMP" in msg and "more characters" in msg
    assert len(msg) < 3 * QUOTE_LIMIT + len(str(path)) + 200


@pytest.mark.parametrize("field", ["input_length", "output_length"])
def test_huge_token_count_in_a_trace_refused(tmp_path, field):
    rows = [
        {"timestamp": 0, "input_length": 100, "output_length": 5},
        {"timestamp": 10, "input_length": 100, "output_length": 5, field: 1e308},
    ]
    path = tmp_path / "huge.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    msg = refused(trace_cfg(path))
    assert f"line 2: {field} is above 10,000,000" in msg and "context window" in msg


@pytest.mark.parametrize(
    "override", ["workload.prompt_mean=1e308", "workload.output_max=2e7", "workload.prompt_max=1e9"]
)
def test_huge_synthetic_token_counts_refused(override):
    with pytest.raises(ConfigError, match=r"10000000\] \(at most 10 M tokens"):
        make_config([override])


@pytest.mark.parametrize("rate", ["1e9", "1e7"])
def test_absurd_rate_refused_before_allocating(rate):
    cfg = make_config([f"workload.rate={rate}"])
    t0 = time.perf_counter()
    msg = refused(cfg)
    assert time.perf_counter() - t0 < 2
    assert f"workload.rate={float(rate)!r}" in msg and "sim.memory_limit" in msg
    assert "GiB of memory, above the ceiling" in msg


def test_memory_ceiling_is_a_key():
    refused_msg = refused(small("sim.memory_limit=0.01"))  # 10 MiB: below any run
    assert "sim.memory_limit=0.01 GiB" in refused_msg
    check_inputs(small("sim.memory_limit=64"))
    with pytest.raises(ConfigError, match="sim.memory_limit=-1"):
        small("sim.memory_limit=-1")


def test_cli_trace_error_is_one_paragraph_and_writes_nothing(tmp_path):
    (tmp_path / "adir").mkdir()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "otfr_vec.run",
            "workload.kind=trace",
            "workload.trace=/nonexistent/x.csv",
            f"out={tmp_path / 'o.zarr'}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: invalid input") and "Traceback" not in p.stderr
    assert "no such file" in p.stderr and len(p.stderr.splitlines()) <= 3
    assert sorted(x.name for x in tmp_path.iterdir()) == ["adir"]
