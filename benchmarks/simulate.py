"""Simulator throughput, peak memory, and the pure-Python reference as a speed baseline.

Each cluster size runs in a fresh subprocess (``python -m benchmarks.simulate N ...``)
so its peak resident memory (:func:`peak_rss`: numba's allocations are
invisible to tracemalloc) belongs to that size alone. The kernels are warmed on a tiny run first
(compiled or loaded from numba's cache), then the timed run simulates every scheduler
on one thread.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

from otfr_vec import make_config
from otfr_vec.engine import run
from otfr_vec.kernels.structs import ARRIVED

# the default scenario, shortened: degradation moved into the shorter run
SHORT = ["sim.warmup=5", "degradation.onset=10", "degradation.duration=15"]


def overrides(workers: int, duration: float) -> list[str]:
    side = int(round(workers**0.5))
    if side * side != workers:
        raise ValueError(f"--sim-workers: {workers} is not a square (pods x workers per pod)")
    return [
        f"cluster.pods={side}",
        f"cluster.workers_per_pod={side}",
        f"sim.duration={duration}",
        *SHORT,
    ]


def peak_rss() -> float:
    """This process's peak resident memory, bytes: ``VmHWM`` from ``/proc/self/status``.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries that across ``exec``, so a process
    started by a large one (a test under pytest, a benchmark's child) reports at least
    its parent's peak (measured: 625 MiB for a 235 MiB run under the whole test suite).
    ``VmHWM`` belongs to the process's own address space. ``ru_maxrss`` where there is
    no ``/proc`` (bytes from KiB on Linux and BSD; macOS reports bytes).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    r = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return r if sys.platform == "darwin" else r * 1024


def _rss_mib() -> float:
    return peak_rss() / (1 << 20)


def measure(workers: int, duration: float, repeats: int, schedulers=None) -> dict:
    """Run in this process: throughput of the kernels at one size (the five schedulers, or
    ``schedulers``)."""
    pick = [f"schedulers=[{','.join(schedulers)}]"] if schedulers else []
    run(
        make_config(["cluster.pods=2", "cluster.workers_per_pod=4", *overrides(4, 10.0)[2:], *pick])
    )
    rss_warm = _rss_mib()
    cfg = make_config([*overrides(workers, duration), *pick])
    walls = []
    for _ in range(repeats):
        res = run(cfg)
        walls.append(res.wall_s)
    n_sched = len(res.states)
    requests = sum(int(st.cnt[ARRIVED]) for st in res.states.values())
    steps = res.scenario.n_steps * res.scenario.layout.n_workers * n_sched
    import otfr_vec

    return {
        "package": otfr_vec.__file__,
        "workers": workers,
        "duration": duration,
        "schedulers": n_sched,
        "requests": requests,
        "worker_steps": steps,
        "wall": walls,
        "rss_warm_mib": rss_warm,
        "rss_peak_mib": _rss_mib(),
    }


def end_to_end(duration: float, repeats: int, threads: list[int]) -> dict:
    """Wall time of ``otfr_vec.simulate`` on the default scenario (the five, 1024 workers)
    at ``sim.duration``, per thread count: the whole call, validation, scenario, kernels
    and the dataset included. Thread counts alternate within each repeat."""
    from otfr_vec import simulate

    simulate(make_config(overrides(4, 10.0)[:2] + ["sim.duration=10", "sim.warmup=2"]), threads=2)
    cfg = make_config([f"sim.duration={duration}"])
    walls: dict[int, list[float]] = {t: [] for t in threads}
    for _ in range(repeats):
        for t in threads:
            t0 = time.perf_counter()
            ds = simulate(cfg, threads=t)
            walls[t].append(time.perf_counter() - t0)
    import otfr_vec

    requests = int(ds.attrs["otfr_vec:requests"]) * ds.sizes["scheduler"]
    walls_by = {str(t): w for t, w in walls.items()}
    return {"package": otfr_vec.__file__, "requests": requests, "walls": walls_by}


def in_subprocess(workers: int, duration: float, repeats: int, schedulers=None, pythonpath=None):
    """:func:`measure` in a fresh process (``pythonpath``: another tree's ``otfr_vec``)."""
    args = [str(workers), str(duration), str(repeats)]
    return child(args + ([",".join(schedulers)] if schedulers else []), pythonpath)


def child(args: list[str], pythonpath=None) -> dict:
    """``python -m benchmarks.simulate ARGS`` in a fresh process; its JSON line, checked
    to come from ``otfr_vec`` under ``pythonpath`` (default: this checkout)."""
    import os
    from pathlib import Path

    cmd = [sys.executable, "-m", "benchmarks.simulate", *args]
    root = Path(__file__).resolve().parents[1]
    env, cwd = dict(os.environ), root
    if pythonpath is not None:  # otfr_vec from there, the benchmarks package from here:
        # python -m puts the working directory first on sys.path, so run from there
        env["PYTHONPATH"] = f"{pythonpath}{os.pathsep}{root}"
        env["NUMBA_CACHE_DIR"] = str(Path(pythonpath) / "numba-cache")
        cwd = pythonpath
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=cwd, env=env)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    want = Path(pythonpath or root).resolve()
    if not Path(m["package"]).resolve().is_relative_to(want):
        raise RuntimeError(f"the run used {m['package']}, not otfr_vec under {want}")
    return m


def reference_pair(workers: int, duration: float, scheduler: str, repeats: int) -> dict:
    """Simulated requests/s of the reference and of the kernels, same run, same process."""
    from otfr_vec.reference import run_reference

    cfg = make_config([*overrides(workers, duration), f"schedulers=[{scheduler}]"])
    kern, ref = [], []
    for _ in range(repeats):
        res = run(cfg)
        kern.append(res.wall_s)
        t0 = time.perf_counter()
        run_reference(cfg, scheduler)
        ref.append(time.perf_counter() - t0)
    n_req = int(res.states[scheduler].cnt[ARRIVED])  # the reference simulates the same ones
    return {"requests": n_req, "kernel_wall": kern, "ref_wall": ref}


if __name__ == "__main__":
    if sys.argv[1] == "end_to_end":  # python -m benchmarks.simulate end_to_end D REPEATS T,T
        d, rep, th = float(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
        print(json.dumps(end_to_end(d, rep, [int(t) for t in th])))
        sys.exit(0)
    n, d, rep = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    scheds = sys.argv[4].split(",") if len(sys.argv) > 4 else None
    print(json.dumps(measure(n, d, rep, scheds)))
