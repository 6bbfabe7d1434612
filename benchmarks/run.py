"""One command for every benchmark: ``python -m benchmarks [--quick] [options]``.

Prints the tables and writes ``benchmarks/RESULTS.md``: machine, versions, date, the
command, and every figure as the median with its min-max over repeats; ratios are
between figures of the same run. Timings on a shared machine are noisy: compare medians.
The same figures go to ``RESULTS.json`` beside it (``record`` below), which the report
reads for R10.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np

from . import decision, simulate

STUDY_NS = 1e6  # the study: about 1 ms per FaultAwareOTF-R decision over 1024 targets
HERE = Path(__file__).resolve().parent
VARIANTS = {
    "full": "in-kernel full scan",
    "pods": "in-kernel per-pod minima",
    "tree": "in-kernel tree (incremental)",
    "call_full": "Python call, full scan",
    "call_tree": "Python call, tree",
    "python": "pure Python",
}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats (a smoke run)")
    ap.add_argument(
        "--sizes",
        type=_ints,
        default=[64, 256, 1024, 4096, 16384, 65536],
        help="decision targets, powers of two in [4, 1048576]",
    )
    ap.add_argument("--schedulers", default=",".join(decision.SCHEDULERS))
    ap.add_argument("--repeats", type=int, default=5, help="repeats per decision figure")
    ap.add_argument(
        "--sim-workers",
        type=_ints,
        default=[1024, 4096, 16384],
        help="cluster sizes, squares (pods = workers per pod) in [4, 65536]",
    )
    ap.add_argument("--sim-duration", type=float, default=20.0, help="simulated s, in [10, 300]")
    ap.add_argument("--sim-repeats", type=int, default=3)
    ap.add_argument("--ref-workers", type=int, default=1024)
    ap.add_argument("--ref-duration", type=float, default=10.0, help="simulated s, in [10, 300]")
    ap.add_argument("--ref-scheduler", default="fault_aware_otfr")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.sim_workers, args.repeats, args.sim_repeats = [64, 1024], [1024], 3, 1
    args.schedulers = [s for s in args.schedulers.split(",") if s]
    errors = []
    for n in args.sizes:
        if n < 4 or n > 2**20 or n & (n - 1):
            errors.append(f"--sizes: {n} is not a power of two in [4, 1048576]")
    for n in [*args.sim_workers, args.ref_workers]:
        side = int(round(n**0.5))
        if side * side != n or not 4 <= n <= 65536:
            errors.append(f"--sim-workers/--ref-workers: {n} is not a square in [4, 65536]")
    for s in [*args.schedulers, args.ref_scheduler]:
        if s not in decision.SCHEDULERS:
            errors.append(f"scheduler {s!r} unknown; allowed: {', '.join(decision.SCHEDULERS)}")
    for name in ("sim_duration", "ref_duration"):
        if not 10.0 <= getattr(args, name) <= 300.0:
            errors.append(f"--{name.replace('_', '-')}: {getattr(args, name)} not in [10, 300]")
    for name in ("repeats", "sim_repeats"):
        if not 1 <= getattr(args, name) <= 50:
            errors.append(f"--{name.replace('_', '-')}: {getattr(args, name)} not in [1, 50]")
    if errors:
        ap.error("\n  " + "\n  ".join(errors))
    return args


def fmt(m: tuple[float, float, float], unit: float = 1.0, digits: int = 1) -> str:
    med, lo, hi = (x / unit for x in m)
    return f"{med:,.{digits}f} [{lo:,.{digits}f}-{hi:,.{digits}f}]"


def spread(xs) -> tuple[float, float, float]:
    return float(np.median(xs)), float(np.min(xs)), float(np.max(xs))


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
    except OSError:
        commit = "?"
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "commit": commit,
    }


def machine(m: dict) -> list[str]:
    return [
        f"- date: {m['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['os']}",
        f"- Python {m['python']}, NumPy {m['numpy']}, Numba {m['numba']}",
        f"- git commit {m['commit']} (plus uncommitted changes, if any)",
        "- one thread; the kernels are compiled (or loaded from numba's cache) before timing",
    ]


def decision_section(args, log, rec: dict) -> list[str]:
    decision.warm()
    rows = []
    rec["decision"] = {
        "unit": "ns per decision",
        "repeats": args.repeats,
        "study_ns": STUDY_NS,
        "variants": {**VARIANTS, "rebuild": "one O(N) tree rebuild"},
        "rows": rows,
    }
    lines = [
        f"## Decision latency (ns per decision, median [min-max] over {args.repeats} repeats)",
        "",
        "Targets laid out as pods x workers per pod (32 x 32 at 1024). In-kernel: a "
        "compiled loop of decisions, each followed by the router's load update (for the "
        "tree, its O(log N) leaf update is included). Python call: one kernel call from "
        "the interpreter. Pure Python: `benchmarks/decision.py:python_decision`, the "
        "prototype-style baseline (risk price computed at each decision). "
        "x py: speed-up over pure Python; x 1 ms: over the study's 1 ms per decision. "
        "rebuild: one O(N) tree rebuild, paid once per step when prices change.",
        "",
        "| targets | scheduler | "
        + " | ".join(VARIANTS.values())
        + " | rebuild | full x py | tree x py | full x 1 ms | tree x 1 ms |",
        "|---" * (len(VARIANTS) + 7) + "|",
    ]
    for n in args.sizes:
        for s in args.schedulers:
            t0 = time.perf_counter()
            r = decision.bench(n, s, args.repeats, budget_s=0.02)
            py = r["python"][0]
            row = [str(n), s, *(fmt(r[v]) for v in VARIANTS), fmt(r["rebuild"])]
            row += [f"{py / r['full'][0]:,.0f}", f"{py / r['tree'][0]:,.0f}"]
            row += [f"{STUDY_NS / r['full'][0]:,.0f}", f"{STUDY_NS / r['tree'][0]:,.0f}"]
            lines.append("| " + " | ".join(row) + " |")
            rows.append({"targets": n, "scheduler": s, **{v: r[v] for v in [*VARIANTS, "rebuild"]}})
            log(
                f"decision n={n:>6} {s:17s} full {r['full'][0]:10.1f}  pods {r['pods'][0]:8.1f}"
                f"  tree {r['tree'][0]:6.1f}  call {r['call_full'][0]:10.1f}"
                f"  python {py:14.1f} ns  ({time.perf_counter() - t0:.1f} s)"
            )
    return lines


def sim_section(args, log, rec: dict) -> list[str]:
    rows = []
    rec["simulator"] = {"sim_duration_s": args.sim_duration, "repeats": args.sim_repeats}
    rec["simulator"]["rows"] = rows
    lines = [
        "## Simulator throughput (kernels, all five schedulers, one thread)",
        "",
        f"The default scenario shortened to sim.duration={args.sim_duration:g} s with "
        f"{' '.join(simulate.SHORT)} (degradation inside the shorter run); cluster "
        "pods x workers per pod = side x side. Peak RSS: ru_maxrss of a fresh process "
        "per size (after warm-up / at the end); median [min-max] over "
        f"{args.sim_repeats} repeats.",
        "",
        "| workers | requests | wall s | requests/s | worker-steps/s | ns/request "
        "| RSS warm MiB | RSS peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in args.sim_workers:
        m = simulate.in_subprocess(n, args.sim_duration, args.sim_repeats)
        wall = spread(m["wall"])
        rps = spread([m["requests"] / w for w in m["wall"]])
        sps = spread([m["worker_steps"] / w for w in m["wall"]])
        ns = spread([w / m["requests"] * 1e9 for w in m["wall"]])
        rows.append(
            {
                "workers": n,
                "requests": m["requests"],
                "wall_s": wall,
                "requests_per_s": rps,
                "worker_steps_per_s": sps,
                "ns_per_request": ns,
                "rss_warm_mib": m["rss_warm_mib"],
                "rss_peak_mib": m["rss_peak_mib"],
            }
        )
        lines.append(
            f"| {n} | {m['requests']:,} | {fmt(wall, digits=2)} | {fmt(rps, digits=0)} | "
            f"{fmt(sps, 1e6, 0)} M | {fmt(ns, digits=0)} | {m['rss_warm_mib']:.0f} | "
            f"{m['rss_peak_mib']:.0f} |"
        )
        log(
            f"sim n={n:>6}: {rps[0]:,.0f} requests/s, {sps[0] / 1e6:,.0f} M worker-steps/s, "
            f"peak RSS {m['rss_peak_mib']:.0f} MiB"
        )
    return lines


def reference_section(args, log, rec: dict) -> list[str]:
    m = simulate.reference_pair(
        args.ref_workers, args.ref_duration, args.ref_scheduler, args.sim_repeats
    )
    k = spread([m["requests"] / w for w in m["kernel_wall"]])
    r = spread([m["requests"] / w for w in m["ref_wall"]])
    ratio = spread([a / b for a, b in zip(m["ref_wall"], m["kernel_wall"], strict=True)])
    log(f"reference: {r[0]:,.0f} requests/s; kernels {k[0]:,.0f}; ratio {ratio[0]:,.0f}")
    rec["reference"] = {
        "workers": args.ref_workers,
        "scheduler": args.ref_scheduler,
        "sim_duration_s": args.ref_duration,
        "requests": m["requests"],
        "reference_requests_per_s": r,
        "kernel_requests_per_s": k,
        "speed_up": ratio,
    }
    return [
        "## Against the pure-Python event-driven reference (`otfr_vec/reference.py`)",
        "",
        f"Same run for both: {args.ref_workers} workers, {args.ref_scheduler}, "
        f"sim.duration={args.ref_duration:g} s ({m['requests']:,} requests), "
        f"{args.sim_repeats} repeats; ratio = reference wall / kernel wall per repeat "
        "(kernel wall includes building the scenario).",
        "",
        "| | requests/s |",
        "|---|---|",
        f"| reference (pure Python, heapq) | {fmt(r, digits=0)} |",
        f"| kernels | {fmt(k, digits=0)} |",
        f"| speed-up | {fmt(ratio, digits=0)} |",
    ]


def main(argv=None) -> None:
    args = parse(argv)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", flush=True)

    rec: dict = {"machine": machine_info()}
    body = decision_section(args, log, rec) + [""] + sim_section(args, log, rec) + [""]
    body += reference_section(args, log, rec)
    cmd = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    rec.update(command=cmd.strip(), took_s=round(time.perf_counter() - t0, 1))
    head = [
        "# Benchmarks",
        "",
        f"Command: `{cmd.strip()}` (took {time.perf_counter() - t0:.0f} s)",
        "",
        *machine(rec["machine"]),
        "",
    ]
    text = "\n".join(head + body) + "\n"
    args.out.write_text(text)
    record(rec, args.out)
    print(text)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


def record(rec: dict, md: Path) -> Path:
    """The machine-readable record beside ``md``: every figure as [median, min, max]."""
    path = md.with_suffix(".json")
    path.write_text(json.dumps(rec, indent=1) + "\n")
    return path
