"""The llm-d endpoint picker's default profile (``epp``): weighted scorers on scraped
metric snapshots, max-score picker.

Every ``scrape_interval`` the picker reads each worker's engine metrics: the waiting
queue (prefill: requests queued behind the one in service; decode: requests waiting for a
slot) and the KV-cache utilisation (decode: slots in use / slots; prefill: requests whose
KV it holds, in service or not yet sent, over the same capacity). A worker that is down
answers no scrape; a snapshot older than ``staleness`` counts as saturated and the
worker is filtered out (fail-open when every worker is). Scores, per group over the fresh
candidates: queue ``(max q - q) / (max q - min q)`` (1 when all equal), KV ``1 - kv``;
``total = queue_weight * queue + kv_weight * kv`` for the prefill group (the default
profile), ``decode_queue_weight`` and ``decode_kv_weight`` for the decode group (the P/D
deployment's decode profile). Between scrapes the snapshot does not
change: the picker does not see its own decisions (no active-request scorer in the
default profile). The argmin kernel minimises ``-total`` (``EXTRA``), load weight 0,
ties broken from the seeded start.
"""

import numpy as np

from ..containers import fifo_len
from ..jit import kernel
from ..structs import W_DOWN, W_SLOTS
from .common import EXTRA, MASK, group_hi, group_lo

K_SCRAPE, K_STALE, K_QUEUE_W, K_KV_W, K_DQUEUE_W, K_DKV_W, N_KNOBS = range(7)
Q_SNAP, KV_SNAP, T_SNAP, N_F = 1, 2, 3, 4  # row 0: EXTRA
N_I = N_GI = 0


@kernel
def init(pr, pw_f):
    for j in range(pr.n_workers):
        pw_f[T_SNAP, j] = -np.inf


@kernel
def scrape(pr, wi, qi, count, pw_f, kn, t):
    for j in range(pr.n_workers):
        if wi[W_DOWN, j] != 0:
            continue  # no answer: the snapshot ages
        q = fifo_len(wi, qi, j)  # prefill: queued incl. the one in service; decode: waiting
        if j < pr.n_prefill:
            busy = 1 if q > 0 else 0
            pw_f[Q_SNAP, j] = q - busy
            pw_f[KV_SNAP, j] = (count[j] - q + busy) / pr.slots
        else:
            pw_f[Q_SNAP, j] = q
            pw_f[KV_SNAP, j] = wi[W_SLOTS, j] / pr.slots
        pw_f[T_SNAP, j] = t
    for g in range(2):
        lo = group_lo(pr, g)
        hi = group_hi(pr, g)
        q_min, q_max = np.inf, -np.inf
        for j in range(lo, hi):
            if t - pw_f[T_SNAP, j] <= kn[K_STALE]:
                q_min = min(q_min, pw_f[Q_SNAP, j])
                q_max = max(q_max, pw_f[Q_SNAP, j])
        for j in range(lo, hi):
            if t - pw_f[T_SNAP, j] > kn[K_STALE]:
                pw_f[EXTRA, j] = MASK
                continue
            qs = 1.0 if q_max == q_min else (q_max - pw_f[Q_SNAP, j]) / (q_max - q_min)
            kv = 1.0 - min(max(pw_f[KV_SNAP, j], 0.0), 1.0)
            wq = kn[K_QUEUE_W] if g == 0 else kn[K_DQUEUE_W]
            wkv = kn[K_KV_W] if g == 0 else kn[K_DKV_W]
            pw_f[EXTRA, j] = -(wq * qs + wkv * kv)
