"""Decision latency of every registered policy, inside compiled code, at 64 ... 65,536
targets.

A state of the simulator's own kind (the engine's allocation and the policy's own init)
is built for a cluster whose prefill group has ``n`` workers, laid out as the step kernel
sees it (pods x workers per pod, as ``decision.layout``), with loads 0-8 and a price and
base score per worker. A compiled loop then makes decisions through the kernel's own
seam, :func:`otfr_vec.kernels.policy.hooks.policy_choose` for a policy with hooks and
:func:`otfr_vec.kernels.scoring.choose` for the study's score family, each followed by
the router's load update (``count += 1`` and the routing cache's mark), as the step kernel
does. The draws are uniforms from a fixed seed. The routing cache is the one the engine
would pick for that layout (``route=auto``: tournament trees).
"""

from __future__ import annotations

import time

import numpy as np

from otfr_vec import make_config
from otfr_vec.engine import bind, make_params, make_scenario, use_tree
from otfr_vec.kernels.decision import tree_size
from otfr_vec.kernels.jit import kernel
from otfr_vec.kernels.policy.hooks import policy_choose, policy_init
from otfr_vec.kernels.scoring import choose, mark, update_prices
from otfr_vec.kernels.structs import new_state, params_record

from .decision import layout


@kernel
def loop_policy(
    pr, count, base, g_min, g_dirty, pod, wi, wf, health, pw_i, pw_f, pg_i, pg_f, kn, u, homes,
    starts, scale, chosen,
):  # fmt: skip
    for t in range(chosen.size):
        if pr.hooks:
            j = policy_choose(
                pr, 0, 0, pr.n_prefill, scale, homes[t], starts[t], t * 1e-3, u[t, 0], u[t, 1],
                u[t, 2], u[t, 3], count, base, g_min, g_dirty, pod, wi, wf, health, pw_i, pw_f,
                pg_i, pg_f, kn,
            )  # fmt: skip
        else:
            j = choose(count, base, g_min, g_dirty, pr, pod, 0, 0, pr.n_prefill, scale, homes[t],
                       starts[t])  # fmt: skip
        count[j] += 1
        mark(g_dirty, pr, pod, j)
        chosen[t] = j


def setup(n: int, policy: str, seed: int = 0):
    """A state with ``n`` prefill targets for ``policy``, mid-run (loads 0-8, prices)."""
    n_pods, k = layout(n)
    cfg = make_config(
        [
            f"cluster.pods={n_pods}",
            f"cluster.workers_per_pod={2 * k}",  # k prefill + k decode workers per pod
            f"schedulers=[{policy}]",
            "telemetry.mode=direct",
        ]
    )
    sc = make_scenario(cfg)
    b = bind(cfg, policy)
    params = make_params(cfg, policy, sc, binding=b)
    pr = params_record(params)  # as the kernels receive it
    lay = sc.layout
    tree_len = tree_size(max(lay.n_prefill, 1)) if params.tree else 0
    st = new_state(lay.n_workers, lay.n_pods, sc.n_win, 64, b.shape, tree_len)
    policy_init(pr, st.pw_i, st.pw_f, st.pg_i, st.pg_f, b.knobs, st.ctr)
    g = np.random.default_rng(seed)
    st.count[:] = g.integers(0, 9, lay.n_workers)
    st.wf[1] = g.uniform(0, 1, lay.n_workers)  # W_UTIL
    health = np.zeros(lay.n_workers)
    f = np.where(g.random(n_pods) < 0.125, 0.1, 1.0)  # 1/8 of the pods degraded
    pod_sum = np.zeros(n_pods)
    pod_n = np.bincount(lay.pod, minlength=n_pods).astype(float)
    update_prices(st.wf, st.base, st.g_dirty, pr, lay.pod, pod_n, f, health, pod_sum, st.pw_f)
    return pr, st, b.knobs, lay.pod, health


def bench(n: int, policy: str, repeats: int, decisions: int = 50_000) -> dict:
    """ns per decision (median, min, max over ``repeats``) and the route used."""
    out = []
    g = np.random.default_rng(1)
    n_pods = layout(n)[0]
    u = g.random((decisions, 4))
    homes = g.integers(0, n_pods, decisions)
    starts = g.integers(0, 2**31, decisions)
    route = None
    for _ in range(repeats):
        pr, st, kn, pod, health = setup(n, policy)
        route = "tree" if pr.tree else "pods"
        chosen = np.empty(decisions, np.int64)
        t0 = time.perf_counter()
        loop_policy(
            pr, st.count, st.base, st.g_min, st.g_dirty, pod, st.wi, st.wf, health, st.pw_i,
            st.pw_f, st.pg_i, st.pg_f, kn, u, homes, starts, pr.prefill_load_scale, chosen,
        )  # fmt: skip
        out.append((time.perf_counter() - t0) / decisions * 1e9)
    xs = np.asarray(out)
    return {"ns": (float(np.median(xs)), float(xs.min()), float(xs.max())), "route": route}


def warm() -> None:
    for policy in ("lc", "envoy_od"):
        bench(64, policy, 1, 100)


__all__ = ["bench", "setup", "use_tree", "warm"]
