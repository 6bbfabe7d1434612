"""Run arrays + coordinates -> a labelled ``xarray.Dataset`` with units and descriptions."""

from __future__ import annotations

import numpy as np
import xarray as xr
from omegaconf import OmegaConf

from . import __version__, policies
from .engine import RunResult
from .kernels.structs import ARRIVED, TS_FAIL, TS_ROUTED, WIN_ARR, WIN_FAIL
from .metrics import METRICS, SERIES, scalar_metrics

# CF ``long_name`` of every variable (``units`` and ``description`` come from metrics.py),
# so that ``ds.failure_rate.plot()`` labels its axes in words
LONG_NAMES = {
    "failure_rate": "failure rate",
    "timeout_share": "timeout share of failures",
    "resilience_index": "resilience index",
    "deflection_ratio": "traffic deflection ratio",
    "gap_to_oracle": "failure rate above the oracle's",
    "arrived": "requests arrived",
    "completed": "requests completed",
    "timed_out": "requests timed out",
    "failed_other": "requests failed by a hard fault",
    "in_flight": "requests still in flight",
    "goodput": "goodput",
    "ttft_mean": "mean time to first token",
    "ttft_p50": "median time to first token",
    "ttft_p99": "99th percentile time to first token",
    "e2e_mean": "mean end-to-end latency",
    "e2e_p50": "median end-to-end latency",
    "e2e_p99": "99th percentile end-to-end latency",
    "decisions": "routing decisions",
    "routed": "routing decisions to the pod",
    "failures": "failures charged to the pod",
    "price": "mean risk price",
    "window_arrivals": "measured arrivals",
    "window_failures": "measured failures",
    "bandwidth_factor": "residual bandwidth factor",
    "health_label": "share of workers labelled unhealthy",
}


def variable_attrs(name: str) -> dict:
    """CF attrs of a dataset variable: long_name, units, description."""
    meta = METRICS.get(name) or SERIES[name]
    return {"long_name": LONG_NAMES.get(name, name), **meta._asdict()}


def scheduler_coords(schedulers) -> dict:
    """The ``scheduler`` coordinate and ``scheduler_description`` beside it: each policy's
    one-line description from the registry (empty for a name it does not know)."""
    names = [str(s) for s in schedulers]
    desc = [policies.get(s).description if s in policies.names() else "" for s in names]
    return {
        "scheduler": (
            "scheduler",
            np.array(names, dtype=object),
            {
                "long_name": "scheduler",
                "description": "; ".join(f"{n}: {d}" for n, d in zip(names, desc, strict=True)),
            },
        ),
        "scheduler_description": (
            "scheduler",
            np.array(desc, dtype=object),
            {"long_name": "scheduler description", "description": "from otfr_vec.policies"},
        ),
    }


def window_steps(sc, cfg) -> tuple[np.ndarray, np.ndarray]:
    """Each step's start time and window, binned exactly as the kernel bins them."""
    t = np.arange(sc.n_steps) * cfg.sim.dt
    return t, np.minimum((t / cfg.sim.window).astype(np.int64), sc.n_win - 1)


def window_means(sc, cfg) -> tuple[np.ndarray, np.ndarray]:
    """True factor and share labelled unhealthy per window and pod, sampled every step
    at the times the kernel sees them (step starts)."""
    t, win = window_steps(sc, cfg)
    counts = np.bincount(win, minlength=sc.n_win)[:, None]
    f = sc.degradation.factor(t)
    factor = np.zeros((sc.n_win, sc.layout.n_pods))
    np.add.at(factor, win, f)
    ref = np.minimum((t / cfg.health.refresh).astype(np.int64), sc.labels.shape[0] - 1)
    pod_n = np.bincount(sc.layout.pod, minlength=sc.layout.n_pods)
    label_pod = np.zeros((sc.labels.shape[0], sc.layout.n_pods))
    np.add.at(label_pod.T, sc.layout.pod, sc.labels.T.astype(np.float64))
    label_pod /= pod_n
    label = np.zeros_like(factor)
    np.add.at(label, win, label_pod[ref])
    return factor / counts, label / counts


def to_dataset(result: RunResult, cfg) -> xr.Dataset:
    sc = result.scenario
    scheds = list(result.states)
    factor, label = window_means(sc, cfg)
    rows = {s: scalar_metrics(st, cfg, factor) for s, st in result.states.items()}
    data = {}
    for name in METRICS:
        if name == "gap_to_oracle":
            continue
        vals = np.array([rows[s][name] for s in scheds])
        data[name] = ("scheduler", vals)
    fr = data["failure_rate"][1]
    gap = fr - fr[scheds.index("oracle")] if "oracle" in scheds else np.full(len(scheds), np.nan)
    data["gap_to_oracle"] = ("scheduler", gap)
    steps = np.bincount(window_steps(sc, cfg)[1], minlength=sc.n_win)[None, :, None]
    states = [result.states[s] for s in scheds]
    ts = np.stack([st.ts for st in states])
    win = np.stack([st.win for st in states])
    data["routed"] = (("scheduler", "window", "pod"), ts[:, TS_ROUTED])
    data["failures"] = (("scheduler", "window", "pod"), ts[:, TS_FAIL])
    data["price"] = (
        ("scheduler", "window", "pod"),
        np.stack([st.ts_price for st in states]) / steps,
    )
    data["window_arrivals"] = (("scheduler", "window"), win[:, WIN_ARR])
    data["window_failures"] = (("scheduler", "window"), win[:, WIN_FAIL])
    data["bandwidth_factor"] = (("window", "pod"), factor)
    data["health_label"] = (("window", "pod"), label)
    ds = xr.Dataset(
        data,
        coords={
            **scheduler_coords(scheds),
            "window": (
                "window",
                np.arange(sc.n_win) * cfg.sim.window,
                {
                    "long_name": "window start",
                    "units": "s",
                    "description": "start of the time-series window",
                },
            ),
            "pod": (
                "pod",
                np.arange(sc.layout.n_pods),
                {"long_name": "pod index", "units": "1", "description": "pod of the cluster"},
            ),
        },
    )
    for name in {**METRICS, **SERIES}:
        ds[name].attrs.update(variable_attrs(name))
    ds.attrs.update(
        {
            "otfr_vec:version": __version__,
            "otfr_vec:config": OmegaConf.to_yaml(cfg, resolve=True),
            "otfr_vec:rate": sc.rate,
            "otfr_vec:rho_net": sc.rho_net,
            "otfr_vec:degraded_pods": sc.degradation.pods.tolist(),
            "otfr_vec:wall_s": result.wall_s,
            "otfr_vec:requests": int(states[0].cnt[ARRIVED]),  # whole run, per scheduler
        }
    )
    return ds
