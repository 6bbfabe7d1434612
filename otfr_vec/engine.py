"""The only caller of the kernels: build the scenario, allocate state, run, collect.

A run advances every scheduler block by block (``BLOCK_S`` simulated seconds each, less
on a cluster with many arrivals per second: :func:`block_steps`) over
the same scenario arrays: one workload, one degradation, one label draw (common random
numbers). The blocks come in spans of ``SPAN_BLOCKS``: the engine generates a span's
arrivals and degradation rows, then each scheduler runs the span's blocks in turn (its
request pool grown before each block if needed), then it reports progress; it never
returns to Python per step or per request. On several threads the schedulers run their
spans side by side with no barrier between spans (:func:`_pipeline`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import NamedTuple

import numpy as np

from . import policies
from .kernels.decision import tree_size
from .kernels.policy.hooks import policy_init
from .kernels.step import advance
from .kernels.structs import (
    ERR,
    ERR_STEP,
    NEXT_TICK,
    SCOPE_E2E,
    SCOPE_QUEUE,
    SCOPE_TTFT,
    Params,
    State,
    grow,
    new_state,
    params_record,
)
from .kernels.trace import event_width, step_width
from .policies.binding import Binding
from .scenario import rng
from .scenario.degradation import Degradation, make_degradation
from .scenario.health import Faults, make_faults, make_labels
from .scenario.layout import Layout, make_layout
from .scenario.workload import Stream, make_workload

BLOCK_S = 1.0  # simulated seconds per kernel call (pool growth granularity) ...
# ... halved until a call expects at most this many arrivals: the pool holds room for one
# call's arrivals on top of those in flight, so on a large cluster a shorter call keeps it
# (and its growth by doubling) near what is alive at once: 65,536 workers at 262,144
# requests/s call every 0.25 s, a 4x smaller pool; the default run is not affected
CALL_ARRIVALS = 1 << 16
POOL_START = 1024  # request places a scheduler's pool starts with (it doubles as needed)
# blocks one scheduler runs before the next takes its turn (progress granularity): 16
# schedulers taking turns every block ran 1.5x slower than one after the other, each
# evicting the others' state from the caches; a span of arrivals is held anyway (the
# workload is generated in blocks of that length, scenario/workload.py)
SPAN_BLOCKS = 10
SPAN_LEAD = 1  # on threads, spans a scheduler may run ahead of the slowest (_pipeline)
SPAN_VALUES = 1 << 18  # at most this many per-step factors (steps x pods) in one span


def block_steps(dt: float, rate: float = 0.0) -> int:
    """Steps per kernel call at ``rate`` requests/s: one block of ``BLOCK_S``, halved
    until it expects at most ``CALL_ARRIVALS`` arrivals. Results do not depend on it."""
    steps = max(1, int(round(BLOCK_S / dt)))
    while steps > 1 and rate * steps * dt > CALL_ARRIVALS:
        steps = (steps + 1) // 2
    return steps


def span_blocks(block_steps: int, n_pods: int) -> int:
    """Blocks per span: ``SPAN_BLOCKS``, fewer where a span's per-step factors would pass
    ``SPAN_VALUES`` (a fine ``sim.dt`` on many pods), so they stay a few MiB."""
    return max(1, min(SPAN_BLOCKS, SPAN_VALUES // max(1, block_steps * n_pods)))


SCOPES = {"ttft": SCOPE_TTFT, "queue": SCOPE_QUEUE, "e2e": SCOPE_E2E}


class Scenario(NamedTuple):
    """Everything a run draws before simulating; identical for every scheduler."""

    layout: Layout
    degradation: Degradation
    faults: Faults
    labels: np.ndarray  # int8[n_refresh, n_workers]
    workload: object
    rate: float  # offered requests/s
    rho_net: float  # busy fraction of a KV link at nominal bandwidth
    n_steps: int
    n_win: int


class RunResult(NamedTuple):
    scenario: Scenario
    states: dict  # scheduler -> final State
    wall_s: float
    params: dict  # scheduler -> Params of its run
    traces: dict | None = None  # scheduler -> (per-step log, event log, events lost)


def n_steps(cfg) -> int:
    return max(1, math.ceil(cfg.sim.duration / cfg.sim.dt - 1e-9))


def make_scenario(cfg) -> Scenario:
    layout = make_layout(cfg.cluster)
    deg = make_degradation(cfg)
    faults = make_faults(cfg, layout)
    labels = make_labels(cfg, layout, deg, faults)
    workload = make_workload(cfg, layout.n_prefill)
    rate = workload.rate
    # busy fraction of one prefill worker's KV link: its KV bytes/s over bw0
    per_prefill = rate * workload.mean_prompt() / layout.n_prefill
    rho_net = per_prefill * cfg.network.kv_bytes_per_token / cfg.network.bw0
    if layout.n_prefill == layout.n_workers:
        rho_net = 0.0
    n_win = max(1, math.ceil(cfg.sim.duration / cfg.sim.window - 1e-9))
    return Scenario(layout, deg, faults, labels, workload, rate, rho_net, n_steps(cfg), n_win)


def bind(cfg, scheduler: str) -> Binding:
    """The kernel binding of ``scheduler`` under ``cfg`` (its knobs, variants applied)."""
    return policies.get(scheduler).bind(cfg, policies.knobs_of(scheduler, cfg))


# config keys that only make the health labels (scenario/health.py): read by a run whose
# scheduler takes its health from the labels, by no other
LABEL_KEYS = ("health.delay", "health.miss", "health.noise", "health.granularity")


def computes_price(pol: dict) -> bool:
    """Does a run with binding params ``pol`` compute the risk price every step (it pays
    it, or reads the utilisation the price keeps)? ``Params.price_on``."""
    return bool(pol["lambda_r"] > 0 or pol.get("needs_util", 0))


def run_inputs(cfg, scheduler: str) -> tuple:
    """What ``scheduler``'s run under ``cfg`` (a validated scenario, no sweep keys) reads,
    as a hashable value: two configurations with equal run inputs give that scheduler
    bit-identical states, so a sweep runs it once for both (``sweep.reuse``).

    Its binding stands for the ``weights.*`` keys and every policy's knob section (the
    only way they reach a run). The other keys count unless the run cannot read them,
    which mirrors :func:`make_params` and ``kernels/step.py: advance``:

    - ``price.*``: read only where the price is computed (``price_on``: the policy pays
      it, or reads the utilisation it keeps);
    - the label keys (:data:`LABEL_KEYS`) and ``health.refresh``: read only with
      ``health = labels``; ``health.threshold`` also with ``truth`` (the oracle);
    - ``telemetry.*``: the observed factor reaches a run only through the price's
      ``beta`` term, and not at all where the price sees the true factor.

    The sweep tests check this against full runs for every registered policy."""
    from omegaconf import OmegaConf

    from .config.schema import RUNTIME_KEYS
    from .config.sweep_schema import flatten
    from .kernels.structs import HEALTH_LABELS, HEALTH_OFF

    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    b = bind(cfg, scheduler)
    pol = b.params
    drop = ["weights.", *(f"{sec}." for sec in policies.knob_sections())]
    if not computes_price(pol):
        drop.append("price.")
    if pol["health"] != HEALTH_LABELS:
        drop += [*LABEL_KEYS, "health.refresh"]
        if pol["health"] == HEALTH_OFF:
            drop.append("health.threshold")
    if pol["beta"] == 0 or pol["true_bw"]:
        drop.append("telemetry.")
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    kept = tuple(
        (k, repr(v))
        for k, v in sorted(flat.items())
        if k != "schedulers" and k not in RUNTIME_KEYS and not k.startswith(tuple(drop))
    )
    bound = (tuple(sorted((k, repr(v)) for k, v in pol.items())), b.knobs.tobytes(), b.shape)
    return (scheduler, bound, b.tick_draws, kept)


ROUTES = ("auto", "pods", "tree", "scan")


def use_tree(route: str) -> bool:
    """Route through tournament trees? ``auto``: yes. Trees were as fast as per-pod
    minima or faster on every layout measured, the per-step rebuild of priced policies
    included (benchmarks/PROFILE.md, third round: 5-30 % less CPU per run from 8 x 8 up);
    ``pods`` keeps the per-pod minima. Every route picks the same workers."""
    return route in ("auto", "tree")


def make_params(
    cfg,
    scheduler: str,
    sc: Scenario,
    check: bool = False,
    incremental: bool = True,
    binding: Binding | None = None,
    route: str = "auto",
    trace: bool = False,
) -> Params:
    """The scalars of ``scheduler``'s run (the kernels get them as
    :func:`~.kernels.structs.params_record`)."""
    layout = sc.layout
    pr, sim = cfg.price, cfg.sim
    pol = (binding or bind(cfg, scheduler)).params
    load_weight = float(pol.get("load_weight", 1.0))
    return Params(
        dt=float(sim.dt),
        timeout=float(sim.timeout),
        scope=SCOPES[sim.timeout_scope],
        prefill_rate=float(cfg.service.prefill_tokens_per_s),
        tpot=float(cfg.service.tpot),
        slots=int(cfg.service.decode_slots),
        bw0=float(cfg.network.bw0),
        kv_bytes=float(cfg.network.kv_bytes_per_token),
        decay=0.5 ** (sim.dt / pr.halflife),
        alpha=float(pr.alpha),
        beta=pol["beta"],
        gamma=float(pr.gamma),
        eta=float(pr.eta),
        kappa=float(pr.kappa),
        lambda_f=pol["lambda_f"],
        lambda_r=pol["lambda_r"],
        lambda_p=pol["lambda_p"],
        cross_pod_cost=float(cfg.cluster.cross_pod_cost),
        health=pol["health"],
        true_bw=pol["true_bw"],
        threshold=float(cfg.health.threshold),
        # a queued prefill's load: the workload's mean prefill time (the trace's own mean
        # prompt for a replay) as a share of the deadline
        prefill_load_scale=(sc.workload.mean_prompt() / cfg.service.prefill_tokens_per_s)
        / sim.timeout
        * load_weight,
        refresh=float(cfg.health.refresh),
        warmup=float(sim.warmup),
        measure_end=float(sim.duration - sim.timeout),
        window=float(sim.window),
        n_pods=layout.n_pods,
        n_prefill=layout.n_prefill,
        n_workers=layout.n_workers,
        check=int(check),
        incremental=int(incremental and route != "scan"),
        policy=int(pol["policy"]),
        load_weight=load_weight,
        decode_load_scale=load_weight / int(cfg.service.decode_slots),
        has_extra=int(pol.get("has_extra", 0)),
        hooks=int(pol.get("hooks", 0) or trace),  # a trace records the hook path
        keep_draws=int(pol.get("keep_draws", 0) or trace),
        tick=float(pol.get("tick", 0.0)),
        price_on=int(computes_price(pol)),
        tree=int(incremental and use_tree(route)),
        tracing=int(trace),
    )


def tick_draws(seed: int, tick: float, next_tick: int, t_last: float, n_workers: int):
    """``(u_tick, tick0)``: one uniform per worker for each timer tick ``k`` from
    ``next_tick`` that can fire at a step start up to ``t_last``; row ``k - tick0``.
    Each tick's row comes from its own stream: the same for every policy with the same
    timer period, whatever the block slicing."""
    k_last = int(t_last / tick) + 1
    rows = [
        rng.generator(seed, rng.POLICY_TICK, k).random(n_workers)
        for k in range(next_tick, k_last + 1)
    ]
    return (np.stack(rows) if rows else np.zeros((1, n_workers))), next_tick


def start_state(layout, n_win: int, capacity: int, pr: Params, binding: Binding) -> State:
    """A scheduler's fresh state for ``layout``: routing caches sized for ``pr``'s route
    (two tournament trees, or per-pod minima), the policy's arrays initialised."""
    n_group = max(layout.n_prefill, layout.n_workers - layout.n_prefill, 1)
    tree_len = tree_size(n_group) if pr.tree else 0
    st = new_state(layout.n_workers, layout.n_pods, n_win, capacity, binding.shape, tree_len)
    policy_init(params_record(pr), st.pw_i, st.pw_f, st.pg_i, st.pg_f, binding.knobs, st.ctr)
    return st


def _pipeline(spans, scheds, span_of, threads: int, n_steps: int, progress) -> None:
    """Run ``span_of(name, arrivals, blocks)`` for every scheduler over every span on
    ``threads`` threads, with no barrier between spans.

    Each scheduler is a chain: its next span is queued when its last one ends, behind
    the spans already queued, so the schedulers advance round robin. A thread that
    finishes a cheap scheduler's span takes the next queued one instead of waiting for
    the span's slowest scheduler (which cost a fifth of the threads' time with the
    study's five on two). A scheduler runs at most ``SPAN_LEAD`` spans ahead of the
    slowest, so at most ``1 + SPAN_LEAD`` spans' inputs are held (memory.py counts them);
    a span's inputs are dropped once every scheduler has run it. Each scheduler's
    kernel calls see the same inputs in the same order as on one thread, so results are
    the same. An error stops the queue and is raised.
    """
    made: list = []  # span inputs, by span index; None once every scheduler ran it
    at = dict.fromkeys(scheds, 0)  # each scheduler's next span
    low = 0  # the first span some scheduler has still to run
    running: dict = {}
    parked: list = []  # schedulers SPAN_LEAD spans ahead of the slowest
    with ThreadPoolExecutor(threads) as pool:

        def submit(name):
            k = at[name]
            if k > low + SPAN_LEAD:
                parked.append(name)
                return
            while len(made) <= k:
                nxt = next(spans, None)
                if nxt is None:
                    return
                made.append(nxt)
            running[pool.submit(span_of, name, made[k][1], made[k][2])] = name

        try:
            for name in scheds:
                submit(name)
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    name = running.pop(fut)
                    fut.result()
                    at[name] += 1
                    submit(name)
                while low < min(at.values()):  # every scheduler is past span `low`
                    g1 = made[low][0]
                    made[low] = None
                    low += 1
                    if progress is not None:
                        progress(g1 / n_steps)
                    waiting, parked[:] = parked[:], []
                    for name in waiting:
                        submit(name)
        finally:
            for fut in running:
                fut.cancel()


def run(
    cfg,
    check: bool = False,
    threads: int = 1,
    progress: Callable[[float], None] | None = None,
    incremental: bool = True,
    route: str = "auto",
    trace: int = 0,
) -> RunResult:
    """Simulate ``cfg`` (already validated) for every scheduler in ``cfg.schedulers``.

    ``check``: verify conservation and non-negativity at every step (slow; tests).
    ``threads``: run schedulers side by side (kernels release the GIL); results do not
    depend on it. ``route``: how decisions find the lowest score, ``auto`` (tournament
    trees), ``pods`` (per-pod minima), ``tree`` or ``scan`` (full scans, as
    ``incremental=False``); every route picks the same workers.
    ``progress``: called with the simulated fraction after each block. ``trace``: record
    the decision trace (``kernels/trace.py``) with room for this many events (0: off).
    """
    t_start = time.perf_counter()
    sc = make_scenario(cfg)
    lay = sc.layout
    scheds = list(cfg.schedulers)
    bindings = {s: bind(cfg, s) for s in scheds}
    if route not in ROUTES:
        raise ValueError(f"route={route!r}: allowed values are {', '.join(ROUTES)}")
    params = {
        s: make_params(cfg, s, sc, check, incremental, bindings[s], route, trace > 0)
        for s in scheds
    }
    states = {s: start_state(lay, sc.n_win, POOL_START, params[s], bindings[s]) for s in scheds}
    records = {s: params_record(params[s]) for s in scheds}  # what the kernels receive
    no_ticks = np.zeros((1, lay.n_workers))
    scratch = {s: (np.zeros(lay.n_workers), np.zeros(lay.n_pods)) for s in scheds}
    tr_w = (step_width(lay.n_workers, lay.n_pods), event_width(lay.n_workers))
    tr_shape = ((sc.n_steps, tr_w[0]), (trace, tr_w[1])) if trace > 0 else ((1, 1), (1, 1))
    tr = {s: (np.zeros(tr_shape[0]), np.zeros(tr_shape[1]), np.zeros(3, np.int64)) for s in scheds}
    pod_n = np.bincount(lay.pod, minlength=lay.n_pods).astype(np.float64)
    fault_ids = np.flatnonzero(np.isfinite(sc.faults.down_start)).astype(np.int64)
    stream = Stream(sc.workload, draws=any(p.hooks for p in params.values()))
    dt, seed = cfg.sim.dt, cfg.sim.seed
    delay = cfg.telemetry.delay if cfg.telemetry.mode == "delayed" else None
    block = block_steps(dt, sc.rate)
    span = block * span_blocks(block, lay.n_pods)

    def spans():
        """Each span's inputs in order: (end step, arrivals, blocks); a block is (s0, s1,
        true factors, observed factors, arrivals due by s1). The span's arrivals are
        consumed from the stream as it is made: the next span starts after them."""
        for g0 in range(0, sc.n_steps, span):
            g1 = min(g0 + span, sc.n_steps)
            req = stream.until(g1 * dt)
            blocks = []
            for s0 in range(g0, g1, block):
                s1 = min(s0 + block, g1)
                times = np.arange(s0, s1) * dt
                f_true = sc.degradation.factor(times)
                f_obs = f_true  # what telemetry shows: the truth, or (delayed) an older one
                if delay is not None:
                    f_obs = sc.degradation.factor(times - delay)
                n_due = int(np.searchsorted(req.arrival, s1 * dt, side="left"))
                blocks.append((s0, s1, f_true, f_obs, n_due))
            stream.consume(blocks[-1][-1])
            yield g1, req, blocks

    def span_of(name, req, blocks):
        """One scheduler through a span's blocks (its state stays in cache)."""
        b, pr, rec = bindings[name], params[name], records[name]
        done = 0
        for s0, s1, f_true, f_obs, n_due in blocks:
            st = grow(states[name], n_due - done)
            states[name] = st
            u_tick, tick0 = no_ticks, 0
            if b.tick_draws:
                next_tick = int(st.ctr[NEXT_TICK])
                t_last = (s1 - 1) * dt
                if t_last >= next_tick * pr.tick:  # a timer fires in the block: its draws
                    u_tick, tick0 = tick_draws(seed, pr.tick, next_tick, t_last, lay.n_workers)
            used = advance(
                *st,
                rec,
                b.knobs,
                lay.pod,
                pod_n,
                s0,
                s1,
                *(req.take(slice(done, None)) if done else req),
                f_true,
                f_obs,
                sc.labels,
                fault_ids,
                sc.faults.down_start,
                sc.faults.down_end,
                u_tick,
                tick0,
                *scratch[name],
                *tr[name],
            )
            if used != n_due - done:
                raise RuntimeError(f"kernel consumed {used} arrivals, expected {n_due - done}")
            done = n_due

    if threads > 1 and len(scheds) > 1:
        _pipeline(spans(), scheds, span_of, threads, sc.n_steps, progress)
    else:
        for g1, req, blocks in spans():
            for name in scheds:
                span_of(name, req, blocks)
            if progress is not None:
                progress(g1 / sc.n_steps)
    for name, st in states.items():
        if st.ctr[ERR]:
            raise AssertionError(
                f"{name}: invariant violated at {st.ctr[ERR]} steps, "
                f"first at step {st.ctr[ERR_STEP]}"
            )
    traces = {s: (t[0], t[1][: t[2][0]], int(t[2][1])) for s, t in tr.items()} if trace else None
    return RunResult(sc, states, time.perf_counter() - t_start, params, traces)


__all__ = ["RunResult", "Scenario", "State", "make_params", "make_scenario", "run", "start_state"]
