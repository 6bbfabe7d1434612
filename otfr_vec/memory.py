"""What a run will hold in memory, estimated from its configuration before anything is
allocated, and the ceiling past which it is refused (``sim.memory_limit``).

A run's memory follows requests in flight and time-series windows, not steps: the
request pool of each scheduler grows to the requests alive at once (Little's law: the
arrival rate times how long a request lives), the series are ``windows x pods`` per
scheduler, labels are ``refreshes x workers``, and the workload is generated in blocks
(``scenario.workload.block_length``). Per-step values are only ever held for one engine
span (a few blocks, at most ``engine.SPAN_VALUES`` factors; on several threads ``1 +
engine.SPAN_LEAD`` spans, each span's arrivals with it) or one post-processing chunk. The
estimate adds every part as if all were alive at the peak, so it errs high;
``tests/test_memory.py`` checks it against the peak RSS of real runs.

The sizes of the kernel state are not restated here: they are measured from
:func:`otfr_vec.kernels.structs.new_state` itself, so a field added there is counted.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from typing import NamedTuple

from .engine import SPAN_LEAD, block_steps, span_blocks
from .kernels.structs import new_state
from .results import CHUNK_VALUES
from .scenario.layout import prefill_per_pod
from .scenario.workload import make_workload

GIB = 1 << 30
MIB = 1 << 20
# The interpreter with numpy, numba (kernels loaded from its cache), xarray, zarr, scipy
# and Hydra: 217 MiB peak RSS for a 1 x 2-worker, 30 s run (python -m otfr_vec.run
# cluster.pods=1 cluster.workers_per_pod=2 sim.duration=30, numpy 2.4, numba 0.68), and
# 235 MiB (VmHWM, benchmarks/simulate.py:peak_rss) for tests/test_memory.py's long run,
# with the kernels of every policy; the margin covers other library versions. Not
# counted: a first run on a fresh install compiles the kernels, about 300 MiB more
# (525-560 MiB for that run), once.
BASE_BYTES = 384 * MIB
# post-processing: a few float64 arrays of one chunk (results.CHUNK_VALUES values) at once
CHUNK_BYTES = 6 * 8 * CHUNK_VALUES
# per request of a workload block: 6 columns, 12 policy draws, draw temporaries, concat
ARRIVAL_BYTES = 300
TRACE_ROW_BYTES = 48  # per trace row kept: the trace and its window, 3 float64 columns each
LIMIT_SHARE = 0.8  # sim.memory_limit=null: this share of the machine's physical memory
FIXED = "fixed"


class Part(NamedTuple):
    what: str
    bytes: float
    keys: str  # the configuration keys it grows with


class Estimate(NamedTuple):
    parts: tuple  # of Part, largest first
    total: float  # bytes

    def describe(self, n: int = 3) -> str:
        """The ``n`` largest parts that configuration keys drive (5 % of the total or
        more), with those keys."""
        grown = [p for p in self.parts if p.keys != FIXED and p.bytes >= 0.05 * self.total]
        grown = grown[:n]
        return "; ".join(f"{p.what} {p.bytes / GIB:.3g} GiB ({p.keys})" for p in grown)


@lru_cache(maxsize=1)
def _state_sizes() -> dict:
    """Bytes of one scheduler's kernel state per worker, pod, window, window x pod and
    request place, measured by differencing :func:`new_state` at tiny sizes."""

    def size(w, p, n, c):
        return sum(a.nbytes for a in new_state(w, p, n, c))

    base, cap = size(1, 1, 1, 16), 16
    per_pod_win = size(1, 2, 2, cap) - size(1, 2, 1, cap) - size(1, 1, 2, cap) + base
    return {
        "worker": size(2, 1, 1, cap) - base,
        "pod": size(1, 2, 1, cap) - base - per_pod_win,
        "window": size(1, 1, 2, cap) - base - per_pod_win,
        "window_pod": per_pod_win,
        "place": (size(1, 1, 1, 2 * cap) - base) / cap,
    }


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def limit_bytes(cfg) -> tuple[float | None, str]:
    """The ceiling of ``cfg`` in bytes (None: no ceiling) and how it was set."""
    limit = cfg.sim.memory_limit
    if limit is not None:
        return limit * GIB, f"sim.memory_limit={limit!r} GiB"
    phys = physical_memory()
    if phys is None:
        return None, "no ceiling: the machine's memory is unknown"
    return LIMIT_SHARE * phys, (
        f"sim.memory_limit=null: {LIMIT_SHARE:.0%} of this machine's {phys / GIB:.1f} GiB"
    )


def _rate_key(wl) -> str:
    """The key that sets the arrival rate, with its value."""
    if wl.kind == "trace":
        for key in ("trace_rate", "trace_load"):
            if wl[key] is not None:
                return f"workload.{key}={wl[key]!r}"
        return f"workload.trace_speedup={wl.trace_speedup!r}"
    if wl.rate is not None:
        return f"workload.rate={wl.rate!r}"
    return f"workload.load={wl.load!r}"


def estimate(cfg) -> Estimate:
    """Peak memory of simulating ``cfg`` (validated; a trace is read, from its cache)."""
    sim, cl = cfg.sim, cfg.cluster
    n_pods, n_workers = cl.pods, cl.pods * cl.workers_per_pod  # no layout arrays: sizes only
    workload = make_workload(cfg, cl.pods * prefill_per_pod(cl))
    rate = float(workload.rate)
    if cfg.workload.kind == "trace":
        mean_out = float(workload.window.output.mean())
        trace_rows = workload.window.arrival.size
    else:
        mean_out, trace_rows = float(cfg.workload.output_mean), 0
    n_sched = len(cfg.schedulers)
    rate_key = _rate_key(cfg.workload)
    n_win = math.ceil(sim.duration / sim.window - 1e-9)
    n_ref = math.ceil(sim.duration / cfg.health.refresh) + 1
    steps = block_steps(sim.dt, rate)
    units = n_pods if cfg.health.granularity == "pod" else n_workers
    sz = _state_sizes()
    # a request lives at most its deadline plus its decode; the pool also holds one engine
    # block of arrivals, and it doubles when it grows (so up to twice what it needs)
    lives = sim.timeout + mean_out * cfg.service.tpot
    if sim.timeout_scope == "e2e":
        lives = sim.timeout
    places = 2 * (rate * (steps * sim.dt + lives) + 1024)
    series = n_win * n_pods * 8
    held = 1 + SPAN_LEAD  # spans of inputs held at once on several threads (one on one)
    parts = [
        Part(
            "request pools",
            n_sched * places * sz["place"],
            f"{rate_key}, sim.timeout, workload.output_mean x service.tpot, schedulers",
        ),
        Part(
            "time series",
            n_sched * (n_win * n_pods * sz["window_pod"] + n_win * sz["window"])
            + n_sched * 4 * series  # the dataset's per-scheduler copies
            + 4 * series,  # bandwidth_factor, health_label and their sums
            "sim.duration / sim.window x cluster.pods, schedulers",
        ),
        Part(
            "arrival blocks",
            held * rate * workload.block_s * ARRIVAL_BYTES + trace_rows * TRACE_ROW_BYTES,
            rate_key,
        ),
        Part(
            "health labels",
            n_ref * (units * 45 + n_workers * 3),
            "sim.duration / health.refresh x workers (health.granularity)",
        ),
        Part(
            "workers",
            n_sched * (n_workers * (sz["worker"] + 8) + n_pods * (sz["pod"] + 8)),
            "cluster.pods x cluster.workers_per_pod, schedulers",
        ),
        Part(
            "policy state",
            sum(_policy_bytes(cfg, s, n_workers) for s in cfg.schedulers),
            "cluster.pods x cluster.workers_per_pod, schedulers (their own state)",
        ),
        Part(
            "per-step inputs",
            held * 6 * 8 * n_pods * steps * span_blocks(steps, n_pods) + CHUNK_BYTES,
            "cluster.pods / sim.dt",
        ),
        Part("interpreter and libraries", BASE_BYTES, FIXED),
    ]
    parts.sort(key=lambda p: -p.bytes)
    return Estimate(tuple(parts), float(sum(p.bytes for p in parts)))


def _policy_bytes(cfg, scheduler: str, n_workers: int) -> float:
    """The arrays a policy declares for its own state (otfr_vec.policies)."""
    from .engine import bind

    i_rows, f_rows, gi_rows, gf_rows, width = bind(cfg, scheduler).shape
    return 8.0 * ((i_rows + f_rows) * n_workers + (gi_rows + gf_rows) * max(width, 1))


def memory_errors(cfg) -> list[str]:
    """A message if the estimated peak of ``cfg`` exceeds its ceiling, else nothing."""
    limit, how = limit_bytes(cfg)
    if limit is None:
        return []
    est = estimate(cfg)
    if est.total <= limit:
        return []
    return [
        f"this run needs an estimated {est.total / GIB:.3g} GiB of memory, above the "
        f"ceiling of {limit / GIB:.3g} GiB ({how}); most of it: "
        f"{est.describe() or 'the interpreter and libraries'}. Lower those keys, or raise "
        "sim.memory_limit (GiB) if the machine has the memory"
    ]


__all__ = [
    "Estimate",
    "Part",
    "estimate",
    "limit_bytes",
    "memory_errors",
    "physical_memory",
]
