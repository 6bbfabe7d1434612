"""The load generator: replays the simulator's workload against the router, in real time.

It reads the arrivals the host side drew with :mod:`otfr_vec.scenario` (the same seed,
sizes and ingress pods as ``otfr_vec.simulate``: ``workload.npz`` in the run directory)
and sends request ``i`` as ``POST /generate`` at ``T0 + arrival[i]``, from its own
loopback address, without waiting for earlier answers (an open loop, as Poisson or
trace arrivals are). It records how late each send left (``lateness``, s) and writes it
on ``dump``.
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np
from aiohttp import ClientSession, ClientTimeout, TCPConnector

from .proc import bootstrap, fatal, ready, run_main, say, stdin_lines, wait_go


async def send(session, url, body, failures) -> None:
    try:
        async with session.post(url, json=body) as resp:
            await resp.read()
    except Exception as err:  # noqa: BLE001 - counted, the router's records decide
        failures.append(repr(err))


async def replay(plan, wl, t0, lateness, failures, tasks) -> None:
    loop = asyncio.get_running_loop()
    url = f"http://{plan['router_addr']}:{plan['http_port']}/generate"
    conn = TCPConnector(limit=0, local_addr=(plan["loadgen_addr"], 0))
    async with ClientSession(connector=conn, timeout=ClientTimeout(total=None)) as session:
        for i, a in enumerate(wl["arrival"]):
            target = t0 + float(a)
            wait = target - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            lateness[i] = loop.time() - target
            body = {
                "i": i,
                "prompt": float(wl["prompt"][i]),
                "output": float(wl["output"][i]),
                "ingress": int(wl["ingress"][i]),
            }
            task = asyncio.ensure_future(send(session, url, body, failures))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.sleep(0.1)


async def main(argv: list[str]) -> None:
    run_dir, plan = bootstrap(argv)
    wl = dict(np.load(run_dir / "workload.npz"))
    lateness = np.full(wl["arrival"].size, np.nan)
    failures: list[str] = []
    tasks: set = set()
    lines = stdin_lines()
    ready()
    t0 = await wait_go(lines)
    job = asyncio.ensure_future(replay(plan, wl, t0, lateness, failures, tasks))
    job.add_done_callback(
        lambda t: t.cancelled() or t.exception() is None or fatal("load generator", t.exception())
    )
    async for line in lines:
        if line == "dump":
            np.savez(run_dir / "loadgen.npz", lateness=lateness, send_failures=len(failures))
            say("dumped")


def run(argv: list[str]) -> None:
    run_main(main, argv, "load generator")


if __name__ == "__main__":
    run(sys.argv[1:])
