"""A pure-Python event-driven reference of the model (heapq), independent of the kernels.

Written the way the study's own simulator would be: one object per request, events in a
heap in time order, lists per worker. It shares no simulation code with
``otfr_vec.kernels`` or ``otfr_vec.engine``: from the policy registry it takes only each
policy's settings (score weights, knobs, which mechanism it is); it draws its inputs from
:mod:`otfr_vec.scenario` with the same seed, so a reference run and a kernel run see the
same arrivals, sizes, ingress pods, tie-break offsets, policy draws, degradation, labels
and faults (paired runs). Two uses: the differential oracle of
``tests/test_reference.py`` and the speed baseline of ``benchmarks``.

Policies: the study's five, ``envoy_od`` (and its variant and composition) and
``p2c_peak_ewma`` (and its biased variant), each written from the mechanism's
description (docs/POLICIES.md), not from the kernels: e.g. least-request samples the
non-ejected workers in worker order, where the kernel keeps a swap-remove list, so the
two pick different workers from the same draws, with the same distribution.

What it shares with the kernels (docs/MODEL.md sections 2-5 and ``kernels/step.py``): a price
tick every ``sim.dt`` at which hard faults switch, the EWMA and decayed charges advance
and every worker's ``base = lambda_f * health + lambda_r * pi`` is recomputed (fixed
until the next tick); routing one request at a time in arrival order, the chosen load
updated before the next decision, ties broken by the first minimum in cyclic order from
the seeded offset; FIFO prefill served exactly in continuous time; transfer rates
``min(bw_p / n_p, bw_d / n_d)`` fixed from one tick to the next; FIFO decode slots,
deadlines under the three ``sim.timeout_scope`` values, and charges to the prefill and
decode worker when a request resolves.

Where it differs, and why results agree statistically, not bit for bit: every event
here happens at its own time, whereas a kernel step runs its phases in a fixed order
(decode ends, then all arrivals, then prefill service and decode routing, then
transfers, then deadlines). So here a decode slot freed at 12.347 s is seen only by
requests routed after 12.347 s (the kernel: by the whole step's arrivals), a request
whose deadline falls in the middle of its prefill leaves the worker at the deadline (the
kernel: at the end of that step), and a transfer's rate uses the interface
counts at the last tick or at its own start (the kernel: the counts at the end of the
step). Each difference is bounded by one step (10 ms against a 3 s deadline), and they
vanish with it: in the prefill-only model at load 0.95 with a 0.5 s queue deadline
(``lc``, 4 seeds), where the kernel's routing seeing prefills that ended earlier in the
step as still queued matters most, the kernel timed out 619 requests against the
reference's 579 at ``sim.dt=0.01``, and 583 against 579 at ``sim.dt=0.001``.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from . import policies
from .kernels.policy.ids import ENVOY_OD, PEAK_EWMA, SCORE
from .kernels.structs import HEALTH_LABELS, HEALTH_TRUTH, U_DECODE, U_OUT_D, U_OUT_P, U_PREFILL
from .scenario.degradation import make_degradation
from .scenario.health import make_faults, make_labels
from .scenario.layout import make_layout
from .scenario.workload import Stream, make_workload

IMPLEMENTED = {SCORE: "the study's score", ENVOY_OD: "envoy_od", PEAK_EWMA: "p2c_peak_ewma"}
# event kinds; at equal times the tick comes first (a step's prices serve its arrivals)
TICK, ARRIVE, PREFILL_END, TX_END, DECODE_END, DEADLINE = range(6)


class Request:
    __slots__ = (
        *("a", "prompt", "out", "ing", "tie_d", "p", "d", "state", "measured", "started"),
        *("rem", "rate", "t_last", "version", "ft", "end", "u", "t_dec"),
    )

    def __init__(self, a, prompt, out, ing, tie_d, u, measured):
        self.a, self.prompt, self.out, self.ing, self.tie_d = a, prompt, out, ing, tie_d
        self.u = u  # the request's policy draws
        self.t_dec = a  # when its decode worker was chosen
        self.measured = measured
        self.p = self.d = -1
        self.state = "new"
        self.started = False  # prefill service has begun
        self.version = 0  # bumps invalidate scheduled prefill / transfer ends
        self.rem = self.rate = self.t_last = self.ft = self.end = 0.0


def run_reference(cfg, scheduler: str) -> dict:
    """Simulate ``cfg`` for one scheduler; return counts and latencies of measured requests."""
    return _Sim(cfg, scheduler).run()


class _Sim:
    def __init__(self, cfg, scheduler):
        pol = policies.get(scheduler)
        self.knobs = policies.knobs_of(scheduler, cfg)
        setting = pol.bind(cfg, self.knobs).params
        self.kind = setting["policy"]
        if self.kind not in IMPLEMENTED:
            raise NotImplementedError(
                f"the reference implements {', '.join(IMPLEMENTED.values())}, not {scheduler!r}"
            )
        health_src = {HEALTH_LABELS: "labels", HEALTH_TRUTH: "truth"}.get(setting["health"])
        true_bw = bool(setting["true_bw"])
        self.cfg = cfg
        sim, svc = cfg.sim, cfg.service
        lay = make_layout(cfg.cluster)
        self.n_pods, self.n_pf, self.n_w = lay.n_pods, lay.n_prefill, lay.n_workers
        self.k_pf = self.n_pf // self.n_pods
        self.pod = lay.pod.tolist()
        self.dt, self.timeout = float(sim.dt), float(sim.timeout)
        self.scope = sim.timeout_scope
        self.n_steps = max(1, math.ceil(sim.duration / sim.dt - 1e-9))
        self.t_end = self.n_steps * self.dt
        self.rate_pf = float(svc.prefill_tokens_per_s)
        self.slots, self.tpot = int(svc.decode_slots), float(svc.tpot)
        self.bw0, self.kv = float(cfg.network.bw0), float(cfg.network.kv_bytes_per_token)
        self.load_pf = cfg.workload.prompt_mean / svc.prefill_tokens_per_s / sim.timeout
        self.warmup, self.measure_end = float(sim.warmup), float(sim.duration - sim.timeout)
        pr = cfg.price
        self.decay = 0.5 ** (sim.dt / pr.halflife)
        self.alpha, self.gamma, self.eta, self.kappa = pr.alpha, pr.gamma, pr.eta, pr.kappa
        self.beta = setting["beta"]
        self.lambda_f = setting["lambda_f"]
        self.lambda_r = setting["lambda_r"]
        self.path = setting["lambda_p"] * cfg.cluster.cross_pod_cost
        self.health_src, self.threshold = health_src, cfg.health.threshold
        self.refresh = cfg.health.refresh
        # the drawn inputs, exactly those of the kernels' run
        deg = make_degradation(cfg)
        faults = make_faults(cfg, lay)
        self.labels = make_labels(cfg, lay, deg, faults).tolist()
        times = np.arange(self.n_steps) * self.dt
        self.f_true = deg.factor(times).tolist()
        self.f_price = self.f_true
        if not true_bw and cfg.telemetry.mode == "delayed":
            self.f_price = deg.factor(times - cfg.telemetry.delay).tolist()
        self.down_start, self.down_end = faults.down_start.tolist(), faults.down_end.tolist()
        self.fault_ids = [j for j in range(self.n_w) if math.isfinite(self.down_start[j])]
        req = Stream(make_workload(cfg, self.n_pf)).until(self.t_end)  # synthetic or trace
        self.arrivals = [r for r in zip(*req, strict=True) if r[0] < self.t_end]
        # worker state
        n = self.n_w
        self.count = [0] * n  # load numerator (docs/MODEL.md section 5) ...
        self.held = [set() for _ in range(n)]  # ... and the requests it counts
        self.base = [0.0] * n
        self.down = [False] * n
        self.queue = [[] for _ in range(n)]  # FIFO lists with a read position (lazy removal)
        self.qpos = [0] * n
        self.serving = [None] * n  # prefill: request in service
        self.serve_start = [0.0] * n
        self.busy_acc = [0.0] * n  # prefill busy time since the last tick
        self.used = [0] * n  # decode slots reserved
        self.decoding = [0] * n
        self.ntx = [0] * n
        self.util = [0.0] * n
        self.tout, self.fail, self.outc = [0.0] * n, [0.0] * n, [0.0] * n
        self.transfers = set()
        self.events = []
        self.seq = 0
        self.step = 0
        self.res = {"arrived": 0, "completed": 0, "timed_out": 0, "failed_other": 0}
        self.ttft, self.e2e = [], []
        if self.kind == ENVOY_OD:
            self.od = _Envoy(self.knobs, n, self.n_pf)
        elif self.kind == PEAK_EWMA:
            self.rtt = [float(self.knobs.default_rtt)] * n
            self.t_upd = [0.0] * n

    # --- event plumbing -------------------------------------------------------------
    def push(self, t, kind, *payload):
        self.seq += 1
        heapq.heappush(self.events, (t, kind, self.seq, payload))

    def run(self) -> dict:
        self.push(0.0, TICK)
        self._next_arrival(0)
        handlers = {
            TICK: self.tick,
            ARRIVE: self.arrive,
            PREFILL_END: self.prefill_end,
            TX_END: self.tx_end,
            DECODE_END: self.decode_end,
            DEADLINE: self.deadline,
        }
        while self.events and self.events[0][0] < self.t_end:
            t, kind, _, payload = heapq.heappop(self.events)
            handlers[kind](t, *payload)
        out = dict(self.res)
        out["ttft"] = np.array(self.ttft)
        out["e2e"] = np.array(self.e2e)
        return out

    def _next_arrival(self, k):
        if k < len(self.arrivals):
            self.push(self.arrivals[k][0], ARRIVE, k)

    # --- price tick ------------------------------------------------------------------
    def tick(self, t):
        s = self.step = int(round(t / self.dt))
        for x in self.fault_ids:  # hard faults switch at step boundaries
            down = self.down_start[x] <= t < self.down_end[x]
            if down and not self.down[x]:
                self.down[x] = True
                self._fail_all_on(x, t)
            elif not down:
                self.down[x] = False
        if self.kind == ENVOY_OD:
            self.od.timer(t)
        f_now, f_pr = self.f_true[s], self.f_price[s]
        labels = self.labels[min(int(t / self.refresh), len(self.labels) - 1)]
        d, pod = self.decay, self.pod
        raw = [0.0] * self.n_w
        pod_sum = [0.0] * self.n_pods
        pod_n = [0] * self.n_pods
        for j in range(self.n_w):
            if j < self.n_pf:  # busy share of the step that just ended
                acc = self.busy_acc[j]
                if self.serving[j] is not None:
                    acc += t - max(self.serve_start[j], t - self.dt)
                busy = acc / self.dt
                self.busy_acc[j] = 0.0
            else:
                busy = self.decoding[j] / self.slots
            self.util[j] = d * self.util[j] + (1.0 - d) * busy
            self.tout[j] *= d
            self.fail[j] *= d
            self.outc[j] *= d
            inv = 1.0 / (self.outc[j] + 1.0)
            raw[j] = (
                self.alpha * self.util[j]
                + self.beta * (1.0 - f_pr[pod[j]])
                + self.gamma * self.tout[j] * inv
                + self.eta * self.fail[j] * inv
            )
            pod_sum[pod[j]] += raw[j]
            pod_n[pod[j]] += 1
        for j in range(self.n_w):
            pi = (1.0 - self.kappa) * raw[j] + self.kappa * pod_sum[pod[j]] / pod_n[pod[j]]
            if self.health_src == "truth":
                h = 1.0 if (f_now[pod[j]] < self.threshold or self.down[j]) else 0.0
            elif self.health_src == "labels":
                h = float(labels[j])
            else:
                h = 0.0
            self.base[j] = self.lambda_f * h + self.lambda_r * pi
        for r in self.transfers:  # the interface counts of now hold until the next tick
            r.rem -= r.rate * (t - r.t_last)
            self._schedule_tx(r, t)
        for j in range(self.n_pf):  # busy time of the new step counts from now
            if self.serving[j] is not None:
                self.serve_start[j] = max(self.serve_start[j], t)
        if s + 1 < self.n_steps:
            self.push((s + 1) * self.dt, TICK)

    def hold(self, w, r):
        self.count[w] += 1
        self.held[w].add(r)

    def unhold(self, w, r):
        self.count[w] -= 1
        self.held[w].discard(r)

    # --- routing ---------------------------------------------------------------------
    def choose(self, lo, hi, scale, home, start, t, u):
        """The policy's pick among ``[lo, hi)``; ``u``: the decision's four draws."""
        if self.kind == ENVOY_OD:
            return self.od.choose(lo, hi, lambda j: self.count[j] * scale + self.base[j], u)
        if self.kind == PEAK_EWMA:
            return self._peak_choose(lo, hi, t, u)
        return self._argmin(lo, hi, scale, home, start)

    def _argmin(self, lo, hi, scale, home, start):
        """First lowest score in cyclic order from ``lo + start % n``."""
        n = hi - lo
        k0 = lo + start % n
        best, bj = math.inf, k0
        for j in list(range(k0, hi)) + list(range(lo, k0)):
            s = self.count[j] * scale + self.base[j]
            if self.pod[j] != home:
                s += self.path
            if s < best:
                best, bj = s, j
        return bj

    # --- request life ----------------------------------------------------------------
    def arrive(self, t, k):
        self._next_arrival(k + 1)
        a, prompt, out, ing, tie_p, tie_d, u = self.arrivals[k]
        r = Request(a, prompt, out, ing, tie_d, u, self.warmup <= a < self.measure_end)
        if r.measured:
            self.res["arrived"] += 1
        self.push(a + self.timeout, DEADLINE, r)
        p = r.p = self.choose(0, self.n_pf, self.load_pf, ing, tie_p, t, u[U_PREFILL:])
        if self.down[p]:
            self._resolve_bad(r, False, t)
            return
        r.state = "pq"
        self.hold(p, r)
        self.queue[p].append(r)
        if self.serving[p] is None:
            self._serve_next(p, t)

    def _pop(self, w, state):
        """Head of worker ``w``'s FIFO still in ``state``, removed; None if empty."""
        q = self.queue[w]
        while self.qpos[w] < len(q):
            r = q[self.qpos[w]]
            self.qpos[w] += 1
            if r.state == state:
                if self.qpos[w] > 64 and 2 * self.qpos[w] > len(q):  # compact
                    del q[: self.qpos[w]]
                    self.qpos[w] = 0
                return r
        return None

    def _serve_next(self, p, t):
        r = self._pop(p, "pq")
        self.serving[p] = r
        if r is not None:
            r.started = True
            self.serve_start[p] = t
            self.push(t + r.prompt / self.rate_pf, PREFILL_END, r, r.version)

    def _stop_serving(self, p, t):
        self.busy_acc[p] += t - self.serve_start[p]
        self.serving[p] = None

    def prefill_end(self, t, r, version):
        if r.version != version or r.state != "pq":
            return
        p = r.p
        self._stop_serving(p, t)
        self._serve_next(p, t)
        if self.n_pf == self.n_w:  # prefill-only model: done now
            self.unhold(p, r)
            self._charge_success(r, t)
            self._done(r, t, t)
            return
        r.t_dec = t
        d = r.d = self.choose(
            self.n_pf, self.n_w, 1.0 / self.slots, self.pod[p], r.tie_d, t, r.u[U_DECODE:]
        )
        if self.down[d]:
            self.unhold(p, r)
            self._resolve_bad(r, False, t)
            return
        self.hold(d, r)
        if self.qpos[d] >= len(self.queue[d]) and self.used[d] < self.slots:
            self.used[d] += 1
            self._start_tx(r, t)
        else:
            r.state = "dwait"
            self.queue[d].append(r)

    def _start_tx(self, r, t):
        r.state = "tx"
        r.rem = r.prompt * self.kv
        self.ntx[r.p] += 1
        self.ntx[r.d] += 1
        self.transfers.add(r)
        self._schedule_tx(r, t)

    def _schedule_tx(self, r, t):
        f = self.f_true[self.step]
        rp, rd = (
            self.bw0 * f[self.pod[r.p]] / self.ntx[r.p],
            self.bw0 * f[self.pod[r.d]] / self.ntx[r.d],
        )
        r.rate, r.t_last = min(rp, rd), t
        r.version += 1
        step_end = (self.step + 1) * self.dt
        if r.rem <= r.rate * (step_end - t):
            self.push(t + max(r.rem, 0.0) / r.rate, TX_END, r, r.version)

    def _end_tx(self, r):
        self.transfers.discard(r)
        self.ntx[r.p] -= 1
        self.ntx[r.d] -= 1
        self.unhold(r.p, r)  # the KV left the prefill worker

    def tx_end(self, t, r, version):
        if r.version != version or r.state != "tx":
            return
        self._end_tx(r)
        r.ft, r.end = t + self.tpot, t + r.out * self.tpot
        if self.scope != "queue" and r.ft > r.a + self.timeout:
            r.state = "ftwait"  # first token too late: times out at its deadline
            return
        r.state = "dec"
        self.decoding[r.d] += 1
        if self.scope != "e2e" or r.end <= r.a + self.timeout:
            self._charge_success(r, t)
        self.push(r.end, DECODE_END, r)

    def decode_end(self, t, r):
        if r.state != "dec":
            return
        self._done(r, r.ft, t)
        self._release_slot(r, True, t)

    def _release_slot(self, r, decoding, t):
        d = r.d
        if decoding:
            self.decoding[d] -= 1
        self.used[d] -= 1
        self.unhold(d, r)
        while self.used[d] < self.slots and not self.down[d]:
            r = self._pop(d, "dwait")
            if r is None:
                break
            self.used[d] += 1
            self._start_tx(r, t)

    def deadline(self, t, r):
        s = r.state
        if s in ("done", "bad"):
            return
        if self.scope == "queue":
            late = s == "dwait" or (s == "pq" and not r.started)
        elif self.scope == "e2e":
            late = s != "dec" or r.end > t
        else:
            late = s != "dec"
        if late:
            self._detach(r, t)
            self._resolve_bad(r, True, t)

    def _fail_all_on(self, x, t):
        """Worker ``x`` went down: fail everything it holds (its load, docs/MODEL.md 2.8)."""
        for r in sorted(self.held[x], key=lambda r: r.a):
            if r.state not in ("done", "bad"):
                self._detach(r, t)
                self._resolve_bad(r, False, t)

    def _detach(self, r, t):
        """Take ``r`` out of every queue, interface and slot it holds."""
        s, p = r.state, r.p
        r.state = "bad"  # stale FIFO entries and scheduled ends are skipped from now on
        r.version += 1
        if s == "pq":
            self.unhold(p, r)
            if self.serving[p] is r:
                self._stop_serving(p, t)
                self._serve_next(p, t)
        elif s == "dwait":
            self.unhold(r.d, r)
            self.unhold(p, r)
        elif s == "tx":
            self._end_tx(r)
            self._release_slot(r, False, t)
        elif s in ("ftwait", "dec"):
            self._release_slot(r, s == "dec", t)

    # --- outcomes --------------------------------------------------------------------
    def _resolve_bad(self, r, timed_out, t):
        r.state = "bad"
        key = "timed_out" if timed_out else "failed_other"
        if r.measured:
            self.res[key] += 1
        for x in (r.p, r.d):
            if x >= 0:
                self.outc[x] += 1.0
                if timed_out:
                    self.tout[x] += 1.0
                else:
                    self.fail[x] += 1.0
        self._policy_outcome(r, False, t)

    def _charge_success(self, r, t):
        self.outc[r.p] += 1.0
        if r.d >= 0:
            self.outc[r.d] += 1.0
        self._policy_outcome(r, True, t)

    # --- the production mechanisms ----------------------------------------------------
    def _policy_outcome(self, r, success, t):
        """Outcome-driven state, per leg: the prefill leg from arrival, the decode leg from
        the decode decision (until the first token for a success), observed at ``t``."""
        legs = [(r.p, t - r.a, U_OUT_P)]
        if r.d >= 0:
            legs.append((r.d, t - r.t_dec + (self.tpot if success else 0.0), U_OUT_D))
        for w, latency, col in legs:
            if self.kind == ENVOY_OD:
                self.od.outcome(w, success, t, r.u[col], r.u[col + 1])
            elif self.kind == PEAK_EWMA:
                k = self.knobs
                if not success and k.load_biaser:
                    latency = max(latency, k.penalty)
                self._peak_observe(w, latency, t)

    def _peak_observe(self, w, rtt, t):
        if self.rtt[w] < rtt:  # the peak rule: a spike replaces the estimate
            self.rtt[w] = rtt
        else:
            decay = math.exp(-max(t - self.t_upd[w], 0.0) / self.knobs.decay_time)
            self.rtt[w] = self.rtt[w] * decay + rtt * (1.0 - decay)
        self.t_upd[w] = t

    def _peak_choose(self, lo, hi, t, u):
        n = hi - lo
        if n == 1:
            return lo
        a = min(int(u[0] * n), n - 1)  # two distinct workers
        b = min(int(u[1] * (n - 1)), n - 2)
        b += b >= a

        def cost(j):
            self._peak_observe(j, 0.0, t)  # reading the load decays the estimate first
            pending = self.count[j] - (self.decoding[j] if j >= self.n_pf else 0)
            return self.rtt[j] * (pending + 1)

        ca, cb = cost(lo + a), cost(lo + b)
        return lo + a if ca <= cb else lo + b

    def _done(self, r, ft, end):
        r.state = "done"
        if r.measured:
            self.res["completed"] += 1
            self.ttft.append(ft - r.a)
            self.e2e.append(end - r.a)


class _Envoy:
    """Envoy outlier detection and least-request, per role group (two clusters)."""

    def __init__(self, knobs, n, n_pf):
        self.k, self.n, self.n_pf = knobs, n, n_pf
        self.c5xx, self.cgw = [0] * n, [0] * n
        self.ejected, self.backoff = [False] * n, [0] * n
        self.t_eject, self.t_uneject, self.jitter = [0.0] * n, [-math.inf] * n, [0.0] * n
        self.sr_s, self.sr_t = [0] * n, [0] * n
        self.next_interval = 1

    def group(self, w):
        return range(0, self.n_pf) if w < self.n_pf else range(self.n_pf, self.n)

    def eject(self, w, t, u_enf, enforcing, u_jit):
        g = self.group(w)
        n_ej = sum(self.ejected[j] for j in g)
        if not (
            100.0 * (n_ej + 1) / len(g) <= self.k.max_ejection_percent
            or (self.k.always_eject_one_host and n_ej == 0)
        ):
            return
        if not u_enf < enforcing / 100.0:
            return
        self.ejected[w], self.t_eject[w] = True, t
        self.jitter[w] = u_jit * self.k.max_ejection_time_jitter
        base, top = self.k.base_ejection_time, self.k.max_ejection_time
        if self.backoff[w] * base < top + base:
            self.backoff[w] += 1

    def outcome(self, w, success, t, u_enf, u_jit):
        self.sr_t[w] += 1
        if success:
            self.sr_s[w] += 1
            self.c5xx[w] = self.cgw[w] = 0
            return
        k = self.k  # a timeout is a 504, a failure a 503: 5xx and gateway errors both
        self.cgw[w] += 1
        if self.cgw[w] == k.consecutive_gateway_failure and not self.ejected[w]:
            self.eject(w, t, u_enf, k.enforcing_consecutive_gateway_failure, u_jit)
            self.cgw[w] = 0
        self.c5xx[w] += 1
        if self.c5xx[w] == k.consecutive_5xx and not self.ejected[w]:
            self.eject(w, t, u_enf, k.enforcing_consecutive_5xx, u_jit)
            self.c5xx[w] = 0

    def timer(self, t):
        k = self.k
        if t < self.next_interval * k.interval:
            return
        self.next_interval = int(t // k.interval) + 1
        while self.next_interval * k.interval <= t:  # t on a multiple: fire once, move on
            self.next_interval += 1
        last_s, last_t = list(self.sr_s), list(self.sr_t)
        for w in range(self.n):
            if self.ejected[w]:
                due = min(k.base_ejection_time * self.backoff[w], k.max_ejection_time)
                if due + self.jitter[w] <= t - self.t_eject[w]:
                    self.ejected[w] = False
                    self.c5xx[w] = self.cgw[w] = 0
                    self.t_uneject[w] = t
        self.sr_s, self.sr_t = [0] * self.n, [0] * self.n
        for g in (range(0, self.n_pf), range(self.n_pf, self.n)):
            if (
                len(g) < k.success_rate_minimum_hosts
                and len(g) < k.failure_percentage_minimum_hosts
            ):
                continue
            live = [w for w in g if not self.ejected[w] and last_t[w] > 0]
            rate = {w: 100.0 * last_s[w] / last_t[w] for w in live}
            sr = [w for w in live if last_t[w] >= k.success_rate_request_volume]
            if len(sr) >= k.success_rate_minimum_hosts and sr:
                mean = sum(rate[w] for w in sr) / len(sr)
                sd = math.sqrt(max(sum(rate[w] ** 2 for w in sr) / len(sr) - mean * mean, 0.0))
                limit = mean - k.success_rate_stdev_factor / 1000.0 * sd
                for w in sr:
                    if not self.ejected[w] and rate[w] < limit:
                        self.eject(w, t, 0.0, k.enforcing_success_rate, 0.0)
            fp = [w for w in live if last_t[w] >= k.failure_percentage_request_volume]
            if len(fp) >= k.failure_percentage_minimum_hosts and fp:
                for w in fp:
                    if not self.ejected[w] and 100.0 - rate[w] >= k.failure_percentage_threshold:
                        self.eject(w, t, 0.0, k.enforcing_failure_percentage, 0.0)
        for w in range(self.n):
            if not self.ejected[w] and self.backoff[w] > 0 and t - self.t_uneject[w] >= k.interval:
                self.backoff[w] -= 1

    def choose(self, lo, hi, score, u):
        """least_request: ``choice_count`` draws with replacement among the non-ejected
        workers (all of them in panic), the first strictly lowest wins; 0: full scan."""
        group = list(range(lo, hi))
        healthy = [j for j in group if not self.ejected[j]]
        if not healthy or 100.0 * len(healthy) / len(group) < self.k.healthy_panic_threshold:
            healthy = group
        c = int(self.k.choice_count)
        cands = (
            healthy
            if c == 0
            else [healthy[min(int(x * len(healthy)), len(healthy) - 1)] for x in u[:c]]
        )
        best = cands[0]
        for j in cands[1:]:
            if score(j) < score(best):
                best = j
        return best
