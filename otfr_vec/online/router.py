"""``Router``: one registered policy as an object a live router calls per event.

The router holds the simulator's own state arrays for one scheduler (the worker rows,
load counts, base scores, per-pod minima, the policy's ``pw_*``/``pg_*`` rows, its knobs
and ``Params``, all from :mod:`otfr_vec.engine`) and calls the same compiled functions the
step kernel calls: the policy hooks, ``update_prices`` and the argmin. A decision made
here is the decision the simulator makes from the same state, inputs and draws
(``tests/test_online.py`` replays simulated runs through a Router and compares every
choice).

Time. ``now`` is seconds on the router's clock, from 0 (the simulator's t = 0). Prices
and timers advance in steps of ``sim.dt`` as in the step kernel: every call first runs
the step starts at or before ``now`` that have not run (each: the policy's timers, then
the price decay and every worker's base score, fixed until the next step start), then
acts. Observations (``observe``) take effect from the next step start. A call whose
``now`` is before the clock's last step start acts at that step (time does not run
back). With ``auto_step=False`` only :meth:`Router.tick` moves the clock (a caller that
drives the steps itself, as the differential test does).

Draws. Tie-break offsets and the policies' uniforms (P2C samples, probes, ejection
enforcement) come from the router's own seeded stream (``sim.seed``, or ``seed=``), or
are passed in (``start=``, ``u=``). Timer draws are the simulator's own per-tick
streams, so a router and a simulated run of the same seed draw the same ones.

Threads. Every call holds the router's lock, so one router may be shared by threads:
its calls are serialised (the compiled code releases the GIL; without the lock two
threads would race on the arrays). To route in parallel, use one router per thread:
each then sees only its own decisions and outcomes, as per-proxy production routers do.

Cost (``benchmarks/online_bench.py``, record in ``benchmarks/ONLINE.md``): a decision
is a few microseconds from Python at 64 candidates and grows with the candidates only
where the policy scans them (the study's score through per-pod minima: O(pods +
workers per pod)); a load or outcome update is about a microsecond plus the policy's
hook; a step start is O(workers).
"""

from __future__ import annotations

import math
import threading

import numpy as np

from .. import engine, policies
from ..kernels.structs import (
    HEALTH_OFF,
    NEXT_TICK,
    OUT_FAILURE,
    OUT_SUCCESS,
    OUT_TIMEOUT,
    W_BUSY,
    W_DEC,
    W_DOWN,
    W_PI,
    W_SLOTS,
    params_array,
)
from ..scenario import rng
from ..scenario.workload import TIE_RANGE
from . import ops

ROLES = {"prefill": 0, "decode": 1}
KINDS = {"success": OUT_SUCCESS, "timeout": OUT_TIMEOUT, "failure": OUT_FAILURE}
DRAW_BLOCK = 4096  # decisions (or outcomes) drawn at once from the router's stream


def step_of(t: float, dt: float) -> int:
    """The step ``s`` with ``s * dt <= t < (s + 1) * dt``, in the kernel's floating point
    (it compares times with ``s * dt``; ``floor(t / dt)`` alone can be one off)."""
    s = math.floor(t / dt)
    while (s + 1) * dt <= t:
        s += 1
    while s > 0 and s * dt > t:
        s -= 1
    return int(s)


class Router:
    """Policy ``policy_name`` of the registry routing a live cluster laid out as
    ``cfg.cluster``, with the knobs, weights and ``sim.dt`` of ``cfg`` (a validated
    configuration: ``otfr_vec.make_config([...])``).

    ``incremental``: the study's score through the simulator's routing cache (tournament
    trees, as the simulator's ``route=auto``; False: a full scan; the same choices).
    ``seed``: the router's own draws (default ``cfg.sim.seed``).
    ``windows``: keep each pod's mean price per ``sim.window`` (:meth:`price_series`,
    the dataset's ``price``; one row per window, so for bounded runs).
    """

    def __init__(
        self, policy_name: str, cfg, *, incremental=True, seed=None, auto_step=True, windows=False
    ):
        if policy_name not in policies.names():
            raise ValueError(
                f"unknown scheduler {policy_name!r}; allowed: {', '.join(policies.names())}"
            )
        self.policy = policy_name
        self.auto_step = bool(auto_step)
        sc = engine.make_scenario(cfg)
        lay = sc.layout
        self.binding = b = engine.bind(cfg, policy_name)
        self.params = pr = engine.make_params(
            cfg, policy_name, sc, incremental=incremental, binding=b
        )
        self._pa = params_array(pr)  # what the compiled entry points take (ops)
        self.n_pods, self.n_prefill, self.n_workers = lay.n_pods, lay.n_prefill, lay.n_workers
        self._pod = np.ascontiguousarray(lay.pod, dtype=np.int64)
        self.pod = self._pod.view()  # the simulator's numbering: prefill first, pod by pod
        self.pod.flags.writeable = False
        st = engine.start_state(lay, 1, 16, pr, b)
        self._wi, self._wf, self._count, self._base = st.wi, st.wf, st.count, st.base
        self._g_min, self._g_dirty, self._qi, self._ctr = st.g_min, st.g_dirty, st.qi, st.ctr
        self._pw_i, self._pw_f, self._pg_i, self._pg_f = st.pw_i, st.pw_f, st.pg_i, st.pg_f
        self._kn = np.ascontiguousarray(b.knobs, dtype=np.float64)
        self._health = np.zeros(lay.n_workers)
        self._f = np.ones(lay.n_pods)  # observed bandwidth factor per pod
        self._pod_sum = np.zeros(lay.n_pods)
        self._pod_n = np.bincount(lay.pod, minlength=lay.n_pods).astype(np.float64)
        self.price_sum = np.zeros(lay.n_pods)  # sum over steps of each pod's mean price
        self.price_steps = 0  # steps run
        self._window = float(cfg.sim.window) if windows else None
        self._win_sum = np.zeros((16 if windows else 0, lay.n_pods))  # per window, as price_sum
        self._win_steps = np.zeros(self._win_sum.shape[0], np.int64)
        self._next_step = 0
        self._no_ticks = np.zeros((1, lay.n_workers))
        self._seed = int(cfg.sim.seed if seed is None else seed)
        self._rng = rng.generator(self._seed, rng.ONLINE)
        self._dec, self._k_dec = [], DRAW_BLOCK
        self._out, self._k_out = [], DRAW_BLOCK
        self._lock = threading.Lock()
        self._compile()

    def _compile(self) -> None:
        pa, kn = self._pa, self._kn
        arrays = (self._count, self._base, self._g_min, self._g_dirty, self._pod, self._wi)
        hooks = (self._wf, self._health, self._pw_i, self._pw_f, self._pg_i, self._pg_f, kn)
        self._choose = ops.entry(
            ops.choose, pa, 0, 0, 1, 0.0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, *arrays, *hooks
        )
        self._routed = ops.entry(ops.routed, pa, kn, self._count, self._g_dirty, self._pod,
                                 self._pg_i, 0)  # fmt: skip
        self._released = ops.entry(ops.released, pa, self._count, self._g_dirty, self._pod, 0)
        self._outcome = ops.entry(
            ops.outcome, pa, kn, 0, 0, 0.0, 0, 0.0, 0.0, 0.0, self._pod, self._wf, self._base,
            self._g_dirty, self._health, self._pw_i, self._pw_f, self._pg_i,
        )  # fmt: skip
        self._steps = ops.entry(
            ops.run_steps, *self._step_args(0, 0, self._no_ticks, 0, self.price_sum)
        )
        self._set_queues = ops.entry(
            ops.set_queues, self._wi, self._qi, np.zeros(self.n_workers, np.int64)
        )

    def _step_args(self, k0, k1, u_tick, tick0, price_sum):
        return (
            self._pa, self._kn, k0, k1, self._wi, self._qi, self._wf, self._count,
            self._base, self._g_dirty, self._pod, self._pod_n, self._health, self._f,
            self._pod_sum, self._pw_i, self._pw_f, self._pg_i, self._pg_f, self._ctr, u_tick,
            tick0, price_sum,
        )  # fmt: skip

    # -- the clock ------------------------------------------------------------------------

    @staticmethod
    def _time(now) -> float:
        t = float(now)
        if not math.isfinite(t) or t < 0.0:
            raise ValueError(f"now={now!r}: must be a finite time >= 0 (s on the router's clock)")
        return t

    def _run_to(self, t: float) -> None:
        """Run every step start at or before ``t`` that has not run."""
        pr = self.params
        k1 = step_of(t, pr.dt) + 1
        k0 = self._next_step
        if k1 <= k0:
            return
        u_tick, tick0 = self._no_ticks, 0
        if self.binding.tick_draws and pr.tick > 0.0:
            next_tick = int(self._ctr[NEXT_TICK])
            t_last = (k1 - 1) * pr.dt
            if t_last >= next_tick * pr.tick:  # a timer fires: the simulator's tick draws
                u_tick, tick0 = engine.tick_draws(
                    self._seed, pr.tick, next_tick, t_last, self.n_workers
                )
        if self._window is None:
            self._steps(*self._step_args(k0, k1, u_tick, tick0, self.price_sum))
        else:
            self._windowed_steps(k0, k1, u_tick, tick0)
        self._next_step = k1
        self.price_steps += k1 - k0

    def _windowed_steps(self, k0, k1, u_tick, tick0) -> None:
        """Run steps ``[k0, k1)`` window by window (a step's window is the kernel's
        ``int(t0 / window)``), each window's prices summed in its own row."""
        dt, win = self.params.dt, self._window
        k = k0
        while k < k1:
            w = int(k * dt / win)
            e = max(k + 1, math.floor((w + 1) * win / dt) - 1)
            while int(e * dt / win) <= w:  # the first step of a later window
                e += 1
            e = min(e, k1)
            if w >= self._win_sum.shape[0]:
                n = max(2 * self._win_sum.shape[0], w + 1)
                grown = np.zeros((n, self.n_pods))
                grown[: self._win_sum.shape[0]] = self._win_sum
                steps = np.zeros(n, np.int64)
                steps[: self._win_steps.size] = self._win_steps
                self._win_sum, self._win_steps = grown, steps
            self._steps(*self._step_args(k, e, u_tick, tick0, self._win_sum[w]))
            self._win_steps[w] += e - k
            k = e
        self.price_sum[:] = self._win_sum.sum(axis=0)

    def price_series(self, n_windows: int) -> np.ndarray:
        """``[n_windows, n_pods]``: each pod's mean price over the steps of each
        ``sim.window`` run so far (NaN where none ran, and everywhere for a policy that
        does not use the price, as in the dataset's ``price``). Needs ``windows=True``."""
        if self._window is None:
            raise ValueError("price_series needs a Router made with windows=True")
        out = np.full((n_windows, self.n_pods), np.nan)
        if not self.params.price_on:
            return out
        m = min(n_windows, self._win_steps.size)
        ran = self._win_steps[:m] > 0
        out[:m][ran] = self._win_sum[:m][ran] / self._win_steps[:m][ran, None]
        return out

    def tick(self, now: float) -> None:
        """Run the step starts up to ``now``: the policy's timers (ejection sweeps,
        scrapes, weight updates), the price decay and the base scores."""
        t = self._time(now)
        with self._lock:
            self._run_to(t)

    @property
    def clock(self) -> float:
        """Start of the last step run (s); -dt before the first."""
        return (self._next_step - 1) * self.params.dt

    # -- decisions and load ---------------------------------------------------------------

    def _draw_decision(self):
        if self._k_dec >= DRAW_BLOCK:
            g = self._rng
            self._dec = list(
                zip(
                    g.integers(0, TIE_RANGE, DRAW_BLOCK).tolist(),
                    g.random((DRAW_BLOCK, 4)).tolist(),
                    strict=True,
                )
            )
            self._k_dec = 0
        d = self._dec[self._k_dec]
        self._k_dec += 1
        return d

    def choose(self, role: str, ingress_pod: int, now: float, *, start=None, u=None) -> int:
        """The worker a request goes to. ``role``: "prefill" (``ingress_pod``: the pod it
        entered at) or "decode" (``ingress_pod``: its prefill worker's pod). ``start``
        (tie-break offset, an integer) and ``u`` (four uniforms in [0, 1)): the decision's
        draws, taken from the router's stream when not given. Call :meth:`routed` for
        the worker once the request is sent there."""
        g = ROLES.get(role)
        if g is None:
            raise ValueError(f"role={role!r}: allowed values are prefill, decode")
        home = int(ingress_pod)
        if not 0 <= home < self.n_pods:
            raise ValueError(f"ingress_pod={ingress_pod!r}: must be a pod in [0, {self.n_pods})")
        lo, hi = (0, self.n_prefill) if g == 0 else (self.n_prefill, self.n_workers)
        if hi == lo:
            raise ValueError("role='decode': this cluster has no decode workers")
        t = self._time(now)
        if (start is None) != (u is None):
            raise ValueError("start and u: pass both (the decision's draws) or neither")
        if u is not None:
            start, u = int(start), [float(x) for x in u]
            if start < 0 or len(u) != 4 or not all(0.0 <= x < 1.0 for x in u):
                raise ValueError(f"start={start}, u={u}: start >= 0 and four uniforms in [0, 1)")
        pr = self.params
        scale = pr.prefill_load_scale if g == 0 else pr.decode_load_scale
        with self._lock:
            if self.auto_step:
                self._run_to(t)
            if u is None:
                start, u = self._draw_decision()
            return self._choose(
                self._pa, g, lo, hi, scale, home, start, t, u[0], u[1], u[2], u[3], self._count,
                self._base, self._g_min, self._g_dirty, self._pod, self._wi, self._wf,
                self._health, self._pw_i, self._pw_f, self._pg_i, self._pg_f, self._kn,
            )  # fmt: skip

    def _worker(self, w) -> int:
        j = int(w)
        if not 0 <= j < self.n_workers:
            raise ValueError(f"worker {w!r}: must be in [0, {self.n_workers})")
        return j

    def routed(self, w: int, now: float) -> int:
        """A request was sent to worker ``w``: its load + 1. Returns ``w``'s load before
        it (the request's requests-in-flight, which :meth:`outcome` takes as ``rif``)."""
        j, t = self._worker(w), self._time(now)
        with self._lock:
            if self.auto_step:
                self._run_to(t)
            return self._routed(self._pa, self._kn, self._count, self._g_dirty, self._pod,
                                self._pg_i, j)  # fmt: skip

    def released(self, w: int, now: float) -> None:
        """A request no longer loads worker ``w`` (prefill: its KV cache has left or it is
        gone; decode: its slot is free or it is gone): load - 1."""
        j, t = self._worker(w), self._time(now)
        with self._lock:
            if self.auto_step:
                self._run_to(t)
            if not self._released(self._pa, self._count, self._g_dirty, self._pod, j):
                raise ValueError(f"released({j}): worker {j} holds no request")

    def outcome(self, w: int, kind: str, latency: float, now: float, *, rif=None, u=None):
        """A request resolved: charge ``kind`` ("success", "timeout", "failure") to worker
        ``w`` (call once for each of its workers). ``latency``: the leg as a router
        measures it (prefill: from arrival until its KV left or it resolved; decode:
        from the decode decision until the first token or the resolution). ``rif``: the
        value :meth:`routed` returned for this request at ``w`` (default: ``w``'s current
        load; only ``prequal`` reads it). ``u``: two uniforms (ejection draws), else the
        router's stream."""
        j, t = self._worker(w), self._time(now)
        k = KINDS.get(kind)
        if k is None:
            raise ValueError(f"kind={kind!r}: allowed values are success, timeout, failure")
        lat = float(latency)
        if not (math.isfinite(lat) and lat >= 0.0):
            raise ValueError(f"latency={latency!r}: must be a finite duration >= 0 (s)")
        if u is not None:
            u = [float(x) for x in u]
            if len(u) != 2 or not all(0.0 <= x < 1.0 for x in u):
                raise ValueError(f"u={u}: two uniforms in [0, 1)")
        with self._lock:
            if self.auto_step:
                self._run_to(t)
            r = int(self._count[j]) if rif is None else int(rif)
            if u is None:
                if self._k_out >= DRAW_BLOCK:
                    self._out = self._rng.random((DRAW_BLOCK, 2)).tolist()
                    self._k_out = 0
                u = self._out[self._k_out]
                self._k_out += 1
            self._outcome(
                self._pa, self._kn, j, k, lat, r, t, u[0], u[1], self._pod, self._wf,
                self._base, self._g_dirty, self._health, self._pw_i, self._pw_f, self._pg_i,
            )  # fmt: skip

    # -- observations ---------------------------------------------------------------------

    def _vector(self, name, x, n, lo, hi, what, integer=False):
        a = np.asarray(x, dtype=np.float64)
        if a.shape != (n,):
            raise ValueError(f"{name}: shape {a.shape}, expected ({n},): one value per {what}")
        bad = ~np.isfinite(a) | (a < lo) | (a > hi)
        if integer:
            bad |= a != np.round(a)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            kind = "whole numbers" if integer else "values"
            raise ValueError(f"{name}[{k}]={float(a[k])!r}: must be {kind} in [{lo:g}, {hi:g}]")
        return a

    def observe(
        self, now: float, bandwidth=None, labels=None, busy=None, *, queue=None, slots=None,
        decoding=None, down=None,
    ) -> None:  # fmt: skip
        """What the router can see, each an array (None: unchanged), used from the next
        step start on:

        - ``bandwidth``: per pod, the bandwidth factor in [0, 1] the policy observes
          (the price's beta term; only policies that see telemetry use it);
        - ``labels``: per worker, 0/1 health labels (the truth for ``oracle``);
        - ``busy``: per worker, the compute busy fraction in [0, 1] (prefill: the share
          of time serving a prefill; decode: sequences decoding / decode slots);
        - engine metrics, per worker, for the policies that read them: ``queue``
          (prefill: requests queued or in service; decode: requests waiting for a slot),
          ``slots`` (decode slots in use), ``decoding`` (sequences past their first
          token) and ``down`` (0/1: answers no scrape).
        """
        t = self._time(now)
        nw, slots_max = self.n_workers, self.params.slots
        checks = (
            ("bandwidth", bandwidth, self.n_pods, 0.0, 1.0, "pod", False),
            ("labels", labels, nw, 0.0, 1.0, "worker", True),
            ("busy", busy, nw, 0.0, 1.0 + 1e-9, "worker", False),  # measured: 1 + rounding
            ("queue", queue, nw, 0.0, np.inf, "worker", True),
            ("slots", slots, nw, 0.0, slots_max, "worker", True),
            ("decoding", decoding, nw, 0.0, slots_max, "worker", True),
            ("down", down, nw, 0.0, 1.0, "worker", True),
        )
        v = {c[0]: self._vector(*c) for c in checks if c[1] is not None}
        with self._lock:
            if self.auto_step:
                self._run_to(t)
            if "bandwidth" in v:
                self._f[:] = v["bandwidth"]
            if "labels" in v and self.params.health != HEALTH_OFF:
                self._health[:] = v["labels"]
            if "busy" in v:
                self._wf[W_BUSY] = v["busy"]
            for name, row in (("slots", W_SLOTS), ("decoding", W_DEC), ("down", W_DOWN)):
                if name in v:
                    self._wi[row] = v[name].astype(np.int64)
            if "queue" in v:
                q = v["queue"].astype(np.int64)
                if q.sum() > self._qi.shape[1]:
                    self._qi = np.zeros((self._qi.shape[0], int(q.sum()) * 2), np.int64)
                self._set_queues(self._wi, self._qi, q)

    # -- what it holds --------------------------------------------------------------------

    @property
    def load(self) -> np.ndarray:
        """Each worker's load count (prefill: queued + in service + KV not sent; decode:
        slots used + waiting), as :meth:`routed` / :meth:`released` left it."""
        return self._count.copy()

    @property
    def price(self) -> np.ndarray:
        """Each worker's risk price ``pi`` (after the locational blend) as the simulator
        computes it for this policy; it enters the score only where the policy pays it
        (``lambda_r`` > 0). All 0 for a policy that neither pays it nor reads the
        utilisation (the simulator skips it there too)."""
        return self._wf[W_PI].copy()

    def __repr__(self) -> str:
        return (
            f"Router({self.policy!r}, {self.n_pods} pods, {self.n_prefill} prefill + "
            f"{self.n_workers - self.n_prefill} decode workers, clock {self.clock:g} s)"
        )


__all__ = ["KINDS", "ROLES", "Router", "step_of"]
