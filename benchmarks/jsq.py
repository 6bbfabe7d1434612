"""Join the shortest queue: the kernels against an event-driven SimPy model of the same
queues, at 1024 ... 65,536 workers.

The model (issue 10): one pod of N single-server FIFO queues behind a dispatcher, the
prefill-only reduction of the simulator (``cluster.pods=1``,
``cluster.prefill_fraction=1``), Poisson arrivals at load 0.8, exponential service
(exponential prompts in whole tokens, at a fixed token rate), a 1 s patience in the queue
(``sim.timeout=1 sim.timeout_scope=queue``), least connections (``lc``): the shortest
queue, ties broken at random.

The SimPy model is written as a careful modeller would: one ``simpy.Resource`` per
server, a process per customer reneging with ``req | timeout(patience)``, and a
dispatcher that finds a shortest queue in O(1) (servers kept in buckets by queue
length), so the comparison is with a good event-driven model, not a naive O(N) scan.
Both count simulated requests per CPU second; the kernels' figure includes building the
scenario (the engine's own Python).
"""

from __future__ import annotations

import random
import resource
import sys
import time

import numpy as np

PROMPT_MEAN = 2000.0  # tokens, the default prompt mean
RATE = 10_000.0  # tokens/s per worker (service.prefill_tokens_per_s)
LOAD, PATIENCE = 0.8, 1.0


def overrides(n: int, duration: float) -> list[str]:
    return [
        "cluster.pods=1",
        f"cluster.workers_per_pod={n}",
        "cluster.prefill_fraction=1",
        "workload.prompt_dist=exponential",
        "workload.prompt_max=1e7",  # no clip: the exponential, in whole tokens
        f"workload.load={LOAD}",
        f"sim.timeout={PATIENCE}",
        "sim.timeout_scope=queue",
        "degradation.pattern=none",
        "schedulers=[lc]",
        f"sim.duration={duration}",
        "sim.warmup=1",
    ]


def cpu() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def kernels(n: int, duration: float) -> dict:
    from otfr_vec import make_config
    from otfr_vec.engine import run
    from otfr_vec.kernels.structs import ARRIVED, TIMED_OUT

    run(make_config(overrides(4, 3.0)))  # compile or load the kernels first
    cfg = make_config(overrides(n, duration))
    t0 = cpu()
    res = run(cfg)
    el = cpu() - t0
    st = res.states["lc"]
    requests = int(st.cnt[ARRIVED])
    tree = bool(res.params["lc"].tree)
    return {"requests": requests, "cpu_s": el, "timed_out": int(st.cnt[TIMED_OUT]), "tree": tree}


def simpy_model(n: int, duration: float, seed: int = 0) -> dict:
    import simpy

    env = simpy.Environment()
    servers = [simpy.Resource(env, capacity=1) for _ in range(n)]
    rnd = random.Random(seed)
    level = [0] * n  # customers at each server (waiting + in service)
    buckets: list[list[int]] = [list(range(n))]  # servers by level
    where = list(range(n))  # position of each server in its bucket
    low = [0]  # the lowest non-empty level
    out = {"requests": 0, "timed_out": 0, "completed": 0}

    def move(j: int, new: int) -> None:
        old = level[j]
        b = buckets[old]
        last = b.pop()
        if last != j:
            b[where[j]] = last
            where[last] = where[j]
        while len(buckets) <= new:
            buckets.append([])
        where[j] = len(buckets[new])
        buckets[new].append(j)
        level[j] = new
        if new < low[0]:
            low[0] = new
        while not buckets[low[0]]:
            low[0] += 1

    def customer(j: int, service: float):
        with servers[j].request() as req:
            got = yield req | env.timeout(PATIENCE)
            if req not in got:
                out["timed_out"] += 1
            else:
                yield env.timeout(service)
                out["completed"] += 1
        move(j, level[j] - 1)

    lam = LOAD * n * RATE / PROMPT_MEAN

    def arrivals():
        while True:
            yield env.timeout(rnd.expovariate(lam))
            b = buckets[low[0]]
            j = b[rnd.randrange(len(b))]
            move(j, level[j] + 1)
            out["requests"] += 1
            tokens = max(1.0, round(rnd.expovariate(1.0 / PROMPT_MEAN)))  # as the workload
            env.process(customer(j, tokens / RATE))

    env.process(arrivals())
    t0 = cpu()
    env.run(until=duration)
    out["cpu_s"] = cpu() - t0
    return out


def compare(n: int, k_duration: float, s_duration: float) -> dict:
    """Both models at ``n`` workers; requests per CPU second and their ratio."""
    k = kernels(n, k_duration)
    s = simpy_model(n, s_duration)
    k_rate, s_rate = k["requests"] / k["cpu_s"], s["requests"] / s["cpu_s"]
    return {
        "workers": n,
        "kernel": {**k, "requests_per_s": k_rate, "ns_per_request": 1e9 / k_rate},
        "simpy": {**s, "requests_per_s": s_rate},
        "ratio": k_rate / s_rate,
    }


if __name__ == "__main__":
    import json

    n, kd, sd = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    t = time.perf_counter()
    r = compare(n, kd, sd)
    r["wall_s"] = time.perf_counter() - t
    print(json.dumps(r, default=float))
    _ = np  # numpy is imported so both models pay the same interpreter start-up
