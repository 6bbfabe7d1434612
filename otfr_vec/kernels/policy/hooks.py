"""The kernel's seams where a policy acts, dispatched on ``Params.policy``.

- :func:`policy_init`: once, on a fresh state;
- :func:`policy_refresh`: every step start, before the base scores are computed (timers
  that fire every ``Params.tick`` seconds: interval ejections, scrapes, weight updates);
- :func:`policy_choose`: pick a worker of a role group for a request;
- :func:`policy_routed`: the request was sent to that worker;
- :func:`policy_outcome`: a request resolved; its outcome (success with its leg latency,
  timeout, failure) is charged to one of its workers, with that worker's load (RIF) when
  the request was routed to it.

A policy's state lives in arrays it declares (``pw_i``, ``pw_f`` per worker, ``pg_i``,
``pg_f`` global) and its knobs in ``kn``; its randomness arrives as uniforms drawn outside
(four per decision, two per outcome and worker, one per worker and timer tick).
"""

from ..jit import inline_kernel, kernel
from ..scoring import choose
from ..structs import NEXT_TICK
from . import breaker, envoy_od, epp, p2c_lc, peak_ewma, prequal, wrr_orca
from .ids import BREAKER, ENVOY_OD, EPP, P2C_LC, PEAK_EWMA, PREQUAL, WRR


@kernel
def policy_init(pr, pw_i, pw_f, pg_i, pg_f, kn, ctr):
    ctr[NEXT_TICK] = 0  # timers fire from t = 0 unless the policy says otherwise
    if pr.policy == ENVOY_OD:
        envoy_od.init(pr, pw_i, pw_f, pg_i, ctr)
    elif pr.policy == PEAK_EWMA:
        peak_ewma.init(pr, pw_f, kn)
    elif pr.policy == EPP:
        epp.init(pr, pw_f)
    elif pr.policy == PREQUAL:
        prequal.init(pg_i)
    elif pr.policy == WRR:
        wrr_orca.init(pr, pw_f)


@kernel
def policy_refresh(
    pr,
    t0,
    wi,
    qi,
    wf,
    count,
    base,
    g_dirty,
    pod,
    health,
    pw_i,
    pw_f,
    pg_i,
    pg_f,
    kn,
    ctr,
    u_tick,
    tick0,
):
    """Timers due at the step start ``t0``. A timer fires at the first step start at or
    after ``k * tick`` (once per step, however many ticks a long step spans); tick
    ``k``'s draws are row ``k - tick0`` of ``u_tick``. Returns True where a policy term
    (``pw_f[EXTRA]``) changed without its worker's base score being recomputed: the
    step's base scores must then be (otherwise a policy without the price keeps them)."""
    if pr.policy == BREAKER:
        return breaker.refresh(pr, pw_i, pw_f, pg_i, kn, t0)
    if pr.tick <= 0.0:
        return False
    k = ctr[NEXT_TICK]
    if t0 < k * pr.tick:
        return False
    last = k
    while (last + 1) * pr.tick <= t0:
        last += 1
    row = last - tick0
    if pr.policy == ENVOY_OD:
        envoy_od.interval_tick(
            pr, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, kn, t0, u_tick, row
        )
    elif pr.policy == EPP:
        epp.scrape(pr, wi, qi, count, pw_f, kn, t0)
    elif pr.policy == WRR:
        wrr_orca.rebuild(pr, pw_f, pg_i, pg_f, kn, t0, u_tick, row)
    ctr[NEXT_TICK] = last + 1
    return pr.policy == EPP  # a scrape rewrites every worker's term; envoy_od rebases its own


@inline_kernel
def policy_choose(
    pr, g, lo, hi, scale, home, start, t, u0, u1, u2, u3,
    count, base, g_min, g_dirty, pod, wi, wf, health, pw_i, pw_f, pg_i, pg_f, kn,
):  # fmt: skip
    """The worker of ``[lo, hi)`` (group ``g``: 0 prefill, 1 decode) a request goes to."""
    if pr.policy == ENVOY_OD:
        return envoy_od.choose(
            pr, count, wf, health, pw_i, pg_i, kn, g, lo, hi, scale, start, u0, u1, u2, u3
        )
    if pr.policy == PEAK_EWMA:
        return peak_ewma.choose(pr, count, wi, pw_f, kn, lo, hi, t, u0, u1)
    if pr.policy == PREQUAL:
        return prequal.choose(pw_i, pw_f, pg_i, pg_f, count, kn, g, lo, hi, t, u0, u1, u2, u3)
    if pr.policy == WRR:
        return wrr_orca.choose(pw_f, pg_i, pg_f, g)
    if pr.policy == P2C_LC:
        return p2c_lc.choose(count, kn, lo, hi, u0, u1, u2, u3)
    # the score family (the study's five, breaker, epp): lowest count * scale + base
    return choose(count, base, g_min, g_dirty, pr, pod, g, lo, hi, scale, home, start)


@inline_kernel
def policy_routed(pr, j, pg_i, kn):
    if pr.policy == PREQUAL:
        prequal.routed(pg_i, kn, 0 if j < pr.n_prefill else 1, j)


@inline_kernel
def policy_outcome(
    pr, j, kind, latency, rif, t, u_a, u_b,
    pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, kn,
):  # fmt: skip
    if pr.policy == ENVOY_OD:
        envoy_od.outcome(
            pr, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, kn, j, kind, t, u_a, u_b
        )
    elif pr.policy == PEAK_EWMA:
        peak_ewma.outcome(pw_f, kn, j, kind, latency, t)
    elif pr.policy == BREAKER:
        breaker.outcome(pr, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, kn, j, kind, t)
    elif pr.policy == PREQUAL:
        prequal.outcome(pw_i, pw_f, kn, j, kind, latency, rif)
    elif pr.policy == WRR:
        wrr_orca.outcome(wf, pw_f, kn, j, kind, t)


__all__ = ["policy_choose", "policy_init", "policy_outcome", "policy_refresh", "policy_routed"]
