"""Run arrays + coordinates -> a labelled ``xarray.Dataset`` with units and descriptions."""

from __future__ import annotations

import numpy as np
import xarray as xr
from omegaconf import OmegaConf

from . import __version__, policies
from .engine import RunResult
from .kernels.structs import ARRIVED, TS_FAIL, TS_ROUTED, WIN_ARR, WIN_FAIL
from .metrics import METRICS, SERIES, scalar_metrics

# steps per chunk of post-processing: at most ~2**20 (step, pod) values at once (8 MiB a
# float64 array), so memory follows windows and pods, never the number of steps
CHUNK_VALUES = 1 << 20

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


def step_chunks(sc, cfg):
    """``(t, win)`` for consecutive chunks of steps, in step order: each step's start time
    and window, binned exactly as the kernel bins them."""
    chunk = max(1, CHUNK_VALUES // max(sc.layout.n_pods, 1))
    for s0 in range(0, sc.n_steps, chunk):
        t = np.arange(s0, min(s0 + chunk, sc.n_steps)) * cfg.sim.dt
        yield t, np.minimum((t / cfg.sim.window).astype(np.int64), sc.n_win - 1)


def window_counts(sc, cfg) -> np.ndarray:
    """Steps per window (int64[n_win])."""
    counts = np.zeros(sc.n_win, dtype=np.int64)
    for _, win in step_chunks(sc, cfg):
        counts += np.bincount(win, minlength=sc.n_win)
    return counts


def window_means(sc, cfg) -> tuple[np.ndarray, np.ndarray]:
    """True factor and share labelled unhealthy per window and pod, sampled every step
    at the times the kernel sees them (step starts).

    Accumulated chunk by chunk with ``np.add.at``, which adds in index order: every window
    sums its steps one by one in step order, so the means are bit-identical to summing
    one ``[n_steps, n_pods]`` array at once, without ever holding one.
    """
    n_pods = sc.layout.n_pods
    ref_max = sc.labels.shape[0] - 1
    pod_n = np.bincount(sc.layout.pod, minlength=n_pods)
    label_pod = np.zeros((sc.labels.shape[0], n_pods))
    np.add.at(label_pod.T, sc.layout.pod, sc.labels.T.astype(np.float64))
    label_pod /= pod_n
    factor = np.zeros((sc.n_win, n_pods))
    label = np.zeros_like(factor)
    counts = np.zeros(sc.n_win, dtype=np.int64)
    for t, win in step_chunks(sc, cfg):
        counts += np.bincount(win, minlength=sc.n_win)
        np.add.at(factor, win, sc.degradation.factor(t))
        ref = np.minimum((t / cfg.health.refresh).astype(np.int64), ref_max)
        np.add.at(label, win, label_pod[ref])
    return factor / counts[:, None], label / counts[:, None]


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
    steps = window_counts(sc, cfg)[None, :, None]
    states = [result.states[s] for s in scheds]
    ts = np.stack([st.ts for st in states])
    win = np.stack([st.win for st in states])
    data["routed"] = (("scheduler", "window", "pod"), ts[:, TS_ROUTED])
    data["failures"] = (("scheduler", "window", "pod"), ts[:, TS_FAIL])
    priced = np.array([bool(result.params[s].price_on) for s in scheds])[:, None, None]
    data["price"] = (  # NaN for a scheduler that does not compute the price
        ("scheduler", "window", "pod"),
        np.where(priced, np.stack([st.ts_price for st in states]) / steps, np.nan),
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
