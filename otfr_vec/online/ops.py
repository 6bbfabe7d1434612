"""The router's compiled operations: the step kernel's own pieces, called per event.

Each function here is a few lines around the simulator's kernels (``update_prices``,
``add_count``, the policy hooks): it does for one live event what the step kernel does
for the same event inside a run, so a :class:`~otfr_vec.online.Router` and a simulated
run of the same policy follow the same code. Pure functions over the router's arrays,
compiled like every kernel (:mod:`otfr_vec.kernels.jit`).

:func:`entry` is how the router calls them: Numba's dispatcher resolves the types of
every argument on each call (microseconds); the compiled entry point of the signature
resolved once skips it (about 0.5 us a call with twenty arrays). ``pa``, the run's
``Params`` as a one-element record array (``structs.params_array``), because a record
argument alone would cost ~3 us a call to check; ``pa[0]`` is what the kernels get.
"""

from __future__ import annotations

from ..kernels.jit import kernel
from ..kernels.policy.hooks import policy_choose, policy_outcome, policy_refresh, policy_routed
from ..kernels.scoring import update_prices
from ..kernels.step import add_count
from ..kernels.structs import OUT_FAILURE, OUT_TIMEOUT, Q_NEXT, W_FAIL, W_HEAD, W_OUTC, W_TOUT


@kernel
def run_steps(
    pa, kn, k0, k1, wi, qi, wf, count, base, g_dirty, pod, pod_n, health, f_price, pod_sum,
    pw_i, pw_f, pg_i, pg_f, ctr, u_tick, tick0, price_sum,
):  # fmt: skip
    """Step starts ``k0 .. k1 - 1`` as the step kernel runs them (its step 2): the policy's
    timers, then the price decay and every worker's base score, fixed until the next step
    start. ``price_sum`` accumulates each pod's mean price per step (the dataset's
    ``price`` is its mean over a window's steps)."""
    pr = pa[0]
    for k in range(k0, k1):
        t0 = k * pr.dt
        if pr.hooks:
            policy_refresh(
                pr, t0, wi, qi, wf, count, base, g_dirty, pod, health, pw_i, pw_f, pg_i, pg_f,
                kn, ctr, u_tick, tick0,
            )  # fmt: skip
        update_prices(wf, base, g_dirty, pr, pod, pod_n, f_price, health, pod_sum, pw_f)
        if pr.price_on:
            for q in range(pr.n_pods):
                price_sum[q] += pod_sum[q]


@kernel
def choose(
    pa, g, lo, hi, scale, home, start, t, u0, u1, u2, u3, count, base, g_min, g_dirty, pod,
    wi, wf, health, pw_i, pw_f, pg_i, pg_f, kn,
):  # fmt: skip
    """The policy's pick among ``[lo, hi)``, as the step kernel makes it."""
    return policy_choose(
        pa[0], g, lo, hi, scale, home, start, t, u0, u1, u2, u3, count, base, g_min, g_dirty,
        pod, wi, wf, health, pw_i, pw_f, pg_i, pg_f, kn,
    )  # fmt: skip


@kernel
def routed(pa, kn, count, g_dirty, pod, pg_i, j):
    """A request was sent to ``j``: its load + 1 (``to_prefill`` / ``to_decode``) and the
    policy's routed hook. Returns ``j``'s load before it (the request's RIF)."""
    pr = pa[0]
    rif = count[j]
    add_count(count, g_dirty, pr, pod, j, 1)
    if pr.hooks:
        policy_routed(pr, j, pg_i, kn)
    return rif


@kernel
def released(pa, count, g_dirty, pod, j):
    """A request left ``j`` (its KV sent, its slot freed, timed out...): load - 1. Returns
    False, changing nothing, if ``j`` holds nothing."""
    if count[j] <= 0:
        return False
    add_count(count, g_dirty, pa[0], pod, j, -1)
    return True


@kernel
def outcome(
    pa, kn, j, kind, latency, rif, t, u_a, u_b, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i
):
    """A request resolved: charge it to ``j`` as ``resolve_bad`` / ``charge_success`` do
    (the symptom counts of the risk price), then the policy's outcome hook."""
    pr = pa[0]
    wf[W_OUTC, j] += 1.0
    if kind == OUT_TIMEOUT:
        wf[W_TOUT, j] += 1.0
    elif kind == OUT_FAILURE:
        wf[W_FAIL, j] += 1.0
    if pr.hooks:
        policy_outcome(
            pr, j, kind, latency, rif, t, u_a, u_b, pod, wf, base, g_dirty, health, pw_i, pw_f,
            pg_i, kn,
        )  # fmt: skip


@kernel
def set_queues(wi, qi, queue):
    """Rebuild every worker's FIFO as a chain of ``queue[j]`` placeholder entries, so a
    scraping policy reads reported queue lengths through the kernels' ``fifo_len``.
    ``qi`` must have at least ``queue.sum()`` places."""
    i = 0
    for j in range(queue.size):
        n = queue[j]
        wi[W_HEAD, j] = i if n > 0 else -1
        for c in range(n):
            qi[Q_NEXT, i] = i + 1 if c < n - 1 else -1
            i += 1


def entry(dispatcher, *args):
    """``dispatcher``'s compiled entry point for the types of ``args`` (compiled, or loaded
    from Numba's cache, now; nothing runs). Calls must then pass arguments of exactly
    those types. The dispatcher itself where this Numba does not expose entry points."""
    try:
        return dispatcher.compile(tuple(dispatcher.typeof_pyval(a) for a in args))
    except AttributeError:  # another Numba: the dispatcher (slower, same result)
        return dispatcher


__all__ = ["choose", "entry", "outcome", "released", "routed", "run_steps", "set_queues"]
