"""Replay of real request traces: Azure LLM inference 2023 (CSV) and Mooncake FAST'25 (JSONL).

A trace gives each request's arrival time, prompt and output tokens. Replay keeps them and
their order; only the ingress pod and the tie-break draws are seeded, per workload block,
exactly as for synthetic arrivals (``workload._finish``), so a trace run is as reproducible
and block-independent as a synthetic one.

Steps, all deterministic (``workload.*`` keys):

1. ``trace``: a file path (absolute, or relative to the current directory) or the name of
   a trace shipped in ``otfr_vec/data/traces`` (``azure_code``, ``azure_conv``,
   ``mooncake_conversation``; see SOURCES.md there). A path that exists wins over a name.
2. ``trace_format``: ``azure`` (CSV ``TIMESTAMP,ContextTokens,GeneratedTokens``, ISO
   date-times), ``mooncake`` (JSONL ``timestamp`` in ms, ``input_length``,
   ``output_length``; other fields ignored) or ``auto`` (a first non-blank character
   ``{`` means mooncake). Times become seconds from the first arrival.
3. Window ``[trace_start, trace_end)`` in trace seconds, before scaling. ``trace_end``
   null means the trace's duration: its last arrival plus one mean inter-arrival gap, so
   a looped trace keeps its mean rate and the last and next-first arrivals do not
   coincide. The window's length is the loop period.
4. Scaling divides times by ``trace_speedup``, or, when ``trace_rate`` is set, by the
   factor that makes the window's mean rate exactly ``trace_rate`` (giving both is an
   error). Compressing time also compresses the trace's bursts: see the report of issue 5.
5. ``trace_loop``: repeat the window until ``sim.duration``; false: no arrivals after it.

Lengths of 0 tokens are clipped to 1 (a request is at least one token in and one out; the
Azure and Mooncake traces hold none). Prompt lengths are *not* clipped at
``workload.prompt_max``: that key shapes synthetic draws only, a trace is replayed as it is.
A malformed row, a missing column, a row with more fields than the header, a timestamp
earlier than the one before, a negative length, a length above
:data:`~otfr_vec.config.validate.MAX_TOKENS` or an empty window raise :class:`TraceError`
naming the file and the line, quoting at most :data:`~otfr_vec.errors.QUOTE_LIMIT`
characters of the file. A file that does not even start like a trace (no header line in
its first ``HEAD_BYTES``) is refused from that head alone, without reading the rest. The
check runs from :func:`otfr_vec.inputs.check_inputs`, before anything is simulated;
configuration validation itself reads no file.
"""

from __future__ import annotations

import csv
import glob
import json
import re
import warnings
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..config.validate import MAX_TOKENS, TOKEN_BOUND
from ..errors import QUOTE_LIMIT, ConfigError, clip
from . import rng
from .workload import Requests, _finish, block_length

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "traces"
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length")
MAX_LINES_SHOWN = 5  # bad lines listed in an error message
HEAD_BYTES = 1 << 20  # a trace's first line (header or first JSON object) ends within this


class TraceError(ConfigError):
    """A trace that cannot be replayed; the message names the file and, for rows, the line."""


class Trace(NamedTuple):
    """A whole trace file, read-only: arrays are shared by every run that replays it."""

    arrival: np.ndarray  # float64, s from the first arrival, non-decreasing
    prompt: np.ndarray  # float64, tokens (whole numbers >= 1)
    output: np.ndarray  # float64, tokens (whole numbers >= 1)


class Window(NamedTuple):
    """The replayed part of a trace after windowing and scaling: one loop period."""

    arrival: np.ndarray  # float64, s from the window start, in [0, period)
    prompt: np.ndarray
    output: np.ndarray
    period: float  # s


def packaged_traces() -> list[str]:
    """Names accepted as ``workload.trace`` for the traces shipped with the package."""
    return sorted(p.stem for p in DATA_DIR.glob("*") if p.suffix in (".csv", ".jsonl"))


def resolve_trace(name: str) -> Path:
    """The file of ``workload.trace``: an existing path, else a packaged trace's name."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    if path.exists():
        what = "a directory" if path.is_dir() else "not a regular file"
        raise TraceError(f"workload.trace={clip(name)!r}: {path.resolve()} is {what}, not a trace")
    if path.name == name:  # a bare name may be a packaged trace, with or without its suffix
        for cand in (DATA_DIR / name, *DATA_DIR.glob(f"{glob.escape(name)}.*")):
            if cand.is_file() and cand.suffix in (".csv", ".jsonl"):
                return cand
    raise TraceError(
        f"workload.trace={clip(name)!r}: no such file (relative paths start at {Path.cwd()}) "
        f"and no packaged trace of that name; packaged: {', '.join(packaged_traces())}"
    )


def _first_line(path: Path) -> tuple[int, bytes]:
    """(line number, text) of the first non-blank line; refuses a file whose first line
    does not end within ``HEAD_BYTES`` (junk, or a single line of gigabytes)."""
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES + 1)
    lines = head.split(b"\n")
    complete = lines[:-1] if len(head) > HEAD_BYTES else lines
    for n, raw in enumerate(complete, start=1):
        if raw.strip():
            return n, raw.rstrip(b"\r")
    if len(head) > HEAD_BYTES:
        raise TraceError(
            f"{path} line {len(lines)}: no line break in the first {HEAD_BYTES >> 20} MiB, so "
            f"this is not a trace (one request per line); it starts with "
            f"{clip(head[: 4 * QUOTE_LIMIT].decode('utf-8', 'replace'))!r}"
        )
    return 1, b""


def detect_format(path: Path) -> str:
    """``mooncake`` if the first non-blank character is ``{`` (JSON lines), else ``azure``."""
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip()
    return "mooncake" if head.startswith(b"{") else "azure"


def _bad_rows(path: Path, line: np.ndarray, checks) -> None:
    """Raise for the first check ``(mask, what)`` that any row fails, listing its lines."""
    for mask, what in checks:
        bad = line[mask]
        if bad.size:
            shown = ", ".join(str(n) for n in bad[:MAX_LINES_SHOWN])
            more = f" and {bad.size - MAX_LINES_SHOWN} more" if bad.size > MAX_LINES_SHOWN else ""
            raise TraceError(f"{path} line {bad[0]}: {what} (bad lines: {shown}{more})")


def _checked(path: Path, line, time, prompt, output, names) -> Trace:
    """Validate parsed columns (NaN = unparsable) and turn them into a :class:`Trace`."""
    t_name, p_name, o_name = names
    if time.size == 0:
        raise TraceError(f"{path}: the trace holds no request")
    checks = [(~np.isfinite(time), f"{t_name} is missing or not a time")]
    for x, name in ((prompt, p_name), (output, o_name)):
        checks.append((~np.isfinite(x), f"{name} is missing or not a number"))
        checks.append((np.isfinite(x) & (x != np.rint(x)), f"{name} is not a whole number"))
        checks.append((x < 0, f"{name} is negative"))
        checks.append((x > MAX_TOKENS, f"{name} is above {MAX_TOKENS:,} ({TOKEN_BOUND})"))
    _bad_rows(path, line, checks)
    earlier = np.concatenate(([False], np.diff(time) < 0))
    _bad_rows(path, line, [(earlier, f"{t_name} is earlier than on the row before")])
    arrays = (time - time[0], np.maximum(prompt, 1.0), np.maximum(output, 1.0))
    for a in arrays:
        a.setflags(write=False)
    return Trace(*arrays)


def _read_azure(path: Path) -> Trace:
    n_head, header = _first_line(path)
    if not header:
        raise TraceError(f"{path}: not a readable CSV: the file is empty")
    columns = [c.strip() for c in next(csv.reader([header.decode("utf-8-sig", "replace")]))]
    missing = [c for c in AZURE_COLUMNS if c not in columns]
    if missing:  # refused from the head alone: a junk file is never read whole
        raise TraceError(
            f"{path} line {n_head}: missing column(s) {', '.join(missing)}; an Azure trace has "
            f"{','.join(AZURE_COLUMNS)} (found {clip(','.join(columns))!r})"
        )
    try:  # all as text: pandas's own type guessing would hide which row is bad
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(
                path, dtype=str, keep_default_na=False, skip_blank_lines=False, index_col=False
            )
    except pd.errors.ParserWarning:  # a first row with more fields than the header
        raise TraceError(
            f"{path} line {n_head + 1}: more fields than the {len(columns)} of the header "
            f"({clip(','.join(columns))})"
        ) from None
    except pd.errors.ParserError as err:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if found:
            want, n, got = found.groups()
            raise TraceError(
                f"{path} line {n}: {got} fields, but the header has {want} "
                f"({clip(','.join(columns))})"
            ) from None
        raise TraceError(f"{path}: not a readable CSV: {clip(err)}") from None
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise TraceError(f"{path}: not a readable CSV: {clip(err)}") from None
    df = df[list(AZURE_COLUMNS)]
    df = df[(df.fillna("") != "").any(axis=1)]  # blank lines; the index keeps line numbers
    stamp = pd.to_datetime(df["TIMESTAMP"], format="ISO8601", errors="coerce")
    ns = stamp.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    time = np.where(stamp.isna().to_numpy(), np.nan, (ns - ns[:1]) / 1e9) if ns.size else ns
    prompt, output = (
        pd.to_numeric(df[c], errors="coerce").to_numpy(float) for c in AZURE_COLUMNS[1:]
    )
    line = df.index.to_numpy() + n_head + 1  # the header is line n_head
    return _checked(path, line, np.asarray(time, float), prompt, output, AZURE_COLUMNS)


def _read_mooncake(path: Path) -> Trace:
    n_first, first = _first_line(path)
    try:  # refused from the head alone: a junk file is never read whole
        obj = json.loads(first)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TraceError(f"{path} line {n_first}: not a JSON object: {clip(err)}") from None
    if not isinstance(obj, dict):
        raise TraceError(f"{path} line {n_first}: not a JSON object")
    text = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    line = np.array([i + 1 for i, s in enumerate(text) if s.strip()], dtype=np.int64)
    rows = [text[i - 1] for i in line]
    try:  # one C-level parse of the whole file; per line only to find a bad one
        objs = json.loads("[" + ",".join(rows) + "]")
    except json.JSONDecodeError:
        for n, row in zip(line, rows, strict=True):
            try:
                json.loads(row)
            except json.JSONDecodeError as err:
                raise TraceError(f"{path} line {n}: not a JSON object: {clip(err)}") from None
        raise TraceError(f"{path}: not JSON lines") from None
    not_obj = np.array([not isinstance(o, dict) for o in objs], dtype=bool)
    _bad_rows(path, line, [(not_obj, "not a JSON object")])

    def column(key):
        vals = pd.Series([None if isinstance(v, bool) else v for v in (o.get(key) for o in objs)])
        return pd.to_numeric(vals, errors="coerce").to_numpy(dtype=float, na_value=np.nan)

    time, prompt, output = (column(k) for k in MOONCAKE_FIELDS)
    return _checked(path, line, time / 1e3, prompt, output, MOONCAKE_FIELDS)


@lru_cache(maxsize=8)
def _load_cached(path: str, fmt: str, mtime_ns: int, size: int) -> Trace:
    return (_read_mooncake if fmt == "mooncake" else _read_azure)(Path(path))


def load_trace(path: Path, fmt: str = "auto") -> Trace:
    """Read a trace file (cached while the file is unchanged: sweeps replay it many times)."""
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    st = path.stat()
    return _load_cached(str(path), fmt, st.st_mtime_ns, st.st_size)


def trace_window(wl, rate: float | None = None) -> Window:
    """The replayed period of ``workload`` config ``wl``: window, then time scaling.

    ``rate`` (req/s) overrides ``wl.trace_rate``: :class:`TraceWorkload` turns
    ``trace_load`` into a rate once it knows the cluster.
    """
    rate = wl.trace_rate if rate is None else rate
    path = resolve_trace(wl.trace)
    tr = load_trace(path, wl.trace_format)
    t, n_all = tr.arrival, tr.arrival.size
    end = wl.trace_end
    if end is None:
        end = t[-1] * n_all / (n_all - 1) if n_all > 1 else 0.0
    start = float(wl.trace_start)
    lo, hi = np.searchsorted(t, [start, end], side="left")
    if hi <= lo or end <= start:
        raise TraceError(
            f"{path}: no arrival in the window workload.trace_start={start!r} s to "
            f"workload.trace_end={wl.trace_end!r} s (the trace's arrivals span 0 to "
            f"{t[-1]:.6g} s; a one-instant trace needs trace_end)"
        )
    period = float(end - start)
    speedup = rate * period / (hi - lo) if rate is not None else wl.trace_speedup
    arrival = (t[lo:hi] - start) / speedup
    return Window(arrival, tr.prompt[lo:hi], tr.output[lo:hi], period / speedup)


def trace_errors(wl) -> list[str]:
    """Problems of a ``kind=trace`` workload, for :func:`otfr_vec.config.validate`."""
    try:
        trace_window(wl)
    except TraceError as err:
        return [str(err)]
    return []


class TraceWorkload:
    """Arrivals replayed from a trace window, looped or not; same interface as synthetic."""

    def __init__(self, cfg, n_prefill: int):
        self.cfg = cfg
        wl = cfg.workload
        self.window = trace_window(wl)
        if wl.trace_load is not None:  # offered prefill load -> rate, at the trace's mean prompt
            capacity = n_prefill * cfg.service.prefill_tokens_per_s / self.window.prompt.mean()
            self.window = trace_window(wl, rate=wl.trace_load * capacity)
        self.rate = self.window.arrival.size / self.window.period  # while the trace plays
        self.block_s = block_length(self.rate)

    def block(self, b: int) -> Requests:
        """Arrivals in ``[b, b + 1) * block_s``: copy ``k`` of the window starts at ``k P``."""
        w, lo, hi = self.window, b * self.block_s, (b + 1) * self.block_s
        k_last = int(hi // w.period) if self.cfg.workload.trace_loop else 0
        ks = np.arange(min(int(lo // w.period), k_last + 1), k_last + 1, dtype=np.float64)
        t = (ks[:, None] * w.period + w.arrival[None, :]).ravel()
        idx = np.tile(np.arange(w.arrival.size), ks.size)
        keep = np.flatnonzero((t >= lo) & (t < hi))
        keep = keep[np.argsort(t[keep], kind="stable")]  # already sorted up to rounding
        g = rng.generator(self.cfg.sim.seed, rng.WORKLOAD, b)
        i = idx[keep]
        return _finish(g, t[keep], w.prompt[i], w.output[i], self.cfg.cluster.pods)

    def mean_prompt(self) -> float:
        return float(self.window.prompt.mean())
