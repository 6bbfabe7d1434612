"""The testbed's configuration: the simulator's config, scaled to one 2-core machine.

A testbed run takes an ordinary otfr_vec configuration (``make_config``; every key means
what it means to the simulator) composed over :data:`SCALED`, the testbed's defaults, and
a few options of its own (:class:`Options`: how links are queued, when to call the host
the bottleneck).

**The scaling rule.** The study's cluster (32 x 32 workers, 1792 req/s, 655 MB KV caches
at 12.5 GB/s) cannot run on one machine; what decides its outcome can. Kept as in the
study:

1. *request time scales*: prefill 10k tokens/s, prompts lognormal with mean 2000
   tokens, outputs mean 256, TPOT 30 ms, 48 decode slots, the 3 s TTFT deadline; so a
   prefill takes 0.2 s on average and a decode 7.7 s, in real seconds;
2. *the network's busy fraction* ``rho_net = load x prefill_tokens_per_s x
   kv_bytes_per_token / bw0 = 0.18`` (README "The scale that decides everything");
3. *the load the healthy part carries once the degraded pods are avoided*:
   ``load / (1 - degraded share) = 0.8`` (the study: 0.7 / (28/32)).

Scaled: 4 pods x 2 workers (one prefill, one decode each: 8 worker processes), one pod
degraded (a quarter, so load 0.6 to keep rule 3; 12 req/s); bytes shrink by about
2,200 so that a link is ``bw0 = 5e6`` B/s (40 Mbit/s) and ``kv_bytes_per_token = 150``
(rule 2: 0.6 x 10,000 x 150 / 5e6 = 0.18); a mean KV cache is then 300 KB and moves in
60 ms (the study: 52 ms), 0.6 s at r = 0.10. Episode time scales shrink by 4 (the
study's 120 s degradation becomes 30 s in a 60 s run): label delay 7.5 s, refresh
1.25 s, telemetry delay 2.5 s, ramp 7.5 s, spread interval 2.5 s, flap period 5 s. The
risk price's half-life stays 5 s (a request time scale: near the deadline).

Override any key as with ``python -m otfr_vec.run``; keep rule 2 when changing
``network.*`` or ``workload.load`` (the run prints ``rho_net``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..config import ConfigError, make_config

# key=value overrides on top of conf/config.yaml, in the order of the rule above
SCALED = (
    "cluster.pods=4",
    "cluster.workers_per_pod=2",
    "workload.load=0.6",
    "network.bw0=5e6",
    "network.kv_bytes_per_token=150",
    "degradation.pods=1",
    "degradation.onset=15",
    "degradation.duration=30",
    "degradation.ramp=7.5",
    "degradation.spread_interval=2.5",
    "degradation.period=5",
    "health.delay=7.5",
    "health.refresh=1.25",
    "telemetry.delay=2.5",
    "sim.duration=60",
    "sim.warmup=5",
    "schedulers=[fault_aware_lc]",
)

MAX_WORKERS = 32  # worker processes: beyond this 2 cores cannot drive the run honestly
MAX_DURATION_S = 1800.0  # bounded runs


@dataclass
class Options:
    """Testbed options (``--name value`` on the command line)."""

    leaf: str = "pfifo"  # qdisc under every link's HTB class (this kernel: pfifo only)
    queue_packets: int = 100  # its limit, packets (150 KB: 30 ms at 40 Mbit/s)
    mtu: int = 1500  # loopback MTU in the namespace (an Ethernet link)
    tick: float | None = None  # router tick(now)/observe period, s; None: sim.dt
    tc_step: float = 0.1  # s between rate updates of continuous patterns (ramp, spread)
    min_idle_cores: float = 1.0  # refuse to start with fewer idle cores (measured 1 s)
    max_host_busy: float = 0.85  # host-bound if the CPUs are busier than this on average
    max_lateness: float = 0.01  # host-bound if send lateness or tick lag p99 exceeds (s)
    force: bool = False  # start even if the host is busy (the run is flagged)
    keep: str | None = None  # keep the run directory (plans, records, logs) here
    inject: str | None = None  # tests only: "router-exception"


def option_names() -> list[str]:
    return [f.name for f in fields(Options)]


def make_testbed_config(overrides=()):
    """The testbed's defaults (:data:`SCALED`) with ``overrides`` on top, validated."""
    cfg = make_config([*SCALED, *overrides])
    errors = unsupported(cfg)
    if errors:
        raise ConfigError("not supported by the testbed:\n  " + "\n  ".join(errors))
    return cfg


def unsupported(cfg) -> list[str]:
    """What the testbed cannot run, key by key (the simulator can run all of it)."""
    errs = []
    n = cfg.cluster.pods * cfg.cluster.workers_per_pod
    if n > MAX_WORKERS:
        errs.append(
            f"cluster.pods x cluster.workers_per_pod = {n}: at most {MAX_WORKERS} worker "
            "processes (each is a process; 2 cores drive about a dozen)"
        )
    if cfg.faults.workers:
        errs.append(
            f"faults.workers={cfg.faults.workers}: hard faults are not emulated by the "
            "testbed yet; use 0"
        )
    if cfg.cluster.prefill_fraction >= 1:
        errs.append("cluster.prefill_fraction=1: the testbed needs decode workers (KV moves)")
    if cfg.sim.duration > MAX_DURATION_S:
        errs.append(f"sim.duration={cfg.sim.duration}: at most {MAX_DURATION_S:.0f} s a run")
    return errs


def check_options(opts: Options) -> None:
    from .shaping import LEAVES

    errs = []
    if opts.leaf not in LEAVES:
        errs.append(f"--leaf {opts.leaf!r}: allowed values are {', '.join(LEAVES)}")
    if opts.queue_packets < 1:
        errs.append(f"--queue-packets {opts.queue_packets}: must be >= 1")
    if not 576 <= opts.mtu <= 65536:
        errs.append(f"--mtu {opts.mtu}: must be in [576, 65536]")
    if opts.tick is not None and not 0.001 <= opts.tick <= 1.0:
        errs.append(f"--tick {opts.tick}: must be in [0.001, 1] s")
    if not 0.001 <= opts.tc_step <= 10:
        errs.append(f"--tc-step {opts.tc_step}: must be in [0.001, 10] s")
    if opts.inject not in (None, "router-exception"):
        errs.append(f"--inject {opts.inject!r}: allowed values are router-exception")
    if errs:
        raise ConfigError("invalid testbed options:\n  " + "\n  ".join(errs))
