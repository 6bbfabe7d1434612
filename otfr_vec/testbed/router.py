"""The testbed's router process: an aiohttp server routing every request through
``otfr_vec.online`` (see :mod:`.routing`) over HTTP to prefill and decode workers.

One request's life, as the simulator has it (README "What is simulated"):

1. ``POST /generate`` from the load generator; its receipt is the request's arrival
   ``a`` and its deadline is ``a + sim.timeout``;
2. ``choose("prefill", ingress)``, ``routed(p)``; ``POST /prefill`` to ``p`` (FIFO
   there); the answer comes when the prefill ends;
3. ``choose("decode", pod of p)``, ``routed(d)``; ``POST /decode`` to ``d``, which streams
   the request's events: slot reserved and KV transfer started (``tx``), KV cache arrived
   (``kv``: it has left ``p``, ``released(p)``), first token (``first``: the request
   succeeded, ``outcome(p)`` and ``outcome(d)``), last token (``done``: ``released(d)``);
4. a ``timeout`` or ``failure`` from a worker resolves the request as such for both of its
   workers and releases what it held. A backstop at ``deadline + BACKSTOP_S`` resolves a
   request no worker reported on (counted; none is expected; not in the ``queue`` scope,
   where what is in service legitimately finishes after the deadline).

Outcomes carry each leg's latency as the simulator's policies see it (docs/POLICIES.md):
the prefill leg from the request's receipt until its KV cache left ``p`` (a success) or
it resolved; the decode leg from the decode decision until the first token or the
resolution; and each worker's load when the request was routed to it (``rif``).

Every ``tick`` seconds the router calls ``tick(now)`` and ``observe(now, ...)`` with what
the testbed can supply: the health labels in force (the scenario's own label draws, the
truth for a policy that the simulator gives the truth), the observed bandwidth factors
when ``telemetry.mode`` is not ``none``, each worker's compute-busy fraction (a prefill
worker is busy while it holds a queued or in-service prefill, a decode worker's fraction
is its decoding sequences / decode_slots: the kernel's definitions) and the engine
metrics a scraping policy reads, as the router knows them from its own messages
(prefill: requests queued or in service; decode: requests waiting for a slot, slots in
use, sequences decoding). Sequences decoding are also reported at every first and last
token (a latency-aware balancer counts pending requests until their first byte). The
router keeps its prices per ``sim.window`` for the dataset's ``price``.

On ``dump`` (stdin) the router writes its per-request records to ``records.npz`` and
answers ``dumped``. Any exception ends the process (and so the run) loudly.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from .proc import bootstrap, fatal, ready, run_main, say, stdin_lines, wait_go

BACKSTOP_S = 1.0
OUTCOME = {"pending": 0, "success": 1, "timeout": 2, "failure": 3}
WHERE = {"": 0, "PQ": 1, "DWAIT": 2, "TX": 3, "FTWAIT": 4, "DEC": 5, "router": 6}
TIMES = (
    "recv",
    "route_p",
    "prefilled",  # the worker's time: prefill ended
    "prefill_rx",  # the router's: it learnt that
    "route_d",
    "tx",
    "kv",
    "first",
    "first_rx",
    "end",
    "resolve",
)


class Records:
    def __init__(self, n: int):
        self.t = {k: np.full(n, np.nan) for k in TIMES}
        self.p = np.full(n, -1, np.int64)
        self.d = np.full(n, -1, np.int64)
        self.outcome = np.zeros(n, np.int8)
        self.where = np.zeros(n, np.int8)
        self.decide_ns: list[int] = []
        self.price = np.zeros((0, 0))  # per window and pod: the router's mean risk price
        self.lag: list[float] = []
        self.backstops = 0

    def save(self, path) -> None:
        np.savez(
            path,
            **{f"t_{k}": v for k, v in self.t.items()},
            p=self.p,
            d=self.d,
            outcome=self.outcome,
            where=self.where,
            decide_ns=np.asarray(self.decide_ns, np.int64),
            lag=np.asarray(self.lag),
            backstops=np.int64(self.backstops),
            price=self.price,
        )


class BedRouter:
    def __init__(self, plan: dict, cfg, n_requests: int):
        from ..engine import make_scenario
        from .routing import make_router, sees_truth

        self.plan, self.cfg = plan, cfg
        self.r = make_router(plan["policy"], cfg)
        sc = make_scenario(cfg)
        lay = sc.layout
        self.pod = lay.pod
        self.n_prefill, self.n_workers, self.n_win = lay.n_prefill, lay.n_workers, sc.n_win
        self.deg = sc.degradation
        self.labels = sc.labels
        self.truth_labels, self.true_bw = sees_truth(plan["policy"], cfg)
        self.threshold = float(cfg.health.threshold)
        self.urls = [f"http://{w['addr']}:{plan['http_port']}" for w in plan["workers"]]
        self.addrs = [w["addr"] for w in plan["workers"]]
        self.timeout = float(cfg.sim.timeout)
        self.scope = str(cfg.sim.timeout_scope)
        self.kv_per_token = float(cfg.network.kv_bytes_per_token)
        self.rec = Records(n_requests)
        self.held_p = np.zeros(self.n_workers, np.int64)  # prefills queued or in service
        self.waiting = np.zeros(self.n_workers, np.int64)  # decode: waiting for a slot
        self.slotted = np.zeros(self.n_workers, np.int64)  # decode: slots in use
        self.decoding = np.zeros(self.n_workers, np.int64)
        self.slots = float(cfg.service.decode_slots)
        self.t0 = 0.0
        self.tasks: set[asyncio.Task] = set()
        self.closing = False
        self.session: ClientSession | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def choose(self, role: str, pod: int, now: float) -> int:
        t = time.perf_counter_ns()
        w = self.r.choose(role, pod, now)
        self.rec.decide_ns.append(time.perf_counter_ns() - t)
        return int(w)

    # -- one request ---------------------------------------------------------------------

    async def generate(self, request: web.Request) -> web.Response:
        b = await request.json()
        i = int(b["i"])
        self.rec.t["recv"][i] = self.now()
        done = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self.life(i, b, done))
        self.tasks.add(task)
        task.add_done_callback(self._finished)
        return web.json_response(await done)

    def _finished(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and not self.closing:
            fatal("router", task.exception())

    def resolve(self, i, kind, t, where, p, d, done, rif=(0, 0)) -> None:
        rec = self.rec
        if rec.outcome[i] != 0:
            return
        rec.outcome[i] = OUTCOME[kind]
        rec.where[i] = WHERE[where]
        rec.t["resolve"][i] = t
        now = self.now()
        latency = t - rec.t["recv"][i]
        ok = kind == "success"
        legs = (  # (worker, leg latency): see the module docstring
            (p, (rec.t["kv"][i] if ok else t) - rec.t["recv"][i]),
            (d, t - rec.t["route_d"][i]),
        )
        for (w, lat), r in zip(legs, rif, strict=True):
            if w >= 0:
                self.r.outcome(w, kind, max(float(lat), 0.0), now, rif=r)
        if not done.done():
            done.set_result({"i": i, "outcome": kind, "latency": latency})

    async def life(self, i: int, b: dict, done: asyncio.Future) -> None:
        rec, r = self.rec, self.r
        a = rec.t["recv"][i]
        deadline = self.t0 + a + self.timeout
        now = self.now()
        p = self.choose("prefill", int(b["ingress"]), now)
        rif = [r.routed(p, now), 0]
        rec.p[i], rec.t["route_p"][i] = p, now
        kv_bytes = int(round(float(b["prompt"]) * self.kv_per_token))
        p_held, d, d_held, d_wait, d_slot = True, -1, False, False, False
        try:
            # queue scope: what is in service finishes after the deadline, no backstop
            limit = None if self.scope == "queue" else deadline + BACKSTOP_S
            async with asyncio.timeout_at(limit) as backstop:
                self.held_p[p] += 1
                try:
                    async with self.session.post(
                        self.urls[p] + "/prefill",
                        json={
                            "i": i,
                            "prompt": b["prompt"],
                            "deadline": deadline,
                            "kv_bytes": kv_bytes,
                        },
                    ) as resp:
                        ev = await resp.json()
                finally:
                    self.held_p[p] -= 1
                if ev["ev"] == "timeout":
                    self.resolve(i, "timeout", ev["t"] - self.t0, "PQ", p, -1, done, rif)
                    return
                rec.t["prefilled"][i] = ev["t"] - self.t0
                now = self.now()
                rec.t["prefill_rx"][i] = now
                d = self.choose("decode", int(self.pod[p]), now)
                rif[1] = r.routed(d, now)
                d_held = d_wait = True
                self.waiting[d] += 1
                rec.d[i], rec.t["route_d"][i] = d, now
                body = {
                    "i": i,
                    "src": self.addrs[p],
                    "kv_bytes": kv_bytes,
                    "output": b["output"],
                    "deadline": deadline,
                }
                async with self.session.post(self.urls[d] + "/decode", json=body) as resp:
                    async for line in resp.content:
                        ev = json.loads(line)
                        kind, t = ev["ev"], ev["t"] - self.t0
                        if kind == "tx":
                            rec.t["tx"][i] = t
                            self.waiting[d] -= 1
                            self.slotted[d] += 1
                            d_wait, d_slot = False, True
                        elif kind == "kv":
                            rec.t["kv"][i] = t
                            r.released(p, self.now())
                            p_held = False
                        elif kind == "first":
                            rec.t["first"][i] = t
                            rec.t["first_rx"][i] = self.now()
                            self.decoding[d] += 1
                            r.observe(self.now(), decoding=self.decoding)
                            if ev["ok"]:
                                self.resolve(i, "success", t, "", p, d, done, rif)
                                backstop.reschedule(None)  # resolved: decoding may go on
                        elif kind == "done":
                            rec.t["end"][i] = t
                            self.decoding[d] -= 1
                            self.slotted[d] -= 1
                            d_slot = False
                            r.observe(self.now(), decoding=self.decoding)
                            r.released(d, self.now())
                            d_held = False
                        else:  # timeout | failure
                            if np.isfinite(rec.t["first"][i]):
                                self.decoding[d] -= 1
                            self.resolve(i, kind, t, ev["at"], p, d, done, rif)
                            break
        except TimeoutError:
            self.rec.backstops += 1
            self.resolve(i, "timeout", deadline - self.t0, "router", p, d, done, rif)
        finally:
            now = self.now()
            if d_wait:
                self.waiting[d] -= 1
            if d_slot:  # the decode worker frees the slot of a request it dropped
                self.slotted[d] -= 1
            if p_held:
                r.released(p, now)
                if np.isfinite(rec.t["prefilled"][i]):  # its KV cache may still be at p
                    await self._drop(p, i)
            if d_held:
                r.released(d, now)

    async def _drop(self, p: int, i: int) -> None:
        async with self.session.post(self.urls[p] + "/drop", json={"i": i}) as resp:
            await resp.read()

    # -- clocks and observations ---------------------------------------------------------

    def observe(self, now: float) -> None:
        cfg = self.cfg
        f = self.deg.factor(np.array([now]))[0]
        if self.truth_labels:
            labels = (f[self.pod] < self.threshold).astype(np.int8)
        else:
            k = min(int(now / cfg.health.refresh), self.labels.shape[0] - 1)
            labels = self.labels[max(k, 0)]
        bandwidth = None
        if self.true_bw or cfg.telemetry.mode == "direct":
            bandwidth = f
        elif cfg.telemetry.mode == "delayed":
            bandwidth = self.deg.factor(np.array([now - cfg.telemetry.delay]))[0]
        prefill = np.arange(self.n_workers) < self.n_prefill
        busy = np.where(prefill, (self.held_p > 0).astype(np.float64), self.decoding / self.slots)
        self.r.observe(
            now,
            bandwidth=bandwidth,
            labels=labels,
            busy=busy,
            queue=np.where(prefill, self.held_p, self.waiting),
            slots=self.slotted,
            decoding=self.decoding,
        )

    async def ticker(self, tick: float) -> None:
        loop = asyncio.get_running_loop()
        k = 0
        while True:
            k += 1
            target = self.t0 + k * tick
            await asyncio.sleep(max(0.0, target - loop.time()))
            self.rec.lag.append(loop.time() - target)
            now = self.now()
            self.r.tick(now)
            self.observe(now)


async def main(argv: list[str]) -> None:
    run_dir, plan = bootstrap(argv)
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(plan["config"])
    n = int(np.load(run_dir / "workload.npz")["arrival"].size)
    bed = BedRouter(plan, cfg, n)
    app = web.Application()
    app.add_routes([web.post("/generate", bed.generate)])
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, plan["router_addr"], int(plan["http_port"])).start()
    bed.session = ClientSession(
        connector=TCPConnector(limit=0, force_close=False), timeout=ClientTimeout(total=None)
    )
    lines = stdin_lines()
    ready()
    bed.t0 = await wait_go(lines)
    bed.observe(0.0)
    ticker = asyncio.ensure_future(bed.ticker(float(plan["tick"])))
    ticker.add_done_callback(bed._finished)
    if plan.get("inject") == "router-exception":  # tests: an exception inside the router
        boom = asyncio.ensure_future(_boom(bed.t0 + 1.0))
        boom.add_done_callback(bed._finished)
    async for line in lines:
        if line == "dump":
            bed.closing = True
            bed.rec.price = bed.r.price_series(bed.n_win)
            bed.rec.save(run_dir / "records.npz")
            say("dumped")
    bed.closing = True


async def _boom(at: float) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    raise RuntimeError("injected router exception (test)")


def run(argv: list[str]) -> None:
    run_main(main, argv, "router")


if __name__ == "__main__":
    run(sys.argv[1:])
