"""The policies as a library a live router embeds.

    from otfr_vec import make_config
    from otfr_vec.online import Router

    cfg = make_config(["cluster.pods=4", "cluster.workers_per_pod=8"])
    r = Router("fault_aware_otfr", cfg)     # any name of otfr_vec.policies.names()
    p = r.choose("prefill", ingress_pod, now); rif_p = r.routed(p, now)
    d = r.choose("decode", r.pod[p], now);    rif_d = r.routed(d, now)
    r.released(p, now)                       # its KV cache left p
    r.outcome(p, "success", latency_p, now, rif=rif_p)
    r.outcome(d, "success", latency_d, now, rif=rif_d)
    r.observe(now, bandwidth=None, labels=labels, busy=busy)
    r.tick(now)

:class:`Router` runs every registered policy with the simulator's semantics and
defaults by holding the simulator's state arrays and calling its compiled kernels (see
:mod:`.router` for time, draws, threads and cost). docs/ONLINE.md is the user's guide.
"""

from .router import KINDS, ROLES, Router, step_of

__all__ = ["KINDS", "ROLES", "Router", "step_of"]
