"""Sweep throughput: cells/s of the severity grid with 1 and 2 local Dask workers.

python benchmarks/bench_sweep.py [override ...]

Reduced size (stated in the output): 16 x 16 workers, 200 s runs, 4 r x 4 seeds = 16 cells
of 5 schedulers, about 1.5 s per cell on one core. Workers are started and warmed (kernels
loaded from Numba's cache) before the clock starts, so the figure is the sweep itself:
scheduling, simulation and store writes. Parallel efficiency = (rate with 2 workers) /
(2 x rate with 1 worker); near 100 % means task overhead and store writes are small.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time

import numba
import xarray as xr

from otfr_vec import __version__, make_config
from otfr_vec.cluster import connect, usable_cores
from otfr_vec.sweep import run_sweep

SIZE = ["cluster.pods=16", "cluster.workers_per_pod=16", "sim.duration=200", "sim.warmup=10"]
SIZE += ["degradation.onset=60", "degradation.duration=80", "sweep.seeds=4"]


def warm():
    from otfr_vec import make_config as mk
    from otfr_vec.api import simulate

    simulate(mk(["cluster.pods=1", "cluster.workers_per_pod=4", "sim.duration=5", "sim.warmup=1"]))
    return os.getpid()


def measure(n_workers: int, extra: list, tmp: str) -> tuple[float, int, xr.Dataset]:
    cfg = make_config(
        ["+grid=severity", *SIZE, *extra, f"dask.n_workers={n_workers}", "dask.dashboard=null"]
        + [f"store={tmp}/w{n_workers}.zarr"],
        config_name="sweep",
    )
    with connect(cfg.dask) as client:
        client.run(warm)  # on every worker: each loads the kernels before the clock starts
        t0 = time.perf_counter()
        path = run_sweep(cfg, client, quiet=True)
        wall = time.perf_counter() - t0
    ds = xr.open_zarr(path).load()
    return wall, int(ds.done.size), ds


def main(extra: list, repeats: int = 3) -> None:
    print(
        f"otfr_vec {__version__}, numba {numba.__version__}, Python {platform.python_version()}"
        f" on {platform.machine()} {platform.processor() or platform.system()}, "
        f"{usable_cores()} usable cores, load average {os.getloadavg()[0]:.2f}"
    )
    print(f"severity grid at reduced size: {' '.join(SIZE + extra)}; {repeats} repeats")
    walls = {1: [], 2: []}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):  # alternate 1 and 2 workers so drift hits both alike
            for n in (1, 2):
                wall, cells, ds = measure(n, extra, f"{tmp}/{rep}")
                walls[n].append(wall)
                results[n] = ds
                print(
                    f"{n} worker(s): {cells} cells in {wall:6.2f} s = {cells / wall:6.2f} cells/s"
                )
    xr.testing.assert_equal(results[1], results[2])
    eff = [w1 / (2 * w2) for w1, w2 in zip(walls[1], walls[2], strict=True)]
    med = sorted(eff)[len(eff) // 2]
    print(
        f"parallel efficiency at 2 workers: median {med:.1%} [{min(eff):.1%}-{max(eff):.1%}] "
        f"over {repeats} paired repeats (identical results)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
