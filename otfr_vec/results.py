"""Run arrays + coordinates -> a labelled ``xarray.Dataset`` with units and descriptions."""

from __future__ import annotations

import numpy as np
import xarray as xr
from omegaconf import OmegaConf

from . import __version__
from .engine import RunResult
from .kernels.structs import ARRIVED, TS_FAIL, TS_ROUTED, WIN_ARR, WIN_FAIL
from .metrics import METRICS, SERIES, scalar_metrics


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
            "scheduler": np.array(scheds, dtype=str),
            "window": (
                "window",
                np.arange(sc.n_win) * cfg.sim.window,
                {"units": "s", "description": "start of the time-series window"},
            ),
            "pod": np.arange(sc.layout.n_pods),
        },
    )
    for name, meta in {**METRICS, **SERIES}.items():
        ds[name].attrs.update(units=meta.units, description=meta.description)
    ds["gap_to_oracle"].attrs.update(METRICS["gap_to_oracle"]._asdict())
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
