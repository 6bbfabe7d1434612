"""The conductor: owns one run's private network namespace and every process in it.

Started by the host side (:mod:`.bed`) in a new session. In order:

1. enters a fresh anonymous network namespace (:mod:`.netns`) and prints ``netns N``;
2. brings its loopback up and shapes the workers' links (:mod:`.shaping`);
3. starts the workers, the router and the load generator, each dying with it, and waits
   for every one to print ``ready``;
4. sends ``go T0``; then, until ``T0 + sim.duration``, applies the degradation schedule
   (the pods' bandwidth factors from :mod:`otfr_vec.scenario.degradation`, computed by the
   host, as HTB rate changes at their times), samples CPU every second and watches its
   children: one that exits ends the run;
5. asks the router and the load generator to write their records (``dump``), stops every
   child, removes the qdiscs and the IFB device, writes ``conductor.json`` and exits.

Every exit path goes through step 5's clean-up: a normal end, SIGINT or SIGTERM (turned
into an exception), a child that crashed, an error in the conductor itself. Whatever is
left when the last process of the namespace exits (even after SIGKILL) the kernel
removes with the namespace.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from .netns import enter_private_netns, netns_id

PKG_DIR = str(Path(__file__).resolve().parents[1])
# Start a testbed module without executing otfr_vec/__init__.py (which loads the whole
# simulator, numba included: 0.7 s and 165 MB a process); workers, load generator and
# conductor need only the standard library, numpy, aiohttp and pyroute2.
LIGHT = (
    "import sys, types, importlib; m = types.ModuleType('otfr_vec'); m.__path__ = [{pkg!r}]; "
    "sys.modules['otfr_vec'] = m; importlib.import_module('otfr_vec.testbed.' + sys.argv[1])"
    ".run(sys.argv[2:])"
)
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 2.0


class Interrupted(Exception):
    pass


class ChildDied(Exception):
    pass


def launch_args(module: str, *args: str, light: bool = True) -> list[str]:
    if light:
        return [sys.executable, "-c", LIGHT.format(pkg=PKG_DIR), module, *args]
    return [sys.executable, "-m", f"otfr_vec.testbed.{module}", *args]


def log_tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(lines[-n:])


class Conductor:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.plan = json.loads((run_dir / "plan.json").read_text())
        self.children: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.shaper = None
        self.info: dict = {"tc_changes": []}

    def spawn(self, name: str, module: str, *args: str, light: bool = True) -> None:
        log = self.run_dir / f"{name}.log"
        self.logs[name] = log
        env = dict(os.environ, OTFR_TESTBED_PARENT=str(os.getpid()))
        with open(log, "wb") as err:
            self.children[name] = subprocess.Popen(
                launch_args(module, str(self.run_dir), *args, light=light),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                text=True,
                bufsize=1,
            )

    def died(self) -> str | None:
        for name, proc in self.children.items():
            code = proc.poll()
            if code is not None:
                return f"{name} exited with code {code}\n{log_tail(self.logs[name])}"
        return None

    def expect(self, names, word: str, timeout: float) -> None:
        """Wait until every child in ``names`` printed ``word`` on stdout."""
        sel = selectors.DefaultSelector()
        waiting = set(names)
        for n in waiting:
            sel.register(self.children[n].stdout, selectors.EVENT_READ, n)
        end = time.monotonic() + timeout
        try:
            while waiting:
                left = end - time.monotonic()
                if left <= 0:
                    raise ChildDied(f"no {word!r} within {timeout:.0f} s from {sorted(waiting)}")
                for key, _ in sel.select(min(left, 0.5)):
                    line = key.fileobj.readline()
                    if not line:
                        raise ChildDied(self.died() or f"{key.data} closed its output")
                    if line.strip() == word:
                        waiting.discard(key.data)
                        sel.unregister(key.fileobj)
                why = self.died()
                if why:
                    raise ChildDied(why)
        finally:
            sel.close()

    def tell(self, names, line: str) -> None:
        for n in names:
            self.children[n].stdin.write(line + "\n")
            self.children[n].stdin.flush()

    # -- the run -------------------------------------------------------------------------

    def setup_network(self) -> None:
        from .shaping import Shaper

        p = self.plan
        ws = p["workers"]
        rate = {w["id"]: p["bw0"] * p["schedule"]["factor"][0][w["pod"]] for w in ws}
        senders = {w["id"]: w["addr"] for w in ws if w["role"] == "prefill"}
        receivers = {w["id"]: w["addr"] for w in ws if w["role"] == "decode"}
        self.shaper = Shaper(
            senders,
            receivers,
            rate,
            p["kv_port"],
            leaf=p["leaf"],
            mtu=p["mtu"],
            limit=p["queue_packets"],
        )

    def start(self) -> float:
        from .headroom import CpuMonitor

        p = self.plan
        for w in p["workers"]:
            self.spawn(f"worker-{w['id']}", "worker", str(w["id"]))
        self.spawn("router", "router", light=False)
        self.spawn("loadgen", "loadgen")
        self.expect(list(self.children), "ready", READY_TIMEOUT_S)
        pids = {n: c.pid for n, c in self.children.items()}
        pids["conductor"] = os.getpid()
        (self.run_dir / "pids.json").write_text(json.dumps(pids))
        self.monitor = CpuMonitor(pids)
        t0 = time.monotonic() + 0.2
        self.tell(list(self.children), f"go {t0!r}")
        print("running", flush=True)
        return t0

    def drive(self, t0: float) -> None:
        p = self.plan
        times = p["schedule"]["times"]
        factor = p["schedule"]["factor"]
        pods = {w["id"]: w["pod"] for w in p["workers"]}
        k = 1  # row 0 is in force from the start
        next_sample = t0
        end = t0 + p["duration"]
        while True:
            now = time.monotonic()
            if now >= end:
                return
            while k < len(times) and t0 + times[k] <= now:
                for wid, q in pods.items():
                    if factor[k][q] != factor[k - 1][q]:
                        self.shaper.set_rate(wid, p["bw0"] * factor[k][q])
                self.info["tc_changes"].append([times[k], time.monotonic() - t0 - times[k]])
                k += 1
            if now >= next_sample:
                self.monitor.sample()
                next_sample += 1.0
            why = self.died()
            if why:
                raise ChildDied(why)
            nxt = min(end, next_sample, t0 + times[k] if k < len(times) else end)
            time.sleep(max(0.0, min(nxt - time.monotonic(), 0.05)))

    def collect(self) -> None:
        self.tell(["router", "loadgen"], "dump")
        self.expect(["router", "loadgen"], "dumped", 30.0)
        self.info["cpu"] = self.monitor.summary()

    def stop_children(self) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        end = time.monotonic() + STOP_GRACE_S
        for proc in self.children.values():
            try:
                proc.wait(max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        try:
            self.stop_children()
        finally:
            if self.shaper is not None:
                self.shaper.close()
                self.shaper = None
            (self.run_dir / "conductor.json").write_text(json.dumps(self.info))


def _interrupt(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def run(argv: list[str]) -> None:
    enter_private_netns()
    from .netns import die_with_parent

    die_with_parent()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    print(f"netns {netns_id()}", flush=True)
    c = Conductor(Path(argv[0]))
    code = 0
    try:
        c.setup_network()
        t0 = c.start()
        c.drive(t0)
        c.collect()
    except Interrupted as sig:
        print(f"testbed: interrupted by {sig}; cleaning up", file=sys.stderr)
        code = 130 if str(sig) == "SIGINT" else 143
    except ChildDied as err:
        print(f"testbed: a process of the run failed: {err}", file=sys.stderr)
        code = 3
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish cleaning up first
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        c.close()
    print("done", flush=True)
    sys.exit(code)


if __name__ == "__main__":
    run(sys.argv[1:])
