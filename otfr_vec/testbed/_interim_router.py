"""TEMPORARY: a minimal online router for ``lc`` and ``fault_aware_lc`` only.

This file stands in for ``otfr_vec.online`` (the online policy library, being written on
main) until it lands, so the testbed can be exercised end to end; the lead replaces it
at merge. :func:`otfr_vec.testbed.routing.make_router` imports ``otfr_vec.online`` when it
exists and falls back to this module otherwise. It implements exactly the interface the
testbed codes against::

    r = Router(policy_name, cfg)
    r.n_workers, r.n_prefill, r.pod
    w = r.choose(role, ingress_pod, now)
    r.routed(w, now); r.released(w, now); r.outcome(w, kind, latency, now)
    r.observe(now, bandwidth=None, labels=None, busy=None); r.tick(now)

with the kernels' semantics for these two policies (MODEL section 5): score = load +
lambda_f * label + lambda_p * path cost; a prefill worker's load is what it holds x the
workload's mean prefill time / sim.timeout, a decode worker's what it holds /
decode_slots; the lowest score wins, ties broken at a seeded random place in cyclic
order. No risk price: ``otfr`` and the other policies need the real library.
"""

from __future__ import annotations

import numpy as np

from ..scenario.layout import make_layout
from ..scenario.workload import make_workload

POLICIES = ("lc", "fault_aware_lc")


class Router:
    def __init__(self, policy_name: str, cfg):
        if policy_name not in POLICIES:
            raise ValueError(
                f"scheduler {policy_name!r}: the testbed's interim router implements "
                f"{', '.join(POLICIES)} only; the others need otfr_vec.online"
            )
        self.policy = policy_name
        lay = make_layout(cfg.cluster)
        self.n_workers, self.n_prefill = lay.n_workers, lay.n_prefill
        self.pod = lay.pod
        self.n_pods = lay.n_pods
        wl = make_workload(cfg, lay.n_prefill)
        prefill_scale = wl.mean_prompt() / cfg.service.prefill_tokens_per_s / cfg.sim.timeout
        self.scale = np.where(
            np.arange(self.n_workers) < self.n_prefill,
            prefill_scale,
            1.0 / cfg.service.decode_slots,
        )
        self.count = np.zeros(self.n_workers, np.int64)
        self.health = np.zeros(self.n_workers)
        self.lambda_f = float(cfg.weights.lambda_f) if policy_name == "fault_aware_lc" else 0.0
        self.path = float(cfg.weights.lambda_p) * float(cfg.cluster.cross_pod_cost)
        self.rng = np.random.default_rng(int(cfg.sim.seed))

    def choose(self, role: str, ingress_pod: int, now: float) -> int:
        if role == "prefill":
            lo, hi = 0, self.n_prefill
        elif role == "decode":
            lo, hi = self.n_prefill, self.n_workers
        else:
            raise ValueError(f"role {role!r}: allowed values are prefill, decode")
        sl = slice(lo, hi)
        score = self.count[sl] * self.scale[sl] + self.lambda_f * self.health[sl]
        score = score + np.where(self.pod[sl] != ingress_pod, self.path, 0.0)
        start = int(self.rng.integers(hi - lo))
        order = np.roll(np.arange(hi - lo), -start)
        return lo + int(order[np.argmin(score[order])])

    def routed(self, w: int, now: float) -> None:
        self.count[w] += 1

    def released(self, w: int, now: float) -> None:
        self.count[w] -= 1

    def outcome(self, w: int, kind: str, latency: float, now: float) -> None:
        if kind not in ("success", "timeout", "failure"):
            raise ValueError(f"outcome kind {kind!r}: allowed values are success, timeout, failure")

    def observe(self, now: float, bandwidth=None, labels=None, busy=None) -> None:
        if labels is not None:
            self.health[:] = np.asarray(labels, dtype=np.float64)

    def tick(self, now: float) -> None:
        pass
