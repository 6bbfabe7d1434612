"""The prefill-only reduction against closed forms (docs/MODEL.md section 8).

One pod, one prefill worker, no decode, no degradation: an M/G/1 FIFO queue. The kernel
serves each prefill exactly in continuous time inside a step (arrivals keep their exact
times), so the step size does not enter the answer; the last test checks that.

Tolerance: the sample mean of M/M/1 sojourns at rho = 0.7 over ~140k customers has a
standard error of ~1 % (autocorrelated: asymptotic variance ~ 335 / (mu^2 n)); 5 % is
about 5 standard errors, and the histogram quantiles add < 1.2 % (200 bins per decade).
"""

import math

import pytest

from otfr_vec import make_config, simulate

MU = 5.0  # 2000-token prompts at 10k tokens/s: 0.2 s mean service
RHO = 0.7
LAM = RHO * MU


def queue(dist: str, dt: float = 0.05, duration: float = 40050.0, seed: int = 1):
    cfg = make_config(
        [
            "cluster.pods=1",
            "cluster.workers_per_pod=1",
            "cluster.prefill_fraction=1",
            f"workload.rate={LAM}",
            f"workload.prompt_dist={dist}",
            "workload.prompt_mean=2000",
            "workload.prompt_max=1e7",  # the bound on token counts; no draw comes near it
            "degradation.pattern=none",
            f"sim.dt={dt}",
            "sim.timeout=50",
            f"sim.duration={duration}",
            "sim.warmup=50",
            f"sim.seed={seed}",
            "schedulers=[lc]",
            "sim.window=100",
        ]
    )
    return simulate(cfg).sel(scheduler="lc")


def test_mm1_mean_and_tail():
    ds = queue("exponential")
    assert int(ds.timed_out) == 0
    w = 1.0 / (MU - LAM)  # M/M/1 mean sojourn
    assert ds.e2e_mean.item() == pytest.approx(w, rel=0.05)
    # sojourn ~ Exp(mu - lambda): P(S > t) = exp(-(mu - lambda) t)
    assert ds.e2e_p50.item() == pytest.approx(math.log(2) * w, rel=0.05)
    assert ds.e2e_p99.item() == pytest.approx(math.log(100) * w, rel=0.07)


def test_md1_pollaczek_khinchine():
    ds = queue("constant")
    s = 1.0 / MU
    w = s + RHO * s / (2 * (1 - RHO))  # P-K with zero service variance
    assert ds.e2e_mean.item() == pytest.approx(w, rel=0.05)


def test_step_size_does_not_bias_the_queue():
    coarse = queue("exponential", dt=0.5, duration=20050.0, seed=2)
    fine = queue("exponential", dt=0.002, duration=20050.0, seed=2)
    w = 1.0 / (MU - LAM)
    assert fine.e2e_mean.item() == pytest.approx(w, rel=0.07)
    # same arrivals (drawn in fixed blocks independent of dt): nearly the same answer
    assert coarse.e2e_mean.item() == pytest.approx(fine.e2e_mean.item(), rel=1e-3)
