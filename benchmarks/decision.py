"""Decision latency of the scoring kernel, per scheduler and number of targets.

Variants, all choosing the same target (checked on every run):

- ``full``: :func:`argmin_score` (O(N) scan) inside compiled code, many decisions in a
  loop, the chosen target's load raised between decisions as a router does;
- ``pods``: the same loop through :func:`argmin_pods` (per-pod minima, O(pods + k));
- ``tree``: the same loop through the tournament tree of :mod:`otfr_vec.kernels.decision`
  (O(log N) query plus an O(log N) leaf update after each decision);
- ``call_full`` / ``call_tree``: one decision called from Python (dispatch included);
- ``python``: a straightforward pure-Python router, written as a research prototype
  would: a list of worker records, the risk price computed from its symptoms at every
  decision (docs/MODEL.md section 5), then the score and the first minimum in cyclic order.

Targets are laid out as ``n_pods x k`` with ``k = n_pods`` or ``2 n_pods`` (32 x 32 at
1024, the study's cluster), so the per-pod variant sits at its best shape.
"""

from __future__ import annotations

import time

import numpy as np

from otfr_vec import make_config, policies
from otfr_vec.engine import bind
from otfr_vec.kernels.decision import tree_argmin, tree_build, tree_set, tree_size
from otfr_vec.kernels.jit import kernel
from otfr_vec.kernels.policy.ids import SCORE
from otfr_vec.kernels.scoring import argmin_pods, argmin_score

# the study's score family: one argmin over count * scale + base
SCHEDULERS = tuple(n for n in policies.names() if bind(make_config(), n).params["policy"] == SCORE)


def layout(n: int) -> tuple[int, int]:
    """(n_pods, k) with n_pods * k == n and k / n_pods in {1, 2}."""
    n_pods = 1 << (int(np.log2(n)) // 2)
    return n_pods, n // n_pods


def workers(n: int, scheduler: str, seed: int = 0) -> tuple[list[dict], dict]:
    """Worker records of a router mid-run, drawn reproducibly; the scheduler sets weights.

    Loads 0-8 (many ties for ``lc``), 1/8 of the pods degraded: labelled unhealthy (for
    label users), with low bandwidth, high utilisation and timeouts (for price users).
    """
    cfg = make_config()
    n_pods, k = layout(n)
    pol = bind(cfg, scheduler).params
    g = np.random.default_rng(seed)
    bad = g.random(n_pods) < 0.125
    pod = np.repeat(np.arange(n_pods), k)
    deg = bad[pod]
    recs = []
    for j in range(n):
        recs.append(
            {
                "pod": int(pod[j]),
                "load": int(g.integers(0, 9)),
                "health": 1.0 if (pol["health"] and deg[j]) else 0.0,
                "util": float(g.uniform(0.5, 1.0) if deg[j] else g.uniform(0.0, 0.7)),
                "bw": 0.1 if deg[j] else 1.0,
                "timeouts": float(g.uniform(0, 5)) if deg[j] else 0.0,
                "failures": 0.0,
                "outcomes": float(g.uniform(5, 20)),
            }
        )
    p = cfg.price
    weights = {
        "alpha": p.alpha,
        "beta": pol["beta"],  # telemetry none: 0, except for the oracle
        "gamma": p.gamma,
        "eta": p.eta,
        "kappa": p.kappa,
        "lambda_f": pol["lambda_f"],
        "lambda_r": pol["lambda_r"],
        "path": pol["lambda_p"] * cfg.cluster.cross_pod_cost,
        "scale": cfg.workload.prompt_mean / cfg.service.prefill_tokens_per_s / cfg.sim.timeout,
    }
    return recs, weights


def risk_prices(recs: list[dict], wt: dict) -> list[float]:
    """``pi_j`` of docs/MODEL.md section 5 from each worker's symptoms, blended with its pod."""
    raw = []
    pod_sum, pod_n = {}, {}
    for r in recs:
        inv = 1.0 / (r["outcomes"] + 1.0)
        x = (
            wt["alpha"] * r["util"]
            + wt["beta"] * (1.0 - r["bw"])
            + wt["gamma"] * r["timeouts"] * inv
            + wt["eta"] * r["failures"] * inv
        )
        raw.append(x)
        pod_sum[r["pod"]] = pod_sum.get(r["pod"], 0.0) + x
        pod_n[r["pod"]] = pod_n.get(r["pod"], 0) + 1
    k = wt["kappa"]
    return [
        (1.0 - k) * x + k * pod_sum[r["pod"]] / pod_n[r["pod"]]
        for x, r in zip(raw, recs, strict=True)
    ]


def python_decision(recs: list[dict], wt: dict, home: int, start: int) -> int:
    """The baseline: one routing decision in plain Python, prices from the symptoms."""
    pi = risk_prices(recs, wt)
    n = len(recs)
    k0 = start % n
    best, bj = float("inf"), k0
    for j in list(range(k0, n)) + list(range(k0)):
        r = recs[j]
        s = r["load"] * wt["scale"] + (wt["lambda_f"] * r["health"] + wt["lambda_r"] * pi[j])
        if r["pod"] != home:
            s += wt["path"]
        if s < best:
            best, bj = s, j
    return bj


def arrays(recs: list[dict], wt: dict):
    """What the kernels hold for the same state: ``count``, ``base`` (the same floats)."""
    pi = risk_prices(recs, wt)
    count = np.array([r["load"] for r in recs], np.int64)
    pod = np.array([r["pod"] for r in recs], np.int64)
    base = np.array(
        [wt["lambda_f"] * r["health"] + wt["lambda_r"] * p for r, p in zip(recs, pi, strict=True)]
    )
    return count, base, pod


@kernel
def loop_full(count, scale, base, pod, homes, starts, path, chosen):
    n = count.size
    for t in range(chosen.size):
        j = argmin_score(0, n, count, scale, base, pod, homes[t], path, starts[t])
        count[j] += 1
        chosen[t] = j


@kernel
def loop_pods(g_min, g_dirty, k, n_pods, count, scale, base, pod, homes, starts, path, chosen):
    for t in range(chosen.size):
        j = argmin_pods(
            g_min, g_dirty, 0, 0, k, n_pods, count, scale, base, pod, homes[t], path, starts[t]
        )
        count[j] += 1
        g_dirty[0, pod[j]] = 1
        chosen[t] = j


@kernel
def loop_tree(tree, k, count, scale, base, homes, starts, path, chosen):
    n = count.size
    for t in range(chosen.size):
        h = homes[t] * k
        j = tree_argmin(tree, 0, n, h, h + k, path, starts[t])
        count[j] += 1
        tree_set(tree, 0, count, scale, base, j)
        chosen[t] = j


def _median_spread(xs) -> tuple[float, float, float]:
    xs = np.asarray(xs, float)
    return float(np.median(xs)), float(xs.min()), float(xs.max())


def _time_loop(run, n_dec: int, repeats: int):
    """ns/decision of ``run(n_dec)`` (which resets its own state) over ``repeats`` runs."""
    out = []
    for _ in range(repeats):
        t, chosen = run(n_dec)
        out.append(t / n_dec * 1e9)
    return _median_spread(out), chosen


def _time_calls(fn, repeats: int, budget_s: float) -> tuple[float, float, float]:
    """ns per call of ``fn()``: each repeat loops it for about ``budget_s`` seconds."""
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(budget_s / once))
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        out.append((time.perf_counter() - t0) / number * 1e9)
    return _median_spread(out)


def bench(n: int, scheduler: str, repeats: int, budget_s: float) -> dict:
    """Every variant at ``n`` targets for one scheduler: {variant: (median, min, max) ns}."""
    recs, wt = workers(n, scheduler)
    count0, base, pod = arrays(recs, wt)
    n_pods, k = layout(n)
    scale, path = wt["scale"], wt["path"]
    g = np.random.default_rng(1)
    n_fast = 100_000
    homes = g.integers(0, n_pods, n_fast)
    starts = g.integers(0, 2**31, n_fast)

    def run_full(m):
        count, chosen = count0.copy(), np.empty(m, np.int64)
        t0 = time.perf_counter()
        loop_full(count, scale, base, pod, homes[:m], starts[:m], path, chosen)
        return time.perf_counter() - t0, chosen

    def run_pods(m):
        count, chosen = count0.copy(), np.empty(m, np.int64)
        g_min, g_dirty = np.zeros((1, n_pods)), np.ones((1, n_pods), np.int64)
        t0 = time.perf_counter()
        loop_pods(
            g_min, g_dirty, k, n_pods, count, scale, base, pod, homes[:m], starts[:m], path, chosen
        )
        return time.perf_counter() - t0, chosen

    def run_tree(m):
        count, chosen = count0.copy(), np.empty(m, np.int64)
        tree = np.zeros(tree_size(n))
        tree_build(tree, 0, n, count, scale, base)
        t0 = time.perf_counter()
        loop_tree(tree, k, count, scale, base, homes[:m], starts[:m], path, chosen)
        return time.perf_counter() - t0, chosen

    n_full = int(min(n_fast, max(200, 3e7 // n)))
    res = {}
    res["full"], c_full = _time_loop(run_full, n_full, repeats)
    res["pods"], c_pods = _time_loop(run_pods, n_fast, repeats)
    res["tree"], c_tree = _time_loop(run_tree, n_fast, repeats)
    if not (np.array_equal(c_full, c_pods[:n_full]) and np.array_equal(c_full, c_tree[:n_full])):
        raise AssertionError(f"variants chose different targets at n={n}, {scheduler}")
    # one tree rebuild: paid once per step when prices change, not per decision
    tree = np.zeros(tree_size(n))
    res["rebuild"] = _time_calls(
        lambda: tree_build(tree, 0, n, count0, scale, base), repeats, budget_s
    )
    home, start = 0, 12345
    res["call_full"] = _time_calls(
        lambda: argmin_score(0, n, count0, scale, base, pod, home, path, start), repeats, budget_s
    )
    res["call_tree"] = _time_calls(
        lambda: tree_argmin(tree, 0, n, 0, k, path, start), repeats, budget_s
    )
    res["python"] = _time_calls(lambda: python_decision(recs, wt, home, start), repeats, budget_s)
    want = argmin_score(0, n, count0, scale, base, pod, home, path, start)
    if python_decision(recs, wt, home, start) != want:
        raise AssertionError(f"pure-Python baseline disagrees with the kernel at n={n}")
    return res


def warm() -> None:
    """Compile every kernel used here before anything is timed."""
    bench(64, "fault_aware_otfr", 1, 1e-4)
