"""Peak-EWMA power of two choices (``p2c_peak_ewma``), as tower / Linkerd implement it.

Per worker an RTT estimate and the time it was last touched. An observed latency above
the estimate replaces it (the peak rule); otherwise the estimate moves toward it with
weight ``1 - exp(-elapsed / decay)``. Reading the load first decays the estimate toward
0 (tower's ``load()`` updates with rtt = 0 at now), then ``cost = rtt * (pending + 1)``.
A decision draws two distinct workers of the group and keeps the first unless the
second is strictly cheaper. With the load biaser a failure or timeout counts as at
least ``penalty`` seconds of latency (Linkerd's PenaltyPeakEwma).
"""

import numpy as np

from ..jit import kernel
from ..structs import OUT_SUCCESS, W_DEC
from .common import distinct_pair

K_DECAY, K_DEFAULT_RTT, K_BIASER, K_PENALTY, N_KNOBS = range(5)
RTT, T_UPD, N_F = 0, 1, 2
N_I = 0


@kernel
def init(pr, pw_f, kn):
    for j in range(pr.n_workers):
        pw_f[RTT, j] = kn[K_DEFAULT_RTT]
        pw_f[T_UPD, j] = 0.0


@kernel
def observe(pw_f, kn, j, rtt, t):
    est = pw_f[RTT, j]
    if est < rtt:
        pw_f[RTT, j] = rtt
    else:
        w = np.exp(-max(t - pw_f[T_UPD, j], 0.0) / kn[K_DECAY])
        pw_f[RTT, j] = est * w + rtt * (1.0 - w)
    pw_f[T_UPD, j] = t


@kernel
def outcome(pw_f, kn, j, kind, latency, t):
    rtt = latency
    if kind != OUT_SUCCESS and kn[K_BIASER] > 0.0:
        rtt = max(latency, kn[K_PENALTY])
    observe(pw_f, kn, j, rtt, t)


@kernel
def load(pr, count, wi, pw_f, kn, j, t):
    """``load()``: decay the estimate to now, then rtt x (pending + 1); pending = requests
    whose first response byte has not come back (Linkerd's PendingUntilFirstData): for a
    decode worker its sequences already decoding are not pending."""
    observe(pw_f, kn, j, 0.0, t)
    pending = count[j]
    if j >= pr.n_prefill:
        pending -= wi[W_DEC, j]
    return pw_f[RTT, j] * (pending + 1)


@kernel
def choose(pr, count, wi, pw_f, kn, lo, hi, t, u0, u1):
    n = hi - lo
    if n == 1:
        return lo
    a, b = distinct_pair(u0, u1, n)
    la = load(pr, count, wi, pw_f, kn, lo + a, t)
    lb = load(pr, count, wi, pw_f, kn, lo + b, t)
    return lo + a if la <= lb else lo + b
