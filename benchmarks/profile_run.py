"""Time the default run of one scheduler (for before/after comparisons of the kernels).

    python benchmarks/profile_run.py lc 5            # this checkout (or: all 3)
    git archive HEAD otfr_vec conf | tar -x -C /tmp/base
    PYTHONPATH=/tmp/base python benchmarks/profile_run.py lc 5   # the committed kernels

Prints the minimum and median over repeats of the CPU time (``ru_utime``: less
sensitive than wall time to other processes on a shared machine) and of the wall time.
Extra arguments are config overrides.
"""

from __future__ import annotations

import resource
import sys

import numpy as np

import otfr_vec
from otfr_vec import make_config
from otfr_vec.engine import run


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not argv[1].isdigit() or int(argv[1]) < 1:
        sys.exit("usage: profile_run.py SCHEDULER|all REPEATS [override ...]")
    sched, repeats = argv[0], int(argv[1])
    sel = [] if sched == "all" else [f"schedulers=[{sched}]"]  # all: the five schedulers
    cfg = make_config([*sel, *argv[2:]])
    run(make_config(["cluster.pods=2", "cluster.workers_per_pod=4", "sim.duration=30"]))  # JIT
    cpu, wall = [], []
    for _ in range(repeats):
        u0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
        wall.append(run(cfg).wall_s)
        cpu.append(resource.getrusage(resource.RUSAGE_SELF).ru_utime - u0)
    print(
        f"{sched} ({otfr_vec.__file__}): cpu min {min(cpu):.3f} median {np.median(cpu):.3f} s"
        f" | wall min {min(wall):.3f} median {np.median(wall):.3f} s"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
