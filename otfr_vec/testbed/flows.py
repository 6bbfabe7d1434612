"""KV-sized TCP flows through the testbed's shaped links, against the model's sharing rule.

:func:`measure` starts a set of flows (start time, bytes, sending worker, receiving
worker) through exactly the links a testbed run uses (:class:`.shaping.Shaper`, in a
private network namespace of its own) and returns each flow's transfer time.
:func:`fluid_times` gives the same flows' times under a sharing rule:

* ``model``: the simulator's ``min(bw_p / n_p, bw_d / n_d)`` (each end shared equally
  by its flows; what one end cannot use is not given to others);
* ``maxmin``: max-min fair rates over the two ends (water-filling), what an ideal
  transport would reach.

``benchmarks/testbed_ps.py`` and the tests use both to ask whether processor sharing is
a fair model of TCP flows through one shaped link. :func:`measure_in_netns` runs the
measurement in a child process (it needs its own namespace, hence root).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KV_PORT = 9000


def _addr(w: int) -> str:
    return f"127.1.0.{w + 1}"


def fluid_times(flows: list[dict], bw: dict, rule: str = "model") -> list[float]:
    """Transfer times of ``flows`` (dicts: start, bytes, src, dst) under ``rule``."""
    n = len(flows)
    rem = [float(f["bytes"]) for f in flows]
    done = [float("nan")] * n
    started = [False] * n
    t = 0.0
    order = sorted(range(n), key=lambda i: flows[i]["start"])
    while any(x != x for x in done):  # NaN: not finished
        active = [i for i in range(n) if started[i] and done[i] != done[i]]
        rates = _rates(active, flows, bw, rule)
        nxt_start = min((flows[i]["start"] for i in order if not started[i]), default=float("inf"))
        nxt_end = min((t + rem[i] / rates[i] for i in active if rates[i] > 0), default=float("inf"))
        t_new = min(nxt_start, nxt_end)
        if t_new == float("inf"):
            break
        for i in active:
            rem[i] -= rates[i] * (t_new - t)
        t = t_new
        for i in active:
            if rem[i] <= 1e-6 * flows[i]["bytes"]:
                done[i] = t - flows[i]["start"]
        for i in order:
            if not started[i] and flows[i]["start"] <= t:
                started[i] = True
    return done


def _rates(active, flows, bw, rule):
    rates = {}
    if rule == "model":
        n_src, n_dst = {}, {}
        for i in active:
            n_src[flows[i]["src"]] = n_src.get(flows[i]["src"], 0) + 1
            n_dst[flows[i]["dst"]] = n_dst.get(flows[i]["dst"], 0) + 1
        for i in active:
            s, d = flows[i]["src"], flows[i]["dst"]
            rates[i] = min(bw[s] / n_src[s], bw[d] / n_dst[d])
        return rates
    # max-min fair: raise every unfrozen flow's rate until a link saturates, freeze its flows
    left = {k: float(v) for k, v in bw.items()}
    todo = set(active)
    while todo:
        share = {}
        for link in left:
            users = [i for i in todo if link in (flows[i]["src"], flows[i]["dst"])]
            if users:
                share[link] = left[link] / len(users)
        link = min(share, key=share.get)
        r = share[link]
        frozen = [i for i in todo if link in (flows[i]["src"], flows[i]["dst"])]
        for i in frozen:
            rates[i] = r
            for end in (flows[i]["src"], flows[i]["dst"]):
                left[end] -= r
            todo.discard(i)
        left.pop(link)
    return rates


async def _measure(flows):
    senders = {f["src"]: _addr(f["src"]) for f in flows}
    buf = memoryview(bytes(1 << 16))

    async def serve(reader, writer):
        n = int(await reader.readline())
        while n > 0:
            k = min(n, len(buf))
            writer.write(buf[:k])
            n -= k
            await writer.drain()
        writer.close()

    async def flow(f, t0):
        await asyncio.sleep(max(0.0, t0 + f["start"] - time.monotonic()))
        t = time.monotonic()
        reader, writer = await asyncio.open_connection(
            _addr(f["src"]), KV_PORT, local_addr=(_addr(f["dst"]), 0)
        )
        writer.write(f"{int(f['bytes'])}\n".encode())
        got = 0
        while got < f["bytes"]:
            b = await reader.read(1 << 20)
            if not b:
                break
            got += len(b)
        writer.close()
        return time.monotonic() - t

    servers = [await asyncio.start_server(serve, a, KV_PORT) for a in set(senders.values())]
    t0 = time.monotonic() + 0.1
    times = await asyncio.gather(*(flow(f, t0) for f in flows))
    for s in servers:
        s.close()
    return list(times)


def run(argv: list[str]) -> None:
    """Child entry: ``flows SPEC.json`` inside a new namespace; prints the times as JSON."""
    from .netns import die_with_parent, enter_private_netns

    enter_private_netns()
    die_with_parent()
    spec = json.loads(Path(argv[0]).read_text())
    bw = {int(k): float(v) for k, v in spec["bw"].items()}
    from .shaping import Shaper

    out = []
    for flows in spec["sets"]:  # each set on fresh links (netlink calls outside the loop)
        senders = {f["src"]: _addr(f["src"]) for f in flows}
        receivers = {f["dst"]: _addr(f["dst"]) for f in flows}
        shaper = Shaper(
            senders, receivers, bw, KV_PORT, leaf=spec["leaf"], mtu=spec["mtu"], limit=spec["queue"]
        )
        try:
            out.append(asyncio.run(_measure(flows)))
        finally:
            shaper.close()
    print(json.dumps(out))


def measure_in_netns(
    sets: list[list[dict]], bw: dict, leaf="pfifo", queue=100, mtu=1500, timeout=300.0
) -> list[list[float]]:
    """Measured transfer times of each set of flows (each set in its own fresh links)."""
    from .conductor import launch_args
    from .netns import require_root

    require_root()
    with tempfile.TemporaryDirectory(prefix="otfr-flows-") as d:
        spec = Path(d) / "spec.json"
        bw_j = {str(k): v for k, v in bw.items()}
        spec.write_text(
            json.dumps({"sets": sets, "bw": bw_j, "leaf": leaf, "queue": queue, "mtu": mtu})
        )
        res = subprocess.run(
            launch_args("flows", str(spec)),
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
    if res.returncode != 0:
        raise RuntimeError(f"flow measurement failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    run(sys.argv[1:])
