"""A prefill or decode worker: an HTTP server whose compute is timed sleeps.

The simulator's semantics (otfr_vec/kernels/step.py, README "What is simulated"), here in
real time on ``CLOCK_MONOTONIC``:

* **prefill worker** -- ``POST /prefill`` queues a request FIFO; the worker serves one at
  a time for ``prompt_tokens / prefill_tokens_per_s`` seconds. Service times chain on the
  scheduled end of the previous one, not on when the event loop woke up, so a late wake-up
  delays a notification, never the emulated compute. The answer comes when the prefill
  ends (``prefilled``) or the request times out in the queue or in service (``timeout``).
  The KV cache, ``prompt_tokens x kv_bytes_per_token`` bytes, then waits in the worker
  until the decode worker pulls it over TCP from the worker's KV port (the bytes leave
  through the worker's shaped sending end; see :mod:`.shaping`).
* **decode worker** -- ``POST /decode`` answers with a stream of events (one JSON object
  a line): the request waits FIFO for one of ``decode_slots`` (``tx``: a slot is reserved
  and the transfer starts), the KV cache arrives (``kv``), the first token is out
  ``tpot`` later (``first``), then one token per ``tpot`` until ``output_tokens`` are out
  (``done``; the slot is free). A transfer is a real TCP connection to the prefill
  worker's KV port reading every byte.
* **deadlines** (``sim.timeout`` from the router's receipt of the request, absolute on
  the shared clock) are enforced where the request stands, as ``sim.timeout_scope`` says:
  ``ttft`` drops anything whose first token is not out (queued, in prefill service, its
  KV waiting or moving, waiting for a slot, or waiting for a first token that would come
  too late: the slot stays held until the deadline, as in the model); ``queue`` drops
  only what is still waiting (prefill not started, decode slot not yet given); ``e2e``
  also drops what is still decoding. A dropped request frees its queue place, transfer
  and slot, and the worker reports ``timeout`` with the state it was in.

Run as ``python -m otfr_vec.testbed.worker RUN_DIR WORKER_ID`` by the conductor.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import deque

from aiohttp import web

from .proc import bootstrap, fatal_on_error, ready, run_main, stdin_lines, wait_go

CHUNK = 1 << 16
KV_LOST_GRACE = 0.005  # s: a KV connection cut this close to the deadline is the deadline


class Job:
    __slots__ = ("i", "prompt", "deadline", "kv_bytes", "enq", "fut", "state", "writer")

    def __init__(self, i, prompt, deadline, kv_bytes, enq, fut):
        self.i, self.prompt, self.deadline, self.kv_bytes = i, prompt, deadline, kv_bytes
        self.enq, self.fut, self.state, self.writer = enq, fut, "queued", None


def _abort(job: Job) -> None:
    """Cut the KV connection of ``job`` if one is open."""
    if job.writer is not None and not job.writer.transport.is_closing():
        job.writer.transport.abort()


class Prefill:
    def __init__(self, plan: dict, me: dict):
        self.rate = float(plan["prefill_tokens_per_s"])
        self.scope = plan["timeout_scope"]
        self.queue: deque[Job] = deque()
        self.kv: dict[int, Job] = {}  # prefilled, KV not yet gone
        self.wake = asyncio.Event()
        self.free_at = 0.0
        self.current: asyncio.Future | None = None
        self.buf = memoryview(os.urandom(CHUNK))  # the KV cache's bytes (incompressible)
        self.loop = asyncio.get_running_loop()

    # -- HTTP ----------------------------------------------------------------------------

    async def prefill(self, request: web.Request) -> web.Response:
        b = await request.json()
        job = Job(
            int(b["i"]),
            float(b["prompt"]),
            float(b["deadline"]),
            int(b["kv_bytes"]),
            self.loop.time(),
            self.loop.create_future(),
        )
        self.queue.append(job)
        self.wake.set()
        timer = self.loop.call_at(job.deadline, self.expire, job)
        try:
            return web.json_response(await job.fut)
        finally:
            if job.state != "kv":
                timer.cancel()

    async def drop(self, request: web.Request) -> web.Response:
        """The router gave up on a request: forget its KV cache (idempotent)."""
        job = self.kv.pop(int((await request.json())["i"]), None)
        if job is not None:
            job.state = "dropped"
            _abort(job)
        return web.json_response({"ok": True})

    def expire(self, job: Job) -> None:
        now = self.loop.time()
        if job.state == "queued":
            self.queue.remove(job)
        elif job.state == "serving" and self.scope != "queue":
            self.free_at = job.deadline  # the next request starts at this deadline
            self.current.cancel()
        elif job.state == "kv" and self.scope != "queue":
            self.kv.pop(job.i, None)
            job.state = "dropped"
            _abort(job)
            return
        else:
            return
        job.state = "dropped"
        job.fut.set_result({"ev": "timeout", "t": job.deadline, "at": "PQ", "now": now})

    # -- compute -------------------------------------------------------------------------

    async def serve(self) -> None:
        while True:
            while not self.queue:
                self.wake.clear()
                await self.wake.wait()
            job = self.queue.popleft()
            start = max(job.enq, self.free_at)
            fin = start + job.prompt / self.rate
            job.state = "serving"
            self.current = asyncio.ensure_future(asyncio.sleep(max(0.0, fin - self.loop.time())))
            try:
                await self.current
            except asyncio.CancelledError:
                if job.state == "dropped":
                    continue  # timed out in service
                raise
            self.free_at = fin
            job.state = "kv"
            self.kv[job.i] = job
            job.fut.set_result({"ev": "prefilled", "t": fin, "start": start})

    async def kv_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        """A decode worker pulls request ``i``'s KV cache: ``i\\n``, then every byte."""
        job = None
        try:
            i = int((await reader.readline()) or -1)
            job = self.kv.get(i)
            if job is None:
                return
            job.writer = writer
            n = job.kv_bytes
            while n > 0:
                k = min(n, CHUNK)
                writer.write(self.buf[:k])
                n -= k
                await writer.drain()
            self.kv.pop(i, None)
            job.state = "sent"
        except (ConnectionError, ValueError):
            pass
        finally:
            if job is not None:
                job.writer = None
            writer.close()


class Slots:
    """``n`` decode slots given FIFO to waiters."""

    def __init__(self, n: int):
        self.free = n
        self.waiters: deque[asyncio.Future] = deque()

    async def acquire(self) -> None:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # given a slot at the moment it was cancelled
            else:
                self.waiters.remove(fut)
            raise

    def release(self) -> None:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.free += 1


class KVLost(Exception):
    pass


class Decode:
    def __init__(self, plan: dict, me: dict):
        self.tpot = float(plan["tpot"])
        self.scope = plan["timeout_scope"]
        self.kv_port = int(plan["kv_port"])
        self.addr = me["addr"]
        self.slots = Slots(int(plan["decode_slots"]))
        self.loop = asyncio.get_running_loop()

    async def sleep_until(self, t: float) -> None:
        await asyncio.sleep(max(0.0, t - self.loop.time()))

    async def pull(self, src: str, i: int, nbytes: int) -> float:
        reader, writer = await asyncio.open_connection(src, self.kv_port, local_addr=(self.addr, 0))
        try:
            writer.write(f"{i}\n".encode())
            got = 0
            while got < nbytes:
                b = await reader.read(1 << 20)
                if not b:
                    raise KVLost(f"request {i}: KV connection closed after {got} of {nbytes} B")
                got += len(b)
            return self.loop.time()
        finally:
            writer.transport.abort()

    async def decode(self, request: web.Request) -> web.StreamResponse:
        b = await request.json()
        i, deadline = int(b["i"]), float(b["deadline"])
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)

        async def emit(ev: str, t: float, **kw) -> None:
            await resp.write((json.dumps({"ev": ev, "t": t, **kw}) + "\n").encode())

        state, held = "DWAIT", False
        try:
            async with asyncio.timeout_at(deadline) as cm:
                await self.slots.acquire()
                held = True
                if self.scope == "queue":
                    cm.reschedule(None)  # admitted: the rest is service, it finishes
                state = "TX"
                await emit("tx", self.loop.time())
                fin = await self.pull(b["src"], i, int(b["kv_bytes"]))
                state = "FTWAIT"
                await emit("kv", fin)
                ft = fin + self.tpot
                end = fin + float(b["output"]) * self.tpot
                await self.sleep_until(ft)
                state = "DEC"
                if self.scope != "e2e":
                    cm.reschedule(None)
                await emit("first", ft, ok=self.scope != "e2e" or end <= deadline)
                await self.sleep_until(end)
                await emit("done", end)
        except TimeoutError:
            await emit("timeout", deadline, at=state)
        except KVLost as err:
            kind = "timeout" if self.loop.time() >= deadline - KV_LOST_GRACE else "failure"
            await emit(kind, self.loop.time(), at=state, why=str(err))
        finally:
            if held:
                self.slots.release()
        return resp


async def main(argv: list[str]) -> None:
    run_dir, plan = bootstrap(argv)
    me = plan["workers"][int(argv[1])]
    app = web.Application()
    lines = stdin_lines()
    if me["role"] == "prefill":
        w = Prefill(plan, me)
        app.add_routes([web.post("/prefill", w.prefill), web.post("/drop", w.drop)])
        await asyncio.start_server(w.kv_conn, me["addr"], int(plan["kv_port"]))
    else:
        w = Decode(plan, me)
        app.add_routes([web.post("/decode", w.decode)])
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, me["addr"], int(plan["http_port"])).start()
    ready()
    await wait_go(lines)
    if me["role"] == "prefill":
        server = asyncio.ensure_future(w.serve())
        server.add_done_callback(lambda t: fatal_on_error(t, f"worker {argv[1]}"))
    async for _ in lines:  # runs until the conductor closes stdin or kills us
        pass


def run(argv: list[str]) -> None:
    run_main(main, argv, f"worker {argv[1]}")


if __name__ == "__main__":
    run(sys.argv[1:])
