"""Prequal (``prequal``): probe requests-in-flight and latency, pick hot-cold.

Per decision the router probes ``probes_per_query`` random workers (answers at once:
probes are small and the model gives them no latency) and keeps a pool of recent probes;
the probe of a worker whose RIF is below the ``q_rif`` quantile of recent RIFs (cold) with
the lowest latency wins, or, when every probe is hot, the lowest RIF. A worker's latency
estimate is the median of the last ``latency_samples`` completed requests that arrived at
its current RIF (levels above ``rif_levels - 1`` pooled; the nearest level with samples
when that one has none), measured by the worker itself: a worker whose requests time out
reports the latencies of the ones it still completes. Probe reuse follows
``b_reuse = max(1, (1 + reuse_delta) / ((1 - m / n) r_probe - r_remove))``, randomly
rounded (m pool size, n workers of the group).

Sources: Wydrowski et al., "Load is not what you should balance: Introducing Prequal"
(NSDI 2024, arXiv 2312.10172), through two implementations that quote it:
sathwick-p/prequal (benchmark/paper-divergences.md) and prequal-rs (crates/prequal-core:
config.rs, pool.rs, balancer.rs). The paper's own text was not available to us.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kernels.policy import prequal as K
from ..kernels.policy.ids import PREQUAL
from .binding import Binding, hooked, knob, knob_vector
from .registry import Policy, register

SRC = "Prequal (NSDI'24) as quoted by sathwick-p/prequal and prequal-rs"


@dataclass
class Prequal:
    probes_per_query: int = knob(3, "workers probed per decision (at most 3 here)", SRC, 1, 3)
    pool_size: int = knob(16, "probes kept per role group", SRC, 1, 64)
    max_age: float = knob(1.0, "s after which a probe is dropped", SRC, 0, None, True)
    q_rif: float = knob(0.84, "RIF quantile above which a probe is hot (2^-0.25)", SRC, 0, 1)
    rif_history: int = knob(64, "probed RIFs behind the quantile", "prequal-rs (K = 64)", 1, 256)
    reuse_delta: float = knob(1.0, "delta of the probe reuse budget b_reuse", SRC, 0)
    remove_per_query: int = knob(1, "probes removed after each decision", SRC, 0, 4)
    latency_samples: int = knob(
        4, "completions per RIF level behind a worker's median latency", "this model", 1, 64
    )
    rif_levels: int = knob(64, "RIF levels a worker keeps latencies for", "this model", 1, 1024)


INDEX = {
    K.K_PROBES: "probes_per_query",
    K.K_POOL: "pool_size",
    K.K_MAX_AGE: "max_age",
    K.K_QRIF: "q_rif",
    K.K_RING: "rif_history",
    K.K_DELTA: "reuse_delta",
    K.K_REMOVE: "remove_per_query",
    K.K_LAT_N: "latency_samples",
    K.K_LEVELS: "rif_levels",
}


def bind(cfg, knobs: Prequal) -> Binding:
    width = max(knobs.pool_size, knobs.rif_history, knobs.latency_samples, K.RIF_BINS)
    levels = knobs.rif_levels
    shape = (2 * levels + 1, levels * knobs.latency_samples, K.N_GI, K.N_GF, width)
    return Binding(hooked(PREQUAL, cfg), knob_vector(knobs, INDEX, K.N_KNOBS), shape)


register(
    Policy(
        "prequal",
        "Prequal: probes of requests-in-flight and latency, hot-cold pick",
        SRC,
        "#17becf",
        16,
        "production",
        knobs=Prequal,
        bind=bind,
    )
)

__all__ = ["Prequal"]
