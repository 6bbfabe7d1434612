"""Host side of a testbed run: plan it, start the conductor, guard every exit, read back.

:func:`run_policy` draws the scenario exactly as ``otfr_vec.simulate`` does
(:func:`otfr_vec.engine.make_scenario`: the same workload, degradation and labels from
``sim.seed``), writes the run's plan into a fresh run directory, and starts the conductor
(:mod:`.conductor`) in its own session and network namespace. While it runs, SIGINT and
SIGTERM are forwarded to it (it cleans up and exits), a watchdog bounds the run, and on
every way out the host checks that the namespace is gone: no process is left in it (any
straggler, necessarily one of ours, is killed), so neither are its qdiscs nor its IFB.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .conductor import launch_args, log_tail
from .netns import netns_alive, netns_pids, require_root

KV_PORT, HTTP_PORT = 9000, 8000
ROUTER_ADDR, LOADGEN_ADDR = "127.0.0.2", "127.0.0.3"
START_BUDGET_S = 90.0  # set-up and start of every process, on a loaded 2-core machine
GONE_WAIT_S = 5.0


class TestbedError(RuntimeError):
    """A testbed run that did not complete; the message says which process and why."""


class HostBusy(TestbedError):
    """The host has no CPU headroom: the run's timing would be the host's."""


class RunOutput(NamedTuple):
    records: dict  # the router's per-request arrays
    lateness: np.ndarray  # load-generator send lateness per request, s
    info: dict  # conductor: CPU, tc changes
    workload: dict  # the replayed arrivals (arrival, prompt, output, ingress)
    wall_s: float
    netns: int


def worker_addr(j: int) -> str:
    return f"127.1.{j // 200}.{j % 200 + 1}"


def rate_schedule(deg, duration: float, step: float) -> tuple[list, list]:
    """Times at which some pod's factor changes and the factors from then on.

    Step and flap edges are taken exactly; continuous patterns (ramp, spread) are
    sampled every ``step`` seconds.
    """
    cand = [np.arange(0.0, duration, step)]
    edges = [deg.onset, deg.onset + deg.duration, *deg.start.tolist()]
    if deg.pattern == "flap" and deg.period > 0:
        k = np.arange(0, int(deg.duration / deg.period) + 2)
        edges += (deg.onset + k * deg.period).tolist()
        edges += (deg.onset + (k + deg.duty) * deg.period).tolist()
    cand.append(np.asarray(edges, dtype=np.float64))
    t = np.unique(np.concatenate(cand))
    t = t[(t >= 0) & (t < duration)]
    f = deg.factor(t)
    keep = np.concatenate(([True], np.any(f[1:] != f[:-1], axis=1)))
    return t[keep].tolist(), f[keep].tolist()


def write_plan(cfg, policy: str, opts, run_dir: Path, sc) -> dict:
    """Plan files of one run: ``plan.json`` and the arrivals in ``workload.npz``."""
    from omegaconf import OmegaConf

    from ..scenario.workload import Stream

    lay = sc.layout
    req = Stream(sc.workload).until(cfg.sim.duration)
    keep = req.arrival < cfg.sim.duration
    wl = {
        "arrival": req.arrival[keep],
        "prompt": req.prompt[keep],
        "output": req.output[keep],
        "ingress": req.ingress[keep],
    }
    np.savez(run_dir / "workload.npz", **wl)
    times, factor = rate_schedule(sc.degradation, float(cfg.sim.duration), opts.tc_step)
    workers = [
        {
            "id": j,
            "role": "prefill" if j < lay.n_prefill else "decode",
            "pod": int(lay.pod[j]),
            "addr": worker_addr(j),
        }
        for j in range(lay.n_workers)
    ]
    plan = {
        "policy": policy,
        "config": OmegaConf.to_yaml(cfg, resolve=True),
        "workers": workers,
        "router_addr": ROUTER_ADDR,
        "loadgen_addr": LOADGEN_ADDR,
        "http_port": HTTP_PORT,
        "kv_port": KV_PORT,
        "prefill_tokens_per_s": float(cfg.service.prefill_tokens_per_s),
        "tpot": float(cfg.service.tpot),
        "decode_slots": int(cfg.service.decode_slots),
        "timeout_scope": str(cfg.sim.timeout_scope),
        "bw0": float(cfg.network.bw0),
        "schedule": {"times": times, "factor": factor},
        "duration": float(cfg.sim.duration),
        "tick": float(opts.tick if opts.tick is not None else cfg.sim.dt),
        "leaf": opts.leaf,
        "queue_packets": int(opts.queue_packets),
        "mtu": int(opts.mtu),
        "inject": opts.inject,
    }
    (run_dir / "plan.json").write_text(json.dumps(plan))
    return wl


def _say(msg: str) -> None:
    print(f"testbed: {msg}", file=sys.stderr, flush=True)


def ensure_gone(ns: int) -> None:
    """Wait until namespace ``ns`` holds no process; kill stragglers (ours) if it must."""
    end = time.monotonic() + GONE_WAIT_S
    while netns_alive(ns) and time.monotonic() < end:
        time.sleep(0.05)
    left = netns_pids(ns)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        time.sleep(0.2)
        if netns_alive(ns):
            raise TestbedError(f"network namespace {ns} still holds processes {netns_pids(ns)}")


def run_policy(cfg, policy: str, opts, sc=None, quiet: bool = False) -> RunOutput:
    """One testbed run of scheduler ``policy`` on configuration ``cfg``."""
    from ..engine import make_scenario
    from .headroom import idle_cores

    require_root()
    sc = sc if sc is not None else make_scenario(cfg)
    idle = max(0.0, idle_cores(1.0))
    if idle < opts.min_idle_cores:
        msg = (
            f"only {idle:.2f} of {os.cpu_count()} cores are idle (need {opts.min_idle_cores}): "
            "another job would set this run's timing"
        )
        if not opts.force:
            raise HostBusy(msg + "; stop it, or pass --force (the run is then flagged)")
        _say("warning: " + msg)
    run_dir = Path(tempfile.mkdtemp(prefix="otfr-testbed-"))
    wl = write_plan(cfg, policy, opts, run_dir, sc)
    log = open(run_dir / "conductor.log", "wb")
    proc = subprocess.Popen(
        launch_args("conductor", str(run_dir)),
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
        text=True,
    )
    got: list[str] = []

    def forward(signum, frame):
        got.append(signal.Signals(signum).name)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    ns = None
    t_start = time.monotonic()
    try:
        first = proc.stdout.readline().split()
        if len(first) == 2 and first[0] == "netns":
            ns = int(first[1])
        limit = START_BUDGET_S + float(cfg.sim.duration) + 60.0
        next_note = t_start + 10.0
        while proc.poll() is None:
            now = time.monotonic()
            if now - t_start > limit:
                _say(f"watchdog: the run exceeded {limit:.0f} s; stopping it")
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                break
            if not quiet and now >= next_note:
                _say(f"{policy}: {now - t_start:.0f} s of about {cfg.sim.duration + 5:.0f} s")
                next_note += 10.0
            time.sleep(0.1)
        code = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        if ns is not None:
            ensure_gone(ns)
    try:
        if got:
            raise KeyboardInterrupt(f"testbed run interrupted by {got[0]} (cleaned up)")
        if code != 0 or ns is None:
            tail = log_tail(run_dir / "conductor.log", 25)
            raise TestbedError(f"testbed run of {policy} failed (conductor exit {code}):\n{tail}")
        rec = dict(np.load(run_dir / "records.npz"))
        lg = np.load(run_dir / "loadgen.npz")
        info = json.loads((run_dir / "conductor.json").read_text())
        info["send_failures"] = int(lg["send_failures"])
        return RunOutput(rec, lg["lateness"], info, wl, time.monotonic() - t_start, ns)
    finally:
        if opts.keep:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            dest = Path(opts.keep) / f"{policy}-seed{cfg.sim.seed}-{stamp}-{os.getpid()}"
            shutil.copytree(run_dir, dest)  # a new folder: nothing there is overwritten
        shutil.rmtree(run_dir, ignore_errors=True)
