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


def fluid_times(flows: list[dict], bw: dict, rule: str = "model", changes=None) -> list[float]:
    """Transfer times of ``flows`` under ``rule``.

    A flow is a dict ``start``, ``bytes``, ``src``, ``dst`` and optionally ``stop`` (an
    absolute time it is abandoned at if not done: its time is then NaN, as for a KV
    transfer cut by a deadline). ``bw``: end -> bytes/s; ``changes``: optional
    ``(times, bws)``, the bandwidths ``bws[k]`` (dicts like ``bw``) in force from
    ``times[k]`` on (a degradation schedule).
    """
    n = len(flows)
    rem = [float(f["bytes"]) for f in flows]
    done = [float("nan")] * n
    state = [0] * n  # 0 not started, 1 active, 2 finished or abandoned
    inf = float("inf")
    stop = [float(f.get("stop", inf)) for f in flows]
    c_times, c_bws = changes if changes is not None else ([], [])
    k = 0
    t = min((f["start"] for f in flows), default=0.0)
    while k < len(c_times) and c_times[k] <= t:
        bw, k = c_bws[k], k + 1
    order = sorted(range(n), key=lambda i: flows[i]["start"])
    nxt = 0  # next flow to start, in start order
    active: list[int] = []
    while nxt < n or active:
        while nxt < n and flows[order[nxt]]["start"] <= t:
            i = order[nxt]
            state[i], nxt = 1, nxt + 1
            active.append(i)
        rates = _rates(active, flows, bw, rule)
        events = [flows[order[nxt]]["start"] if nxt < n else inf]
        events += [t + rem[i] / rates[i] for i in active if rates[i] > 0]
        events += [stop[i] for i in active]
        events.append(c_times[k] if k < len(c_times) else inf)
        t_new = max(min(events), t)
        if t_new == inf:
            break
        for i in active:
            rem[i] -= rates[i] * (t_new - t)
        t = t_new
        for i in list(active):
            if rem[i] <= 1e-6 * flows[i]["bytes"]:
                done[i], state[i] = t - flows[i]["start"], 2
                active.remove(i)
            elif stop[i] <= t:
                state[i] = 2
                active.remove(i)
        while k < len(c_times) and c_times[k] <= t:
            bw, k = c_bws[k], k + 1
    return done


def run_transfers(ds, scheduler: str):
    """A testbed run's KV transfers: (measured, model, max-min) times, NaN where cut.

    Every transfer of the run (its start, bytes, both workers, and its deadline as the
    time it is abandoned) replayed through the fluid rules with the run's degradation
    schedule: the model's prediction for exactly the concurrency the run had.
    """
    import numpy as np
    from omegaconf import OmegaConf

    from ..engine import make_scenario
    from .bed import rate_schedule

    cfg = OmegaConf.create(ds.attrs["otfr_vec:config"])
    sc = make_scenario(cfg)
    x = ds.sel(scheduler=scheduler)
    t0, t1 = x.tb_kv_start.values, x.tb_kv_end.values
    sel = np.flatnonzero(np.isfinite(t0))
    kv = float(cfg.network.kv_bytes_per_token)
    prompt = _prompts(cfg, sc, x.tb_arrival.values)
    deadline = x.tb_received.values + float(cfg.sim.timeout)
    flows = [
        dict(
            start=float(t0[i]),
            bytes=float(prompt[i] * kv),
            src=int(x.tb_prefill_worker.values[i]),
            dst=int(x.tb_decode_worker.values[i]),
            stop=float(deadline[i]) if cfg.sim.timeout_scope != "queue" else float("inf"),
        )
        for i in sel
    ]
    times, factor = rate_schedule(sc.degradation, float(cfg.sim.duration), 0.1)
    pod = sc.layout.pod
    bws = [{w: cfg.network.bw0 * f[pod[w]] for w in range(pod.size)} for f in factor]
    measured = t1[sel] - t0[sel]
    model = np.array(fluid_times(flows, bws[0], "model", (times, bws)))
    maxmin = np.array(fluid_times(flows, bws[0], "maxmin", (times, bws)))
    return measured, model, maxmin


def _prompts(cfg, sc, arrival):
    """Prompt sizes of the replayed requests (the workload the run replayed, redrawn)."""
    import numpy as np

    from ..scenario.workload import Stream

    req = Stream(sc.workload).until(float(cfg.sim.duration))
    assert np.array_equal(req.arrival[: arrival.size], arrival), "not this run's workload"
    return req.prompt[: arrival.size]


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
    left = {
        k: float(v)
        for k, v in bw.items()
        if any(k in (flows[i]["src"], flows[i]["dst"]) for i in active)
    }
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
