"""One command for every benchmark: ``python -m benchmarks [--quick] [--record] [options]``.

Prints the tables and writes ``outputs/benchmarks/RESULTS.md`` (``--record``: the
committed ``benchmarks/RESULTS.md``): machine, load, versions, date, commit, the command,
and every figure as the median with its min-max over repeats; ratios are between figures
of the same run. Timings on a shared machine are noisy: compare medians, and read the
load recorded before and after. The same figures go to ``RESULTS.json`` beside it
(``record`` below), which the report reads for R10.

Sections: the study's decision kernel (full scan, per-pod minima, tree, Python);
every registered policy's decision latency (``policy_decision``); simulator throughput
for the study's five and for each policy alone; the five on the kernels of a baseline
commit, same machine, same session (``--baseline``, before/after); the pure-Python
reference; join-the-shortest-queue against a SimPy model of the same queues (``jsq``).
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

from otfr_vec import policies

from . import decision, policy_decision, simulate

STUDY_NS = 1e6  # the study: about 1 ms per FaultAwareOTF-R decision over 1024 targets
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
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


# the record's sections, in order (--only picks some)
SECTIONS = (
    "decision",
    "policies",
    "simulator",
    "end_to_end",
    "per_policy",
    "baseline",
    "reference",
    "jsq",
)


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
    ap.add_argument(
        "--e2e-duration",
        type=float,
        default=300.0,
        help="simulated s of the end-to-end run, in [30, 3000]",
    )
    ap.add_argument("--ref-workers", type=int, default=1024)
    ap.add_argument("--ref-duration", type=float, default=10.0, help="simulated s, in [10, 300]")
    ap.add_argument("--ref-scheduler", default="fault_aware_otfr")
    ap.add_argument(
        "--policy-sizes",
        type=_ints,
        default=[64, 1024, 16384, 65536],
        help="targets for every policy's decision latency",
    )
    ap.add_argument(
        "--baseline",
        default="cc9d1c9",
        help="commit whose kernels run the five schedulers beside these (before/after); '' to skip",
    )
    ap.add_argument(
        "--jsq-workers",
        type=_ints,
        default=[1024, 4096, 16384, 65536],
        help="join-the-shortest-queue sizes (kernels against SimPy)",
    )
    ap.add_argument(
        "--record",
        action="store_true",
        help="refresh the committed record benchmarks/RESULTS.md (default: outputs/benchmarks)",
    )
    ap.add_argument("--out", type=Path, help="the Markdown record to write (overrides --record)")
    ap.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"sections to run, comma-separated, of {', '.join(SECTIONS)} (make paper: "
        "decision, the study's R10)",
    )
    args = ap.parse_args(argv)
    args.only = [x for x in args.only.split(",") if x]
    bad = [x for x in args.only if x not in SECTIONS]
    if bad or not args.only:
        ap.error(f"--only {','.join(bad) or '(none)'}: allowed sections are {', '.join(SECTIONS)}")
    if args.record and args.only != list(SECTIONS):
        ap.error("--record refreshes the whole committed record: run every section (no --only)")
    if args.out is None:
        args.out = (
            HERE / "RESULTS.md" if args.record else ROOT / "outputs" / "benchmarks" / "RESULTS.md"
        )
    if args.quick:
        args.sizes, args.sim_workers, args.repeats, args.sim_repeats = [64, 1024], [1024], 3, 1
        args.policy_sizes, args.jsq_workers, args.baseline = [64, 1024], [1024], ""
        args.e2e_duration = 30.0
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
    if not 30.0 <= args.e2e_duration <= 3000.0:  # past the default 20 s warm-up + 3 s timeout
        errors.append(f"--e2e-duration: {args.e2e_duration} not in [30, 3000]")
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
        "load": list(os.getloadavg()),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "commit": commit,
    }


def machine(m: dict) -> list[str]:
    load = " / ".join(f"{x:.2f}" for x in m["load"])
    end = " / ".join(f"{x:.2f}" for x in m.get("load_end", ())) or "?"
    return [
        f"- date: {m['date']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['os']}",
        f"- load average (1 / 5 / 15 min) at the start: {load}; at the end: {end}",
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
        "pods x workers per pod = side x side. Peak RSS: VmHWM of a fresh process "
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


def end_to_end_section(args, log, rec: dict) -> list[str]:
    """``simulate()`` on the default scenario, whole call, one thread and two."""
    m = simulate.child(["end_to_end", str(args.e2e_duration), str(args.sim_repeats), "1,2"])
    rows = []
    rec["end_to_end"] = {"sim_duration_s": args.e2e_duration, "repeats": args.sim_repeats}
    rec["end_to_end"]["rows"] = rows
    lines = [
        "## End to end: `simulate()` on the default scenario",
        "",
        f"`otfr_vec.simulate(cfg, threads=T)` with the defaults (1024 workers, the five "
        f"schedulers) at sim.duration={args.e2e_duration:g} s: the whole call (validation, "
        "scenario, kernels, the dataset), in a fresh process after a warm-up run, thread "
        f"counts alternating; median [min-max] over {args.sim_repeats} repeats. x 1 thread: "
        "median over median.",
        "",
        "| threads | requests | wall s | requests/s | x 1 thread |",
        "|---|---|---|---|---|",
    ]
    one = spread(m["walls"]["1"])[0]
    for t, walls in m["walls"].items():
        wall = spread(walls)
        rps = spread([m["requests"] / w for w in walls])
        rows.append(
            {"threads": int(t), "requests": m["requests"], "wall_s": wall, "requests_per_s": rps}
        )
        lines.append(
            f"| {t} | {m['requests']:,} | {fmt(wall, digits=2)} | {fmt(rps, digits=0)} | "
            f"{one / wall[0]:.2f} |"
        )
        log(f"simulate() threads={t}: {rps[0]:,.0f} requests/s")
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


def policy_section(args, log, rec: dict) -> list[str]:
    policy_decision.warm()
    names = policies.names()
    rows = []
    rec["policy_decision"] = {"unit": "ns per decision", "repeats": args.repeats, "rows": rows}
    lines = [
        f"## Every policy's decision (ns per decision, median [min-max] over {args.repeats} "
        "repeats)",
        "",
        "A compiled loop of decisions through the step kernel's own seam "
        "(`benchmarks/policy_decision.py`): a state of the simulator's kind with N prefill "
        "targets mid-run (loads 0-8, prices, 1/8 of the pods degraded), each decision "
        "followed by the router's load update; the routing cache the engine picks for that "
        "layout (tournament trees, `route=auto`).",
        "",
        "| policy | group | " + " | ".join(f"{n:,} targets" for n in args.policy_sizes) + " |",
        "|---|---|" + "---|" * len(args.policy_sizes),
    ]
    for name in names:
        cells = []
        for n in args.policy_sizes:
            r = policy_decision.bench(n, name, args.repeats, decisions=20_000)
            rows.append({"policy": name, "targets": n, "ns": r["ns"], "route": r["route"]})
            cells.append(fmt(r["ns"]))
        lines.append(f"| `{name}` | {policies.get(name).group} | " + " | ".join(cells) + " |")
        log(f"policy decision {name:22s} " + "  ".join(c.split(" ")[0] for c in cells))
    return lines


def per_policy_section(args, log, rec: dict) -> list[str]:
    rows = []
    rec["policy_throughput"] = {"workers": 1024, "sim_duration_s": args.sim_duration, "rows": rows}
    lines = [
        "## Each policy alone, whole run (1024 workers, one thread)",
        "",
        f"The shortened default scenario of the next table (sim.duration={args.sim_duration:g}"
        f" s), one policy per run; median [min-max] over {args.sim_repeats} repeats.",
        "",
        "| policy | requests/s | ns/request |",
        "|---|---|---|",
    ]
    for name in policies.names():
        m = simulate.in_subprocess(1024, args.sim_duration, args.sim_repeats, [name])
        rps = spread([m["requests"] / w for w in m["wall"]])
        ns = spread([w / m["requests"] * 1e9 for w in m["wall"]])
        rows.append({"policy": name, "requests_per_s": rps, "ns_per_request": ns})
        lines.append(f"| `{name}` | {fmt(rps, digits=0)} | {fmt(ns, digits=0)} |")
        log(f"throughput {name:22s} {rps[0]:,.0f} requests/s")
    return lines


def baseline_section(args, log, rec: dict) -> list[str]:
    """The study's five on this tree's kernels and on a baseline commit's, alternately."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="otfr_vec-baseline-"))
    arc = subprocess.run(
        ["git", "archive", args.baseline, "otfr_vec", "conf"], cwd=ROOT, capture_output=True
    )
    if arc.returncode:
        raise SystemExit(f"--baseline {args.baseline}: git archive failed: {arc.stderr.decode()}")
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=arc.stdout, check=True)
    study = list(policies.names("study"))
    now, then = [], []
    for _ in range(args.sim_repeats):
        for out, path in ((now, None), (then, tmp)):
            m = simulate.in_subprocess(1024, args.sim_duration, 1, study, pythonpath=path)
            out.append(m["requests"] / m["wall"][0])
    a, b = spread(now), spread(then)
    ratio = spread([x / y for x, y in zip(now, then, strict=True)])
    rec["baseline"] = {"commit": args.baseline, "now": a, "baseline": b, "speed_up": ratio}
    log(f"baseline {args.baseline}: {b[0]:,.0f} -> {a[0]:,.0f} requests/s ({ratio[0]:.2f}x)")
    return [
        f"## The study's five before and after (baseline commit {args.baseline})",
        "",
        "The same shortened default run (1024 workers, five schedulers, one thread) on this "
        f"tree's kernels and on those of commit {args.baseline}, alternately in one session, "
        f"{args.sim_repeats} pairs; the baseline's kernels compile into their own cache.",
        "",
        "| kernels | requests/s |",
        "|---|---|",
        f"| {args.baseline} | {fmt(b, digits=0)} |",
        f"| this tree | {fmt(a, digits=0)} |",
        f"| speed-up (pairwise) | {fmt(ratio, digits=2)} |",
    ]


def jsq_section(args, log, rec: dict) -> list[str]:
    rows = []
    rec["jsq"] = {"rows": rows}
    lines = [
        "## Join the shortest queue: the kernels against SimPy",
        "",
        "One pod of N single-server queues, prefill-only, Poisson arrivals at load 0.8, "
        "exponential service (mean 0.2 s), 1 s patience in the queue, least connections "
        "(`benchmarks/jsq.py`); the SimPy model finds a shortest queue in O(1). Simulated "
        "requests per CPU second; the kernels route through tournament trees here.",
        "",
        "| workers | kernels requests/s | kernels ns/request | SimPy requests/s | ratio |",
        "|---|---|---|---|---|",
    ]
    for n in args.jsq_workers:
        kd = max(4.0, 60.0 * 1024 / n)
        sd = max(1.0, 20.0 * 1024 / n)
        cmd = [sys.executable, "-m", "benchmarks.jsq", str(n), str(kd), str(sd)]
        r = json.loads(
            subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        rows.append(r)
        k, sp = r["kernel"], r["simpy"]
        lines.append(
            f"| {n:,} | {k['requests_per_s']:,.0f} | {k['ns_per_request']:,.0f} | "
            f"{sp['requests_per_s']:,.0f} | {r['ratio']:.0f} |"
        )
        log(f"jsq n={n}: kernels {k['requests_per_s']:,.0f}, SimPy {sp['requests_per_s']:,.0f}")
    return lines


def main(argv=None) -> None:
    args = parse(argv)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", flush=True)

    rec: dict = {"machine": machine_info()}
    sections = {
        "decision": decision_section,
        "policies": policy_section,
        "simulator": sim_section,
        "end_to_end": end_to_end_section,
        "per_policy": per_policy_section,
        "baseline": baseline_section if args.baseline else None,
        "reference": reference_section,
        "jsq": jsq_section,
    }
    body = []
    for name in SECTIONS:
        if name in args.only and sections[name] is not None:
            body += sections[name](args, log, rec) + [""]
    rec["machine"]["load_end"] = list(os.getloadavg())
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    record(rec, args.out)
    print(text)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


def record(rec: dict, md: Path) -> Path:
    """The machine-readable record beside ``md``: every figure as [median, min, max]."""
    path = md.with_suffix(".json")
    path.write_text(json.dumps(rec, indent=1) + "\n")
    return path
