"""What the online router costs from Python: ``python -m benchmarks.online_bench``.

Per registered policy and number of candidates (workers of a role group: 64 ...
65,536), one :class:`otfr_vec.online.Router` in a steady state (about half a request in
flight per candidate, released oldest first), timed call by call with
``perf_counter_ns`` (the timer's own cost subtracted):

- ``decision``: ``choose("prefill", pod, now)`` (the study's score family through the
  router's default routing cache: tournament trees, as the simulator's
  ``route=auto``; ``full scan``: the same router built with ``incremental=False``,
  for the policies whose pick is that argmin; the others draw, probe or follow a
  schedule and do not use it);
- ``routed`` / ``released``: a load + 1 / - 1;
- ``outcome``: one outcome charged to a worker, successes and timeouts alternating
  (the policy's outcome hook included: ejections, breakers, latency estimates);
- ``step``: one step start (``tick`` one ``sim.dt`` on: the policy's timers, the price
  decay and every worker's base score, O(workers));
- ``observe``: busy fractions and labels of every worker (validated and copied).

Each figure is the median per call of one repeat; the tables give the median [min-max]
over repeats. Timings on a shared machine are noisy: the record states the load
average before and after, the CPU and the commit. Written to
``outputs/online_bench/ONLINE.{md,json}``; ``--record`` refreshes the committed record,
``benchmarks/ONLINE.{md,json}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from otfr_vec import make_config, policies
from otfr_vec.engine import bind
from otfr_vec.kernels.policy.ids import BREAKER, EPP, SCORE
from otfr_vec.online import Router

from .run import fmt, machine, machine_info, record, spread

HERE = Path(__file__).resolve().parent
ARGMIN = {SCORE, BREAKER, EPP}  # policy kernel ids whose pick is the study's argmin
OPS = ("decision", "full scan", "routed", "released", "outcome", "step", "observe")


def layout(n: int) -> tuple[int, int]:
    """(pods, prefill workers per pod) with pods x k = n and k / pods in {1, 2} (32 x 32
    at 1024, the study's cluster), as benchmarks/decision.py lays out its targets."""
    pods = 1 << (int(np.log2(n)) // 2)
    return pods, n // pods


def config(n: int):
    pods, k = layout(n)
    return make_config(
        [f"cluster.pods={pods}", f"cluster.workers_per_pod={2 * k}", "sim.duration=60"]
    )


def _timer_ns() -> float:
    t = [time.perf_counter_ns() - time.perf_counter_ns() for _ in range(2000)]
    return -float(np.median(t))


class Steady:
    """A router mid-run: requests in flight, routed and released in order."""

    def __init__(self, r: Router, seed: int = 0):
        self.r, self.now = r, 1.0
        self.g = np.random.default_rng(seed)
        self.flight: deque = deque()
        self.target = max(1, r.n_prefill // 2)
        for _ in range(self.target):
            self.decide()

    def decide(self) -> int:
        r = self.r
        j = r.choose("prefill", int(self.g.integers(r.n_pods)), self.now)
        r.routed(j, self.now)
        self.flight.append(j)
        return j

    def settle(self) -> None:
        while len(self.flight) > self.target:
            self.r.released(self.flight.popleft(), self.now)


def time_calls(call, n: int, overhead: float) -> float:
    """Median ns per call of ``n`` calls of ``call(k)``."""
    t = np.empty(n)
    clock = time.perf_counter_ns
    for k in range(n):
        a = clock()
        call(k)
        t[k] = clock() - a
    return max(float(np.median(t)) - overhead, 0.0)


def time_decisions(r: Router, s: Steady, calls: int, over: float) -> float:
    """Median ns of ``choose()``; each chosen worker is then routed and the oldest
    request released, untimed, so loads move as in a live run."""
    t = np.empty(calls)
    clock = time.perf_counter_ns
    for k in range(calls):
        a = clock()
        j = r.choose("prefill", k % r.n_pods, s.now)
        t[k] = clock() - a
        r.routed(j, s.now)
        s.flight.append(j)
        s.settle()
    return max(float(np.median(t)) - over, 0.0)


def time_updates(r: Router, s: Steady, calls: int, over: float) -> dict:
    w = [s.flight[k % len(s.flight)] for k in range(calls)]
    kinds = ("success", "timeout")
    now = s.now
    out = {
        "routed": time_calls(lambda k: r.routed(w[k], now), calls, over),
        "released": time_calls(lambda k: r.released(w[k], now), calls, over),
        "outcome": time_calls(lambda k: r.outcome(w[k], kinds[k & 1], 0.3, now), calls, over),
    }
    steps = max(20, calls // 20)
    dt = r.params.dt
    out["step"] = time_calls(lambda k: r.tick(now + (k + 1) * dt), steps, over)
    s.now = now + (steps + 1) * dt
    busy, labels = s.g.random(r.n_workers), np.zeros(r.n_workers)
    out["observe"] = time_calls(lambda k: r.observe(s.now, busy=busy, labels=labels), steps, over)
    return out


def bench_router(name: str, n: int, incremental: bool, calls: int, repeats: int, over: float):
    r = Router(name, config(n), incremental=incremental)
    s = Steady(r)
    out = {k: [] for k in OPS}
    for _ in range(repeats):
        out["decision" if incremental else "full scan"].append(time_decisions(r, s, calls, over))
        if incremental:
            for k, v in time_updates(r, s, calls, over).items():
                out[k].append(v)
    return {k: spread(v) for k, v in out.items() if v}


def parse(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.online_bench", description=__doc__)
    ap.add_argument("--sizes", default="64,256,1024,4096,16384,65536", help="candidates")
    ap.add_argument("--policies", default=",".join(policies.names()), help="registered names")
    ap.add_argument("--calls", type=int, default=2000, help="timed calls per repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="64 and 1024 candidates, 2 repeats")
    ap.add_argument("--record", action="store_true", help="refresh benchmarks/ONLINE.{md,json}")
    ap.add_argument("--out", type=Path, default=Path("outputs/online_bench/ONLINE.md"))
    args = ap.parse_args(argv)
    args.sizes = [int(x) for x in args.sizes.split(",") if x]
    args.policies = [p for p in args.policies.split(",") if p]
    if args.quick:
        args.sizes, args.repeats, args.calls = [64, 1024], 2, 500
    errors = [
        f"--sizes: {n} is not a power of two in [16, 1048576]"
        for n in args.sizes
        if n < 16 or n > 2**20 or n & (n - 1)
    ]
    errors += [
        f"--policies: {p!r} unknown; allowed: {', '.join(policies.names())}"
        for p in args.policies
        if p not in policies.names()
    ]
    if not 1 <= args.repeats <= 50:
        errors.append(f"--repeats: {args.repeats} not in [1, 50]")
    if not 100 <= args.calls <= 10**6:
        errors.append(f"--calls: {args.calls} not in [100, 1000000]")
    if errors:
        ap.error("\n  " + "\n  ".join(errors))
    if args.record:
        args.out = HERE / "ONLINE.md"
    return args


def table(rows, op: str, sizes, names, unit: float = 1e3) -> list[str]:
    lines = [
        "| policy | " + " | ".join(f"{n:,}" for n in sizes) + " |",
        "|---" * (len(sizes) + 1) + "|",
    ]
    for p in names:
        cells = []
        for n in sizes:
            m = rows.get((p, n), {}).get(op)
            cells.append(fmt(m, unit, 2) if m else "")
        if any(cells):
            lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> None:
    args = parse(argv)
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    over = _timer_ns()
    rows: dict = {}
    for n in args.sizes:
        for p in args.policies:
            t = time.perf_counter()
            res = bench_router(p, n, True, args.calls, args.repeats, over)
            if bind(config(n), p).params["policy"] in ARGMIN:
                res.update(bench_router(p, n, False, args.calls, args.repeats, over))
            rows[(p, n)] = res
            print(
                f"[{time.perf_counter() - t0:6.1f} s] n={n:>6} {p:22s} "
                + "  ".join(f"{k} {v[0] / 1e3:.2f}" for k, v in res.items())
                + f" us ({time.perf_counter() - t:.1f} s)",
                flush=True,
            )
    load_after = os.getloadavg()
    rec = {
        "machine": machine_info(),
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "unit": "ns per call, [median, min, max] over repeats of the median call",
        "timer_overhead_ns": over,
        "calls": args.calls,
        "repeats": args.repeats,
        "rows": [{"policy": p, "candidates": n, **m} for (p, n), m in rows.items()],
    }
    cmd = "python -m benchmarks.online_bench " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    rec.update(command=cmd.strip(), took_s=round(time.perf_counter() - t0, 1))
    names = args.policies
    body = [
        "# The online router's costs from Python",
        "",
        f"Command: `{cmd.strip()}` (took {time.perf_counter() - t0:.0f} s). What is timed "
        "and how: `benchmarks/online_bench.py`'s docstring. Microseconds per call, median "
        f"[min-max] over {args.repeats} repeats of the median of {args.calls:,} calls "
        f"(timer overhead {over:.0f} ns subtracted). Candidates: the workers of one role "
        "group, laid out pods x workers per pod (32 x 32 at 1,024).",
        "",
        *machine(rec["machine"]),
        f"- load average before {load_before[0]:.2f}, {load_before[1]:.2f}, "
        f"{load_before[2]:.2f}; after {load_after[0]:.2f}, {load_after[1]:.2f}, "
        f"{load_after[2]:.2f} (1, 5, 15 min; 2 cores)",
        "",
        "## A decision: `choose()` (us)",
        "",
        "The router's default routing cache (tournament trees, as the simulator's "
        "`route=auto`) for the study's score "
        "family, the policy's own pick for the others.",
        "",
        *table(rows, "decision", args.sizes, names),
        "",
        "## A decision without the incremental structure: a full scan (us)",
        "",
        "The policies whose pick is the study's argmin, built with `incremental=False` "
        "(the same choices).",
        "",
        *table(rows, "full scan", args.sizes, names),
    ]
    for op, what in (
        ("routed", "`routed()`: a load + 1 (us)"),
        ("released", "`released()`: a load - 1 (us)"),
        ("outcome", "`outcome()`: one outcome charged, the policy's hook included (us)"),
        ("step", "a step start: timers, price decay, base scores of every worker (us)"),
        ("observe", "`observe(busy=, labels=)` of every worker (us)"),
    ):
        body += ["", f"## {what}", "", *table(rows, op, args.sizes, names)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(body) + "\n")
    record(rec, args.out)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
