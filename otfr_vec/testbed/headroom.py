"""CPU headroom: is the host, not the model, the bottleneck?

The testbed emulates compute by sleeping, so its own CPU use is overhead: HTTP, JSON,
TCP through two shaped stages, the router's decisions. Those only stay invisible while
the host has cores to spare and every process wakes up on time. This module measures
both, from ``/proc`` (no extra dependency):

* before a run, the host's idle CPU over a short window (:func:`idle_cores`): a run is
  refused when less than ``min_idle_cores`` are idle (another job is running; the timing
  would be the host's, not the model's);
* during a run, the host's busy fraction and the testbed processes' own CPU seconds,
  sampled every second by the conductor (:class:`CpuMonitor`);
* after a run, :func:`verdict` weighs them with the timing errors the processes measured
  themselves (load-generator send lateness, router tick lag) and says whether the run is
  *host-bound*: then the dataset is flagged and a warning printed.
"""

from __future__ import annotations

import os
import time

import numpy as np

CLK_TCK = os.sysconf("SC_CLK_TCK")


def host_times() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole host since boot, from ``/proc/stat``."""
    with open("/proc/stat") as fh:
        vals = [float(x) for x in fh.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)  # idle + iowait
    total = sum(vals[:8])  # guest time is already counted in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


def proc_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid``; NaN once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return float("nan")
    return (float(fields[11]) + float(fields[12])) / CLK_TCK


def idle_cores(seconds: float = 1.0) -> float:
    """Idle cores of the host, averaged over ``seconds``."""
    b0, t0 = host_times()
    time.sleep(seconds)
    b1, t1 = host_times()
    n = os.cpu_count() or 1
    if t1 <= t0:
        return float(n)
    return n * (1.0 - (b1 - b0) / (t1 - t0))


class CpuMonitor:
    """Samples the host's busy fraction and each process's CPU seconds."""

    def __init__(self, pids: dict[str, int]):
        self.pids = dict(pids)
        self.t: list[float] = []
        self.host: list[float] = []  # busy fraction of all cores since the last sample
        self.procs: dict[str, list[float]] = {k: [] for k in self.pids}
        self._last = host_times()

    def sample(self) -> None:
        now = host_times()
        db, dt = now[0] - self._last[0], now[1] - self._last[1]
        self._last = now
        self.t.append(time.monotonic())
        self.host.append(db / dt if dt > 0 else 0.0)
        for name, pid in self.pids.items():
            self.procs[name].append(proc_seconds(pid))

    def summary(self) -> dict:
        """Host busy fraction (mean, max) and the testbed's CPU in cores over the run."""
        if len(self.t) < 2:
            return {"host_busy_mean": float("nan"), "host_busy_max": float("nan"), "cores": {}}
        wall = self.t[-1] - self.t[0]
        cores = {}
        for name, vals in self.procs.items():
            v = np.asarray(vals)
            ok = np.isfinite(v)
            cores[name] = float((v[ok][-1] - v[ok][0]) / wall) if ok.sum() >= 2 else float("nan")
        host = np.asarray(self.host[1:])
        return {
            "host_busy_mean": float(host.mean()),
            "host_busy_max": float(host.max()),
            "testbed_cores": float(np.nansum(list(cores.values()))),
            "cores": cores,
            "wall_s": wall,
        }


def verdict(cpu: dict, lateness: np.ndarray, lag: np.ndarray, opts) -> list[str]:
    """Reasons why the host, not the model, may have set this run's timing (empty: none)."""
    why = []
    n = os.cpu_count() or 1
    if cpu.get("host_busy_mean", 0.0) > opts.max_host_busy:
        why.append(
            f"the host's CPUs were {100 * cpu['host_busy_mean']:.0f} % busy on average "
            f"(limit {100 * opts.max_host_busy:.0f} % of {n} cores)"
        )
    for name, x in (("load-generator send lateness", lateness), ("router tick lag", lag)):
        x = x[np.isfinite(x)]
        if x.size and np.quantile(x, 0.99) > opts.max_lateness:
            why.append(
                f"{name} p99 {1e3 * np.quantile(x, 0.99):.1f} ms exceeds "
                f"{1e3 * opts.max_lateness:.1f} ms"
            )
    return why
