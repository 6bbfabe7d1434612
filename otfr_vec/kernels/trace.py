"""A decision trace of the step kernel (``Params.tracing``), for the online router's
differential test (tests/test_online.py): what a live router would have been told, and
what the kernel chose.

Written only when ``pr.tracing`` is set (one branch per site when it is not).
``tr_n``: events written, events lost to a full log, the current step. Two logs:

- per step (``tr_s[s]``), at the step start after the health vector is computed and
  before the policy's timers and the prices: what the router observes there (busy
  fractions, health, the bandwidth the price sees, engine metrics) and, to check it, the
  state it must have reached (load counts, symptom charges, the previous step's prices);
  a policy without the price keeps no prefill busy fractions, so the step kernel writes
  those into the next step's row at a step's end;
- per event (``tr_e``, in the order they happened): every decision (time, group, home
  pod, tie start, draws, the load counts and decoding sequences it saw, the chosen
  worker) and every outcome charged to a worker (time, kind, leg latency, RIF, draws).

A traced run takes the hook path for every policy (``engine.make_params``): for the
study's score family that path makes the same decisions (the hooks are no-ops for it),
and the test checks that a traced run's results equal an untraced one's.
"""

from .containers import fifo_len
from .jit import kernel
from .structs import W_BUSY, W_DEC, W_DOWN, W_FAIL, W_OUTC, W_PI, W_SLOTS, W_TOUT

# tr_e columns; decisions have kind DECISION, outcomes their OUT_* kind
E_KIND, E_STEP, E_T, E_J, E_G, E_HOME, E_START, E_U, E_LAT, E_RIF = 0, 1, 2, 3, 4, 5, 6, 7, 11, 12
E_COUNT = 13  # then n_workers load counts, then n_workers decoding counts
DECISION = -1
# tr_s blocks of n_workers columns after column 0 (the step start), then n_pods factors
S_T = 0
S_BUSY, S_HEALTH, S_COUNT, S_QUEUE, S_SLOTS, S_DEC, S_DOWN, S_OUTC, S_TOUT, S_FAIL, S_PI = range(11)
N_S_BLOCKS = 11


def event_width(n_workers: int) -> int:
    return E_COUNT + 2 * n_workers


def step_width(n_workers: int, n_pods: int) -> int:
    return 1 + N_S_BLOCKS * n_workers + n_pods


@kernel
def trace_step(tr_s, tr_n, s, t0, wi, qi, wf, count, health, f_price, pr):
    tr_n[2] = s  # the step the events that follow belong to
    if s >= tr_s.shape[0]:
        return
    nw = pr.n_workers
    tr_s[s, S_T] = t0
    for j in range(nw):
        o = 1 + j
        if pr.price_on or j >= pr.n_prefill:  # (else the step kernel wrote it)
            tr_s[s, o + S_BUSY * nw] = wf[W_BUSY, j]
        tr_s[s, o + S_HEALTH * nw] = health[j]
        tr_s[s, o + S_COUNT * nw] = count[j]
        tr_s[s, o + S_QUEUE * nw] = fifo_len(wi, qi, j)
        tr_s[s, o + S_SLOTS * nw] = wi[W_SLOTS, j]
        tr_s[s, o + S_DEC * nw] = wi[W_DEC, j]
        tr_s[s, o + S_DOWN * nw] = wi[W_DOWN, j]
        tr_s[s, o + S_OUTC * nw] = wf[W_OUTC, j]
        tr_s[s, o + S_TOUT * nw] = wf[W_TOUT, j]
        tr_s[s, o + S_FAIL * nw] = wf[W_FAIL, j]
        tr_s[s, o + S_PI * nw] = wf[W_PI, j]
    for q in range(pr.n_pods):
        tr_s[s, 1 + N_S_BLOCKS * nw + q] = f_price[q]


@kernel
def _row(tr_e, tr_n):
    """The next free event row, or -1 (counted) when the log is full."""
    k = tr_n[0]
    if k >= tr_e.shape[0]:
        tr_n[1] += 1
        return -1
    tr_n[0] = k + 1
    return k


@kernel
def trace_choice(tr_e, tr_n, pr, count, wi, t, j, g, home, start, u0, u1, u2, u3):
    k = _row(tr_e, tr_n)
    if k < 0:
        return
    tr_e[k, E_KIND] = DECISION
    tr_e[k, E_STEP] = tr_n[2]
    tr_e[k, E_T] = t
    tr_e[k, E_J] = j
    tr_e[k, E_G] = g
    tr_e[k, E_HOME] = home
    tr_e[k, E_START] = start
    tr_e[k, E_U] = u0
    tr_e[k, E_U + 1] = u1
    tr_e[k, E_U + 2] = u2
    tr_e[k, E_U + 3] = u3
    for w in range(pr.n_workers):
        tr_e[k, E_COUNT + w] = count[w]
        tr_e[k, E_COUNT + pr.n_workers + w] = wi[W_DEC, w]


@kernel
def trace_outcome(tr_e, tr_n, t, j, kind, latency, rif, u_a, u_b):
    k = _row(tr_e, tr_n)
    if k < 0:
        return
    tr_e[k, E_KIND] = kind
    tr_e[k, E_STEP] = tr_n[2]
    tr_e[k, E_T] = t
    tr_e[k, E_J] = j
    tr_e[k, E_U] = u_a
    tr_e[k, E_U + 1] = u_b
    tr_e[k, E_LAT] = latency
    tr_e[k, E_RIF] = rif
