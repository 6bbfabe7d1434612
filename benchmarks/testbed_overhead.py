"""The testbed's own overheads: decisions, HTTP hops, sleep precision, CPU (root).

    sudo .venv/bin/python benchmarks/testbed_overhead.py                # one default run
    .venv/bin/python benchmarks/testbed_overhead.py --store outputs/testbed.zarr

Measured in situ, on a testbed run (the default one, ~1 minute, or a store it wrote):

* router decision path: ``choose()`` as the router process calls it (perf_counter_ns);
* HTTP hops: load generator -> router (send to receipt), prefill worker -> router (the
  worker's prefill end to the router learning it), decode worker -> router (first token
  out to the router learning it), each a real aiohttp exchange on the namespace's
  loopback;
* CPU: cores used by each process over the run (``/proc``), and the host's busy share;
* timing: load-generator send lateness and router tick lag;

and, outside any run, the precision of ``asyncio.sleep`` (the emulated compute): how late
a sleep of 1, 10 and 100 ms wakes up on this machine, idle apart from other jobs.
Prints markdown with the machine's load, for sweeps/TESTBED.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time

import numpy as np


def q(x, p) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.quantile(x, p)) if x.size else float("nan")


def row(name: str, x, unit: str = "ms", scale: float = 1e3) -> str:
    return (
        f"| {name} | {q(x, 0.5) * scale:.3g} | {q(x, 0.99) * scale:.3g} | "
        f"{np.nanmax(np.asarray(x, dtype=float)) * scale:.3g} | {unit} |"
    )


async def sleep_lateness(d: float, n: int) -> np.ndarray:
    loop = asyncio.get_running_loop()
    out = np.empty(n)
    for k in range(n):
        target = loop.time() + d
        await asyncio.sleep(d)
        out[k] = loop.time() - target
    return out


def main(argv=None) -> None:
    import xarray as xr

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", help="a testbed store to read instead of running one")
    args = ap.parse_args(argv)
    if args.store:
        ds = xr.open_zarr(args.store).load()
    else:
        from otfr_vec.testbed.config import Options, make_testbed_config
        from otfr_vec.testbed.run import run_testbed

        ds = run_testbed(make_testbed_config(), Options(force=True))
    plan = ((0.001, 500), (0.01, 200), (0.1, 30))
    sleeps = {d: asyncio.run(sleep_lateness(d, n)) for d, n in plan}
    print(
        f"({platform.node()}, Linux {platform.release()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.2f}; router {ds.attrs.get('testbed:router')})\n"
    )
    print("| what | p50 | p99 | max | unit |")
    print("|---|---|---|---|---|")
    nan = float("nan")
    for s in ds.scheduler.values:
        x = ds.sel(scheduler=s)
        a = ds.attrs
        p50, p99 = a[f"testbed:{s}:decision_us_p50"], a[f"testbed:{s}:decision_us_p99"]
        print(f"| {s}: decision, choose() in the router process | {p50:.3g} | {p99:.3g} | | us |")
        hops = {
            "HTTP hop load generator -> router": x.tb_received - x.tb_arrival - x.tb_send_lateness,
            "HTTP hop prefill worker -> router": x.tb_prefill_seen - x.tb_prefilled,
            "streamed event decode worker -> router": x.tb_first_seen - x.tb_first_token,
            "load-generator send lateness": x.tb_send_lateness,
        }
        for name, v in hops.items():
            print(row(f"{s}: {name}", v.values))
        cpu = json.loads(a[f"testbed:{s}:cpu"])
        cores = dict(cpu.get("cores", {}))
        workers = [v for k, v in cores.items() if k.startswith("worker")]
        shown = {
            "all testbed processes": cpu.get("testbed_cores", nan),
            "router": cores.get("router", nan),
            "load generator": cores.get("loadgen", nan),
            "conductor": cores.get("conductor", nan),
            f"one worker (mean of {len(workers)})": float(np.mean(workers)) if workers else nan,
        }
        for name, v in shown.items():
            print(f"| {s}: CPU, {name} | {v:.3f} | | | cores |")
        busy = 100 * cpu.get("host_busy_mean", nan)
        print(f"| {s}: host busy (all cores, mean) | {busy:.0f} | | | % |")
    for d, x in sleeps.items():
        print(row(f"asyncio.sleep({d * 1e3:g} ms) wakes late by", x))


if __name__ == "__main__":
    t = time.time()
    main()
    print(f"\n(took {time.time() - t:.0f} s)")
