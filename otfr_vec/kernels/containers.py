"""Intrusive containers over the request pool: per-worker FIFO queues, the decode-end
and prefill-end calendars, and a min-heap (a policy's timers).

A request sits in at most one FIFO at a time, linked through ``qi[Q_NEXT]``/``qi[Q_PREV]``
so a timeout removes it in O(1). A decoding request is in no FIFO, so the same links put
it in the calendar bucket of the step its decode ends in (``qi[Q_CAL]``): O(1) to add,
to remove when it leaves early, and to take a step's ends; the step kernel sorts those
by (time, sequence number), the order a heap of all decode ends would pop them in.
The prefill-end calendar holds prefill workers, not requests (a FIFO head is in its
worker's FIFO already), linked through ``wi[W_PNEXT]``/``wi[W_PPREV]``, in the bucket of
the step their head's prefill ends in (``wi[W_PCAL]``, -1 when in none).
The heap orders entries by (time, sequence number).
"""

from .jit import kernel
from .structs import EV_ID, EV_SEQ, Q_CAL, Q_NEXT, Q_PREV, W_HEAD, W_PCAL, W_PNEXT, W_PPREV, W_TAIL


@kernel
def fifo_push(wi, qi, w, i):
    tail = wi[W_TAIL, w]
    qi[Q_NEXT, i] = -1
    qi[Q_PREV, i] = tail
    if tail >= 0:
        qi[Q_NEXT, tail] = i
    else:
        wi[W_HEAD, w] = i
    wi[W_TAIL, w] = i


@kernel
def fifo_remove(wi, qi, w, i):
    prv = qi[Q_PREV, i]
    nxt = qi[Q_NEXT, i]
    if prv >= 0:
        qi[Q_NEXT, prv] = nxt
    else:
        wi[W_HEAD, w] = nxt
    if nxt >= 0:
        qi[Q_PREV, nxt] = prv
    else:
        wi[W_TAIL, w] = prv
    qi[Q_NEXT, i] = -1
    qi[Q_PREV, i] = -1


@kernel
def fifo_len(wi, qi, w):
    """Requests in worker ``w``'s FIFO (walked: only a scraping policy asks)."""
    n = 0
    i = wi[W_HEAD, w]
    while i >= 0:
        n += 1
        i = qi[Q_NEXT, i]
    return n


@kernel
def bucket_push(ring, links, nxt_row, prv_row, key_row, x, step):
    """Put ``x`` first in the bucket of ``step`` of ``ring`` (a power-of-two ring of
    one-step buckets), linked through rows ``nxt_row`` / ``prv_row`` of ``links``, its
    step kept in row ``key_row``."""
    b = step & (ring.size - 1)
    head = ring[b]
    links[key_row, x] = step
    links[prv_row, x] = -1
    links[nxt_row, x] = head
    if head >= 0:
        links[prv_row, head] = x
    ring[b] = x


@kernel
def bucket_remove(ring, links, nxt_row, prv_row, key_row, x):
    """Take ``x`` out of its bucket (the one of step ``links[key_row, x]``)."""
    prv = links[prv_row, x]
    nxt = links[nxt_row, x]
    if prv >= 0:
        links[nxt_row, prv] = nxt
    else:
        ring[links[key_row, x] & (ring.size - 1)] = nxt
    if nxt >= 0:
        links[prv_row, nxt] = prv
    links[nxt_row, x] = -1
    links[prv_row, x] = -1


@kernel
def cal_push(cal, qi, i, step):
    """Put request ``i`` in the bucket of ``step`` (its decode ends in that step)."""
    bucket_push(cal, qi, Q_NEXT, Q_PREV, Q_CAL, i, step)


@kernel
def cal_remove(cal, qi, i):
    """Take request ``i`` out of its bucket."""
    bucket_remove(cal, qi, Q_NEXT, Q_PREV, Q_CAL, i)


@kernel
def pcal_push(pcal, wi, p, step):
    """Put prefill worker ``p`` in the bucket of ``step`` (its head's prefill ends then)."""
    bucket_push(pcal, wi, W_PNEXT, W_PPREV, W_PCAL, p, step)


@kernel
def pcal_remove(pcal, wi, p):
    """Take prefill worker ``p`` out of its bucket (if it is in one)."""
    if wi[W_PCAL, p] >= 0:
        bucket_remove(pcal, wi, W_PNEXT, W_PPREV, W_PCAL, p)
        wi[W_PCAL, p] = -1


@kernel
def _before(ht, hi, a, b):
    return ht[a] < ht[b] or (ht[a] == ht[b] and hi[EV_SEQ, a] < hi[EV_SEQ, b])


@kernel
def _swap(ht, hi, a, b):
    ht[a], ht[b] = ht[b], ht[a]
    hi[EV_ID, a], hi[EV_ID, b] = hi[EV_ID, b], hi[EV_ID, a]
    hi[EV_SEQ, a], hi[EV_SEQ, b] = hi[EV_SEQ, b], hi[EV_SEQ, a]


@kernel
def heap_push(ht, hi, n, t, i, s):
    """Push (t, i, s) onto a heap of ``n`` entries; return the new size."""
    k = n
    ht[k] = t
    hi[EV_ID, k] = i
    hi[EV_SEQ, k] = s
    while k > 0:
        parent = (k - 1) // 2
        if not _before(ht, hi, k, parent):
            break
        _swap(ht, hi, k, parent)
        k = parent
    return n + 1


@kernel
def heap_pop(ht, hi, n):
    """Remove the root of a heap of ``n`` entries (read it first); return the new size."""
    n -= 1
    ht[0] = ht[n]
    hi[EV_ID, 0] = hi[EV_ID, n]
    hi[EV_SEQ, 0] = hi[EV_SEQ, n]
    k = 0
    while True:
        c = 2 * k + 1
        if c >= n:
            break
        if c + 1 < n and _before(ht, hi, c + 1, c):
            c += 1
        if not _before(ht, hi, c, k):
            break
        _swap(ht, hi, c, k)
        k = c
    return n
