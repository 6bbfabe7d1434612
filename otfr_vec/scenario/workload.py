"""Request arrivals: synthetic distributions, drawn block by block.

The workload is generated in fixed blocks of ``BLOCK_S`` simulated seconds (fewer where
that many seconds would hold more than ``BLOCK_ARRIVALS`` requests: :func:`block_length`),
each from its own seeded stream, so memory stays bounded by one block whatever the run
length, and a block's requests do not depend on ``sim.dt`` or on how the engine slices
the run.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..kernels.order import sort_spread
from ..kernels.structs import N_U
from . import rng

BLOCK_S = 10.0  # simulated seconds of arrivals per generated block ...
# ... halved until a block expects at most this many (26,214 requests/s and below keep
# 10 s: every grid of sweeps/; 65,536 workers at load 0.8 draw 0.625 s blocks, 16x less
# memory, and a short run no longer draws seconds of arrivals past its end)
BLOCK_ARRIVALS = 1 << 18
TIE_RANGE = 2**31  # tie-break draws are uniform integers in [0, TIE_RANGE)


class Requests(NamedTuple):
    """Arrivals of one block, in arrival order (structure of arrays)."""

    arrival: np.ndarray  # float64, s
    prompt: np.ndarray  # float64, tokens (whole numbers >= 1)
    output: np.ndarray  # float64, tokens (whole numbers >= 1)
    ingress: np.ndarray  # int64, pod the request enters at
    tie_prefill: np.ndarray  # int64, seeded offset where the prefill argmin scan starts
    tie_decode: np.ndarray  # int64, the same for the decode decision
    # float64[n, N_U]: the policies' uniforms (decisions, outcomes; kernels/structs.py
    # U_*), from their own stream per block, so the study's draws above never change
    u: np.ndarray

    @staticmethod
    def concat(parts: list[Requests]) -> Requests:
        return Requests(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))

    def take(self, sl) -> Requests:
        return Requests(*(col[sl] for col in self))

    def __len__(self) -> int:  # type: ignore[override]
        return self.arrival.size


def block_length(rate: float) -> float:
    """Seconds per workload block at ``rate`` requests/s: ``BLOCK_S`` halved until a
    block expects at most ``BLOCK_ARRIVALS`` (a power-of-two fraction: block edges are
    exact). A block's requests depend on the rate through it, never on ``sim.dt``."""
    b = BLOCK_S
    while rate * b > BLOCK_ARRIVALS and b > BLOCK_S / 2**30:
        b /= 2
    return b


def offered_rate(cfg, n_prefill: int) -> float:
    """Requests/s: ``workload.rate``, or ``workload.load`` x the prefill capacity."""
    wl = cfg.workload
    if wl.rate is not None:
        return float(wl.rate)
    return wl.load * n_prefill * cfg.service.prefill_tokens_per_s / wl.prompt_mean


def draw_sizes(g: np.random.Generator, dist: str, mean: float, sigma: float, cap: float, n: int):
    """Token counts: whole numbers in [1, cap] from ``dist`` with parameter mean ``mean``."""
    if dist == "constant":
        x = np.full(n, mean)
    elif dist == "exponential":
        x = g.exponential(mean, n)
    else:  # lognormal with the given mean: mu = ln(mean) - sigma^2 / 2
        x = g.lognormal(np.log(mean) - 0.5 * sigma**2, sigma, n)
    np.rint(x, out=x)  # in place: no temporaries (fresh pages cost as much as the draws)
    return np.clip(x, 1.0, max(1.0, np.floor(cap)), out=x)


def _finish(g: np.random.Generator, arrival, prompt, output, n_pods: int) -> Requests:
    n = arrival.size
    return Requests(
        arrival,
        prompt,
        output,
        g.integers(0, n_pods, n, dtype=np.int64),
        g.integers(0, TIE_RANGE, n, dtype=np.int64),
        g.integers(0, TIE_RANGE, n, dtype=np.int64),
        np.zeros((n, 0)),  # the policy draws: Stream fills them per block (policy_draws)
    )


def policy_draws(seed: int, block: int, n: int) -> np.ndarray:
    """The policies' uniforms for the ``n`` requests of workload block ``block``."""
    return rng.generator(seed, rng.POLICY, block).random((n, N_U))


class SyntheticWorkload:
    """Poisson arrivals at ``rate`` with independent prompt and output sizes."""

    def __init__(self, cfg, n_prefill: int):
        self.cfg = cfg
        self.rate = offered_rate(cfg, n_prefill)
        self.block_s = block_length(self.rate)

    def block(self, b: int) -> Requests:
        wl, seed, span = self.cfg.workload, self.cfg.sim.seed, self.block_s
        g = rng.generator(seed, rng.WORKLOAD, b)
        n = g.poisson(self.rate * span)
        lo = b * span
        t = g.random(n)
        t *= span
        t += lo  # lo + u * span, in place
        arrival = sort_spread(t, lo, lo + span)  # sorted in O(n): the same array as np.sort's
        prompt = draw_sizes(g, wl.prompt_dist, wl.prompt_mean, wl.prompt_sigma, wl.prompt_max, n)
        output = draw_sizes(g, wl.output_dist, wl.output_mean, wl.output_sigma, wl.output_max, n)
        return _finish(g, arrival, prompt, output, self.cfg.cluster.pods)

    def mean_prompt(self) -> float:
        return float(self.cfg.workload.prompt_mean)


def make_workload(cfg, n_prefill: int):
    if cfg.workload.kind == "trace":
        from .trace import TraceWorkload

        return TraceWorkload(cfg, n_prefill)
    return SyntheticWorkload(cfg, n_prefill)


class Stream:
    """Serves the arrivals before a horizon, generating blocks as needed.

    ``draws=False``: no policy of the run reads the per-request policy draws (no hooks,
    no trace), so ``u`` has no columns instead of ``N_U`` (the draws of the others come
    from their own streams: nothing else changes).
    """

    def __init__(self, workload, draws: bool = True):
        self.workload = workload
        self.draws = draws
        self.next_block = 0
        empty = _finish(np.random.default_rng(0), *(np.empty(0),) * 3, 1)
        self.pending = Requests(*tuple(empty)[:-1], np.zeros((0, N_U if draws else 0)))

    def until(self, horizon: float) -> Requests:
        """All not-yet-served arrivals; guaranteed to include every one before ``horizon``."""
        parts = [self.pending]
        seed = self.workload.cfg.sim.seed
        while self.next_block * self.workload.block_s < horizon:
            req = self.workload.block(self.next_block)
            n = len(req)
            u = policy_draws(seed, self.next_block, n) if self.draws else np.zeros((n, 0))
            parts.append(Requests(*tuple(req)[:-1], u))  # not _replace: __len__ is overridden
            self.next_block += 1
        parts = [p for p in parts if len(p)]
        if len(parts) > 1:  # copy only when there is something to join
            self.pending = Requests.concat(parts)
        elif parts:
            self.pending = parts[0]
        return self.pending

    def consume(self, n: int) -> None:
        self.pending = self.pending.take(slice(n, None))
