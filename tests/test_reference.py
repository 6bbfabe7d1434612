"""Differential test: the kernels against the pure-Python event-driven reference.

Both see the same drawn inputs (paired runs), but their routing decisions drift apart
within seconds (the reference handles events at their own times, a kernel step in
phases: see :mod:`otfr_vec.reference`), so the runs agree in distribution, not bit for
bit. Tolerances, derived from the variance of the paired difference:

- counts (timeouts, hard-fault failures), pooled over seeds: under "same model",
  ``Var(K - R) = phi * (K + R)`` with ``phi`` the dispersion of the failure process
  (1 for independent Poisson counts; more because a stuck link times out requests in
  bursts). Estimated from 16 (default) and 12 (faults) paired seeds, by
  ``mean(d^2) / mean(K + R)``: at most 5.1 for lc and fault_aware_lc, at most 1.3 for
  the price users, 1.3 / 6.9 for envoy_od (degraded / faults: ejections of workers that
  a hard fault fails are bursty), 1.7 / 6.3 for envoy_od_100, 0.73 / 0.92 for
  p2c_peak_ewma and 1.14 / 0.55 with its load biaser; the bounds below are those times
  the 99 % chi-square factor (2.75 for 16 seeds, 3.4 for 12). We allow 4 sigma:
  ``|K - R| <= 4 sqrt(phi (K + R)) + 4``.
  Agreement on both counts bounds the failure rate and the timeout share.
- latency quantiles of completed requests (TTFT, e2e; p50, p99): the kernel's quantile
  ``q`` (a log histogram, 200 bins per decade) must sit in the reference's sample
  between ranks ``p -/+ delta``, ``delta = 4 sqrt(PHI_LAT * 2 p (1 - p) / n)``, widened
  by one histogram bin and two steps (``2 dt``) for the discretisations. ``PHI_LAT``
  allows for correlated latencies of neighbouring requests (they share queues): the
  ratio ``e^2 / (2 p (1 - p) / n)``, ``e`` the rank error, averaged at most 1.5 over 10
  paired seeds (TTFT; e2e far less, as output lengths are shared); times 3.9, the 99 %
  chi-square factor for 10 seeds, gives 6.
"""

from __future__ import annotations

import numpy as np
import pytest

from otfr_vec.engine import run
from otfr_vec.kernels.structs import FAILED_M, H_E2E, H_TTFT, HIST_PER_DECADE, TIMED_OUT_M
from otfr_vec.metrics import hist_quantile
from otfr_vec.reference import run_reference

PHI = {
    "lc": 14.0,
    "fault_aware_lc": 14.0,
    "otfr": 4.5,
    "fault_aware_otfr": 4.5,
    "oracle": 4.5,
    "envoy_od": 24.0,
    "envoy_od_100": 22.0,
    "p2c_peak_ewma": 4.5,
    "p2c_peak_ewma_biased": 4.5,
}
SCHEDULERS = "schedulers=[" + ",".join(PHI) + "]"
PHI_LAT = 6.0
CASES = {
    "degraded": ((), range(4)),
    "faults": (
        (
            "faults.workers=3",
            "faults.onset=25",
            "faults.duration=15",
            "health.noise=0.1",
            "telemetry.mode=delayed",
        ),
        range(3),
    ),
}


def paired(small_cfg, overrides, seeds):
    """Pooled counts and latencies per scheduler: {sched: (kernel, reference)}."""
    out = {}
    for seed in seeds:
        cfg = small_cfg(f"sim.seed={seed}", SCHEDULERS, *overrides)
        for s, st in run(cfg).states.items():
            ref = run_reference(cfg, s)
            k, r = out.setdefault(s, ({"hist": 0}, {"ttft": [], "e2e": []}))
            for name, idx in (("timed_out", TIMED_OUT_M), ("failed_other", FAILED_M)):
                k[name] = k.get(name, 0) + int(st.cnt[idx])
                r[name] = r.get(name, 0) + ref[name]
            k["hist"] = k["hist"] + st.hist
            r["ttft"].append(ref["ttft"])
            r["e2e"].append(ref["e2e"])
    return out


def count_ok(k: int, r: int, phi: float) -> bool:
    return abs(k - r) <= 4.0 * np.sqrt(phi * (k + r)) + 4.0


def quantile_ok(q: float, sample: np.ndarray, p: float, dt: float) -> bool:
    n = sample.size
    delta = 4.0 * np.sqrt(PHI_LAT * 2.0 * p * (1.0 - p) / n)
    lo, hi = np.quantile(sample, [max(p - delta, 0.0), min(p + delta, 1.0)])
    bin_ = 10.0 ** (1.0 / HIST_PER_DECADE)
    return lo / bin_ - 2 * dt <= q <= hi * bin_ + 2 * dt


@pytest.mark.parametrize("case", sorted(CASES))
def test_kernels_agree_with_reference(small_cfg, case):
    overrides, seeds = CASES[case]
    dt = small_cfg().sim.dt
    bad = []
    for s, (k, r) in paired(small_cfg, overrides, seeds).items():
        for name in ("timed_out", "failed_other"):
            if not count_ok(k[name], r[name], PHI[s]):
                bad.append(f"{s} {name}: kernel {k[name]} vs reference {r[name]}")
        for row, key in ((H_TTFT, "ttft"), (H_E2E, "e2e")):
            sample = np.concatenate(r[key])
            for p in (0.5, 0.99):
                q = hist_quantile(k["hist"][row], p)
                if not quantile_ok(q, sample, p, dt):
                    bad.append(
                        f"{s} {key} p{p:g}: kernel {q:.4f} vs reference "
                        f"{np.quantile(sample, p):.4f}"
                    )
    assert not bad, "\n".join(bad)


def test_tolerances_can_fail():
    """The criteria reject what a real discrepancy looks like."""
    assert not count_ok(250, 50, PHI["otfr"])  # a price that is never charged
    assert count_ok(252, 257, PHI["lc"])
    sample = np.random.default_rng(0).exponential(1.0, 20000)
    assert quantile_ok(np.median(sample), sample, 0.5, 0.01)
    assert not quantile_ok(1.3 * np.median(sample), sample, 0.5, 0.01)
