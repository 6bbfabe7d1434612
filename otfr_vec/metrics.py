"""Reductions from a run's counters to the named metrics (docs/MODEL.md section 6).

Every metric is declared once in ``METRICS`` (name -> units, description); the dataset
builder turns these into variable attrs, so names, units and texts cannot drift apart.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .kernels.structs import (
    ARRIVED_M,
    COMPLETED_M,
    DECISIONS,
    FAILED_M,
    H_E2E,
    H_TTFT,
    HIST_PER_DECADE,
    LOG10_HIST_LO,
    TIMED_OUT_M,
    TS_ROUTED,
    WIN_ARR,
    WIN_FAIL,
)


class Metric(NamedTuple):
    units: str
    description: str


METRICS = {
    "failure_rate": Metric(
        "1",
        "(timed_out + failed_other) / arrived, requests arriving in "
        "[sim.warmup, sim.duration - sim.timeout)",
    ),
    "timeout_share": Metric("1", "timed_out / (timed_out + failed_other); NaN without failures"),
    "resilience_index": Metric(
        "1",
        "mean success rate per window from degradation onset to the "
        "end of the measured window over the pre-onset mean (1 = unharmed)",
    ),
    "deflection_ratio": Metric(
        "1",
        "1 - share of routing decisions to truly degraded pods during "
        "the degradation window / the same pods' share before onset",
    ),
    "gap_to_oracle": Metric("1", "failure_rate - failure_rate of oracle on the same run"),
    "arrived": Metric("requests", "requests arriving in the measured window"),
    "completed": Metric("requests", "of those, finished (last token out) before the run ended"),
    "timed_out": Metric("requests", "of those, dropped at their deadline (sim.timeout_scope)"),
    "failed_other": Metric("requests", "of those, failed by a hard fault"),
    "in_flight": Metric("requests", "of those, still decoding when the run ended"),
    "goodput": Metric("requests/s", "completed / length of the measured window"),
    "ttft_mean": Metric("s", "mean time to first token of completed requests"),
    "ttft_p50": Metric("s", "median time to first token of completed requests"),
    "ttft_p99": Metric("s", "99th percentile time to first token of completed requests"),
    "e2e_mean": Metric("s", "mean end-to-end latency of completed requests"),
    "e2e_p50": Metric("s", "median end-to-end latency of completed requests"),
    "e2e_p99": Metric("s", "99th percentile end-to-end latency of completed requests"),
    "decisions": Metric("decisions", "routing decisions made (prefill and decode), whole run"),
}

SERIES = {
    "routed": Metric(
        "decisions",
        "routing decisions (prefill and decode) that chose a worker of the pod, per window",
    ),
    "failures": Metric(
        "requests",
        "timeouts and failures charged to the pod (a request counts "
        "in its prefill worker's and decode worker's pod), per window",
    ),
    "price": Metric(
        "1",
        "mean risk price pi over the pod's workers, per window; NaN for a scheduler that "
        "does not use the price (it is not computed)",
    ),
    "window_arrivals": Metric("requests", "measured arrivals by arrival window"),
    "window_failures": Metric(
        "requests", "failed or timed-out measured arrivals by arrival window"
    ),
    "bandwidth_factor": Metric("1", "true residual bandwidth factor f of the pod, window mean"),
    "health_label": Metric("1", "share of the pod's workers labelled unhealthy, window mean"),
}


def hist_quantile(h: np.ndarray, q: float) -> float:
    """Quantile from a log-binned histogram, interpolated geometrically inside a bin."""
    total = h.sum()
    if total == 0:
        return float("nan")
    cum = np.cumsum(h)
    target = q * total
    b = int(np.searchsorted(cum, target, side="left"))
    below = cum[b - 1] if b > 0 else 0
    frac = (target - below) / h[b] if h[b] else 0.5
    lo = LOG10_HIST_LO + b / HIST_PER_DECADE
    return float(10 ** (lo + min(max(frac, 0.0), 1.0) / HIST_PER_DECADE))


def resilience_index(
    win_arr, win_fail, window: float, onset: float, warmup: float, measure_end: float
) -> float:
    starts = np.arange(win_arr.size) * window
    with np.errstate(invalid="ignore", divide="ignore"):
        success = 1.0 - win_fail / win_arr
    pre = (starts >= warmup) & (starts + window <= onset) & (win_arr > 0)
    post = (starts >= onset) & (starts + window <= measure_end) & (win_arr > 0)
    if not pre.any() or not post.any() or success[pre].mean() == 0:
        return float("nan")  # no baseline to compare with (e.g. everything failed before onset)
    return float(success[post].mean() / success[pre].mean())


def deflection_ratio(
    routed, factor, window: float, onset: float, end: float, warmup: float
) -> float:
    """From per-window routing counts ``[n_win, pods]`` and mean factors ``[n_win, pods]``.

    During the window, the pods degraded at each time (f < 1) and their share of the
    decisions; the baseline is the same pod sets' share of the decisions before onset.
    """
    starts = np.arange(routed.shape[0]) * window
    pre = (starts >= warmup) & (starts + window <= onset)
    during = (starts >= onset) & (starts + window <= end)
    if not pre.any() or not during.any():
        return float("nan")
    pre_total = routed[pre].sum()
    if pre_total == 0:
        return float("nan")
    pre_share = routed[pre].sum(axis=0) / pre_total
    degraded = factor[during] < 1.0 - 1e-9
    got = (routed[during] * degraded).sum()
    expected = (routed[during].sum(axis=1) * (degraded * pre_share).sum(axis=1)).sum()
    if expected == 0:
        return float("nan")
    return float(1.0 - got / expected)


def scalar_metrics(st, cfg, factor_windows: np.ndarray) -> dict:
    """The per-scheduler metrics of one run, from its final kernel state."""
    c = st.cnt
    return count_metrics(
        cfg,
        int(c[ARRIVED_M]),
        int(c[COMPLETED_M]),
        int(c[TIMED_OUT_M]),
        int(c[FAILED_M]),
        st.win[WIN_ARR],
        st.win[WIN_FAIL],
        st.ts[TS_ROUTED],
        factor_windows,
        (st.hist[H_TTFT], st.lat_sum[H_TTFT]),
        (st.hist[H_E2E], st.lat_sum[H_E2E]),
        int(c[DECISIONS]),
    )


def count_metrics(
    cfg, arrived, done, to, fo, win_arr, win_fail, routed, factor_windows, ttft, e2e, decisions
) -> dict:
    """The per-scheduler metrics from what any run counts: measured requests ``arrived``,
    ``done``, timed out ``to`` and failed otherwise ``fo``; arrivals and failures per
    window; routing decisions per window and pod; ``ttft`` and ``e2e`` as (latency
    histogram, sum of latencies) of the completed requests. The simulator
    (:func:`scalar_metrics`) and the testbed both call it, so their metrics are one
    definition."""
    sim = cfg.sim
    measure_end = sim.duration - sim.timeout
    onset = cfg.degradation.onset
    end = onset + cfg.degradation.duration
    m = {
        "failure_rate": (to + fo) / arrived if arrived else float("nan"),
        "timeout_share": to / (to + fo) if (to + fo) else float("nan"),
        "resilience_index": resilience_index(
            win_arr, win_fail, sim.window, onset, sim.warmup, measure_end
        ),
        "deflection_ratio": deflection_ratio(
            routed, factor_windows, sim.window, onset, min(end, sim.duration), sim.warmup
        ),
        "arrived": arrived,
        "completed": done,
        "timed_out": to,
        "failed_other": fo,
        "in_flight": arrived - done - to - fo,
        "goodput": done / max(measure_end - sim.warmup, 1e-12),
    }
    for name, (hist, total) in (("ttft", ttft), ("e2e", e2e)):
        m[f"{name}_mean"] = total / done if done else float("nan")
        m[f"{name}_p50"] = hist_quantile(hist, 0.50)
        m[f"{name}_p99"] = hist_quantile(hist, 0.99)
    m["decisions"] = decisions
    return m
