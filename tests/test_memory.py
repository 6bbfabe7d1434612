"""Memory follows requests in flight and windows, not steps (issue 13).

Peak RSS is measured in fresh subprocesses (one process's peak is a high-water mark, so
each run needs its own). Post-processing once built ``n_steps x n_pods`` float64 arrays:
the long run below then peaked near 1 GB against ~235 MB for the same run now. The
bounds are differences between two runs of one setting, so they do not depend on how
much the interpreter and libraries take on a given machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from otfr_vec import make_config
from otfr_vec.memory import MIB, estimate

# many pods and steps, few requests: per-step memory would dominate everything else
WIDE = [
    "cluster.pods=256",
    "cluster.workers_per_pod=2",
    "workload.load=0.05",
    "schedulers=[lc]",
    "sim.window=10",
]
SCRIPT = """
import json, sys
from otfr_vec import make_config, simulate
from benchmarks.simulate import peak_rss
simulate(make_config(sys.argv[1:]))
print(json.dumps(peak_rss()))
"""


def peak_rss(overrides) -> float:
    """Peak RSS (bytes) of a fresh process simulating ``overrides`` with the kernels in
    Numba's cache: a first run on a clean checkout compiles them (about 300 MiB more,
    once), so a short run of the same configuration warms the cache first."""
    warm = [o for o in overrides if not o.startswith("sim.duration=")]
    for args in ([*warm, "sim.duration=40"], overrides):
        p = _run(args)
    return json.loads(p.stdout.strip().splitlines()[-1])


def _run(overrides):
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *overrides],
        cwd=Path(__file__).resolve().parents[1],  # benchmarks/ is importable from there
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )


def test_peak_rss_does_not_grow_with_run_length():
    short = peak_rss([*WIDE, "sim.duration=120"])
    long = peak_rss([*WIDE, "sim.duration=1800"])  # 15x the steps: 180,000 x 256 pods
    # 180,000 steps x 256 pods x 8 B = 352 MiB per per-step array; the windows add ~1 MiB
    assert long - short < 48 * MIB, (short / MIB, long / MIB)
    assert long <= estimate(make_config([*WIDE, "sim.duration=1800"])).total


def test_estimate_follows_rate_windows_and_workers_not_steps():
    base = estimate(make_config(WIDE)).total
    finer = estimate(make_config([*WIDE, "sim.dt=0.001"])).total  # 10x the steps
    assert finer - base < 64 * MIB  # one engine block of per-step inputs more, no more
    busy = estimate(make_config([*WIDE, "workload.rate=1e6"])).total
    assert busy > 10 * base  # the request pool follows requests in flight
