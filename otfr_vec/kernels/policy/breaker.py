"""Circuit breaker over least connections (``breaker``), as the SGLang model gateway and
vllm-router implement it.

Closed -> open after ``failure_threshold`` consecutive failures (a timeout is a failure;
a success resets the count); open -> half-open once ``timeout_duration`` has passed
(checked at every step start, the gateway checks lazily at selection); half-open ->
closed after ``success_threshold`` consecutive successes, any failure reopens it. The
half-open state admits all traffic (no probe limit in the gateway's code). Outcomes of
requests that resolve while the breaker is open are ignored. Open workers carry a large
penalty in the least-connections argmin: when every worker of a group is open, the
least loaded of them is used (the gateway would answer 503 instead).
"""

from ..jit import kernel
from ..structs import OUT_SUCCESS
from .common import EXTRA, MASK, rebase

K_FAIL, K_SUCC, K_OPEN_S, N_KNOBS = range(4)
CLOSED, OPEN, HALF = 0, 1, 2
STATE, CF, CS, N_I = 0, 1, 2, 3
T_STATE, N_F = 1, 2  # row 0: EXTRA
META, N_GI = 0, 1
M_OPEN = 0


@kernel
def trip(pr, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, j, t):
    pw_i[STATE, j] = OPEN
    pw_i[CF, j] = 0
    pw_i[CS, j] = 0
    pw_f[T_STATE, j] = t
    pw_f[EXTRA, j] = MASK
    pg_i[META, M_OPEN] += 1
    rebase(base, g_dirty, pr, pod, wf, health, pw_f, j)


@kernel
def outcome(pr, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, kn, j, kind, t):
    st = pw_i[STATE, j]
    if st == OPEN:
        return
    if kind == OUT_SUCCESS:
        pw_i[CF, j] = 0
        if st == HALF:
            pw_i[CS, j] += 1
            if pw_i[CS, j] >= kn[K_SUCC]:
                pw_i[STATE, j] = CLOSED
                pw_i[CS, j] = 0
        return
    pw_i[CS, j] = 0
    if st == HALF:
        trip(pr, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, j, t)
        return
    pw_i[CF, j] += 1
    if pw_i[CF, j] >= kn[K_FAIL]:
        trip(pr, pod, wf, base, g_dirty, health, pw_i, pw_f, pg_i, j, t)


@kernel
def refresh(pr, pw_i, pw_f, pg_i, kn, t0):
    """Open breakers whose time is up become half-open (before the step's base scores
    are computed, so the penalty is gone from this step on); returns whether any did."""
    if pg_i[META, M_OPEN] == 0:
        return False
    any_half = False
    for j in range(pr.n_workers):
        if pw_i[STATE, j] == OPEN and t0 - pw_f[T_STATE, j] >= kn[K_OPEN_S]:
            pw_i[STATE, j] = HALF
            pw_f[T_STATE, j] = t0
            pw_f[EXTRA, j] = 0.0
            pg_i[META, M_OPEN] -= 1
            any_half = True
    return any_half
