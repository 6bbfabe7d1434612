"""Scheduler semantics on tiny cases whose answer is known without simulation."""

import numpy as np

from otfr_vec import simulate

# one degraded pod from t = 20 s to 50 s; labels exact and instant (refresh 5 s divides
# the onset), so the labelled set is exactly the degraded pod over [20, 50)
EXACT_LABELS = ["health.miss=0", "health.noise=0", "health.delay=0", "health.refresh=5"]


def _windows(ds, lo, hi):
    w = ds.window.values
    return (w >= lo) & (w + 1.0 <= hi)


def test_fault_aware_lc_avoids_labelled_pod(small_cfg):
    ds = simulate(small_cfg(*EXACT_LABELS, "schedulers=[fault_aware_lc,lc]"))
    during = _windows(ds, 20, 50)
    labelled = ds.health_label.values[during] > 0.5  # [windows, pods]
    assert labelled.any(axis=1).all() and not labelled.all(axis=1).any()
    fa = ds.routed.sel(scheduler="fault_aware_lc").values[during]
    assert fa[labelled].sum() == 0  # never routed to a labelled pod while others exist
    lc = ds.routed.sel(scheduler="lc").values[during]
    assert lc[labelled].sum() > 0  # the label-blind baseline does route there


def test_oracle_never_routes_to_degraded_pod(small_cfg):
    ds = simulate(small_cfg("schedulers=[oracle]", "health.miss=1"))  # labels useless
    during = _windows(ds, 20, 50)
    degraded = ds.bandwidth_factor.values[during] < 0.5
    assert degraded.any()
    assert ds.routed.sel(scheduler="oracle").values[during][degraded].sum() == 0


def test_no_degradation_no_failures(small_cfg):
    ds = simulate(small_cfg("degradation.pattern=none", "health.noise=0"))
    assert (ds.failure_rate.values < 1e-3).all(), ds.failure_rate.values


def test_lambda_r_moves_traffic_from_priced_pod(small_cfg):
    shares = []
    for lam in (0.0, 0.03, 0.1):  # a price of ~0.9 x lambda_r against ~0.07 per queued prefill
        ds = simulate(
            small_cfg("schedulers=[otfr]", "telemetry.mode=direct", f"weights.lambda_r={lam}")
        )
        during = _windows(ds, 20, 50)
        degraded = ds.bandwidth_factor.values[during] < 1.0
        routed = ds.routed.sel(scheduler="otfr").values[during]
        shares.append(routed[degraded].sum() / routed.sum())
    assert shares[0] > shares[1] > shares[2], shares


def test_price_rises_on_degraded_pod_without_telemetry(small_cfg):
    """With telemetry none the price can only come from symptoms (timeouts, failures)."""
    ds = simulate(small_cfg("schedulers=[otfr]"))
    f = ds.bandwidth_factor.values
    price = ds.price.sel(scheduler="otfr").values
    during = _windows(ds, 25, 50)
    before = _windows(ds, 5, 20)
    degraded = f[during].mean(axis=0) < 1
    assert price[during][:, degraded].mean() > 2 * price[before][:, degraded].mean()
    assert price[during][:, degraded].mean() > price[during][:, ~degraded].mean()
    assert np.isfinite(price).all()
