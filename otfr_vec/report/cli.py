"""Assemble REPORT.md and its figures from the stores, and the command line around it."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from . import bench as bench_mod
from .baselines import BASELINES
from .drawers import RESULTS as STUDY_RESULTS
from .mechanism import MECHANISM
from .stores import ReportError, Skip, Store, choose, open_store

ORDER = ("R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "S", "B")  # R10: the record
RESULTS = sorted([*STUDY_RESULTS, MECHANISM, BASELINES], key=lambda r: ORDER.index(r.key))
SECRET_ATTRS = ("otfr_vec:config", "otfr_vec:sweep")  # shown as YAML, not as list items


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def open_all(paths: list[str], use: dict[str, str]) -> tuple[list[Store], dict[str, Store]]:
    """Every store given (once each, ``--use`` paths included) and the ``--use`` map."""
    keys = {r.key for r in RESULTS} | {r.grid for r in RESULTS if r.grid}
    bad = [k for k in use if k not in keys]
    if bad:
        raise ReportError(
            f"--use {bad[0]}=...: {bad[0]!r} is neither a result nor a grid; allowed: "
            + ", ".join(sorted(keys))
        )
    by_path: dict[str, Store] = {}
    for p in [*paths, *use.values()]:
        real = os.path.realpath(p)
        if real not in by_path:
            by_path[real] = open_store(p)
    return list(by_path.values()), {k: by_path[os.path.realpath(p)] for k, p in use.items()}


def provenance(store: Store) -> str:
    """One block per store: what it is, what it served, where it came from, its config."""
    lines = [f"### `{store.path}`", "", f"- what: {store.describe()}"]
    lines.append(f"- used for: {', '.join(store.used_by) or 'no result'}")
    if store.unfinished:
        shown = "; ".join(store.unfinished[:10])
        more = f"; and {len(store.unfinished) - 10} more" if len(store.unfinished) > 10 else ""
        lines.append(f"- not finished: {shown}{more}")
    if store.damaged:
        lines.append(f"- damaged cells left out: {'; '.join(store.damaged)}")
    if store.missing:
        lines.append(f"- variables absent from the store: {', '.join(store.missing)}")
    for key, value in sorted(store.ds.attrs.items()):
        if key in SECRET_ATTRS:
            continue
        text = " ".join(str(value).split())
        lines.append(f"- {key}: {text[:300]}{' ...' if len(text) > 300 else ''}")
    cfg = store.ds.attrs.get("otfr_vec:config")
    if isinstance(cfg, str):
        lines += [
            "",
            "<details><summary>resolved configuration</summary>",
            "",
            "```yaml",
            cfg.rstrip(),
            "```",
            "",
            "</details>",
        ]
    return "\n".join(lines)


def build_report(
    stores: list[str],
    out: Path,
    bench: Path | None = None,
    use: dict[str, str] | None = None,
    say=_say,
) -> tuple[Path, list[str]]:
    """Draw every result the stores allow into ``out`` and write ``out/REPORT.md``.

    Everything is checked first (stores, ``--use``, which store serves which result); the
    figures are drawn into a temporary folder beside ``out`` and moved in at the end, so a
    refusal or a failure leaves ``out`` as it was. Returns the report's path and the
    skipped results with their reasons. Raises ReportError on bad input.
    """
    use = use or {}
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out}: exists and is not a folder")
    opened, forced = open_all(stores, use)
    if not opened:
        raise ReportError("no store given (run a sweep first, e.g. `make sweep`)")
    chosen, skips = choose(RESULTS, opened, forced)
    bench_data, bench_skip = None, None
    try:
        bench_data = bench_mod.load(Path(bench)) if bench else None
        if bench_data is None:
            bench_skip = "no benchmark record given (--bench)"
    except Skip as why:
        bench_skip = str(why)

    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    tmp.mkdir(parents=True)
    try:
        sections, skipped, summary = [], [], []
        for res in RESULTS:
            if res.key not in chosen:
                skipped.append(f"{res.key} ({res.title}) skipped: {skips[res.key]}")
                continue
            store, ctx, note = chosen[res.key]
            t0 = time.perf_counter()
            try:
                body = res.draw(store, ctx, tmp)
            except Skip as why:  # found only while drawing (e.g. every cell of it is a hole)
                skipped.append(f"{res.key} ({res.title}) skipped: `{store.path}`: {why}")
                continue
            store.used_by.append(res.key)
            say(f"report: {res.key} from {store.path} ({time.perf_counter() - t0:.1f} s)")
            summary.append(f"| {res.key} | {res.title} | `{store.path}` | {note} |")
            sections.append(f"## {res.key}: {res.title}\n\n{body}")
        if bench_data is not None:
            sections.append(f"## R10: {bench_mod.TITLE}\n\n{bench_mod.draw(bench_data, tmp)}")
            summary.append(f"| R10 | {bench_mod.TITLE} | `{bench_data['path']}` | |")
        else:
            skipped.append(f"R10 ({bench_mod.TITLE}) skipped: {bench_skip}")
        parts = [
            "# otfr_vec report",
            "Every number below is computed from the stores listed under *Provenance*. "
            "Failure rates and other metrics: mean over seeds ± the half-width of a 95 % "
            "Student t interval; reductions: failures pooled over seeds with a 95 % Fieller "
            "interval over paired seeds (both honest with 2-5 seeds). A seeds row counts "
            "the seeds behind each point; bold when some are missing.",
            "| result | title | drawn from | note |\n|---|---|---|---|\n" + "\n".join(summary),
            *sections,
        ]
        if skipped:
            parts += ["## Skipped", "\n".join(f"- {s}" for s in skipped)]
        parts += ["## Provenance", *(provenance(s) for s in opened)]
        (tmp / "REPORT.md").write_text("\n\n".join(parts) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "REPORT.md", skipped


def parse_use(items: list[str]) -> dict[str, str]:
    use = {}
    for item in items:
        key, sep, path = item.partition("=")
        if not sep or not key or not path:
            raise ReportError(f"--use {item!r}: expected KEY=PATH, e.g. --use R1=outputs/s.zarr")
        if key in use:
            raise ReportError(f"--use {key}=...: given twice")
        use[key] = path
    return use


def main(argv: list[str] | None = None) -> int:
    from . import __doc__ as doc

    ap = argparse.ArgumentParser(
        prog="python -m otfr_vec.report",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("stores", nargs="*", help="Zarr stores written by sweeps or runs")
    ap.add_argument("--out", help="output folder (default: report/ beside the first store)")
    ap.add_argument(
        "--use",
        action="append",
        default=[],
        metavar="KEY=PATH",
        help="draw result KEY (R1, B, ...) or every result of grid KEY (severity, ...) from "
        "the store at PATH; needed when several stores qualify",
    )
    ap.add_argument(
        "--bench",
        default=None,
        help="benchmark record for R10 (default: outputs/benchmarks/RESULTS.json, written by "
        "make bench, else the committed benchmarks/RESULTS.json)",
    )
    args = ap.parse_args(argv)
    if args.bench is None:
        fresh = Path("outputs/benchmarks/RESULTS.json")
        args.bench = str(fresh if fresh.exists() else Path("benchmarks/RESULTS.json"))
    try:
        use = parse_use(args.use)
        first = args.stores[0] if args.stores else next(iter(use.values()), None)
        if first is None:
            raise ReportError("no store given (run a sweep first, e.g. `make sweep`)")
        out = Path(args.out) if args.out else Path(first).resolve().parent / "report"
        report, skipped = build_report(args.stores, out, Path(args.bench), use)
    except ReportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for s in skipped:
        _say(f"skip: {s}")
    print(f"wrote {report}")
    return 0


__all__ = ["RESULTS", "build_report", "main"]
