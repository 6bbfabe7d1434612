"""A testbed run's records -> the simulator's Dataset (same names, dims, units, attrs).

Every metric is reduced as :mod:`otfr_vec.metrics` reduces the kernel's counters, with
its own functions where they exist (resilience, deflection, log-histogram quantiles), so
a testbed dataset and ``otfr_vec.simulate``'s can be compared variable by variable:

* measured requests: scheduled arrival in ``[sim.warmup, sim.duration - sim.timeout)``
  (the same requests in both: same seed, same workload);
* latencies from the router's receipt of a request (its arrival; the deadline counts
  from there); ``completed``: last token out before ``sim.duration``;
* ``routed``: decisions (prefill and decode) per window of their time and pod of the
  chosen worker; ``failures``: timeouts and failures per window of their time, charged
  to the pods of the request's prefill and decode workers;
* ``bandwidth_factor`` and ``health_label``: the scenario itself, as in the simulator;
* ``price``: the online router's own mean risk price per window and pod (it runs the
  simulator's price kernel on what the testbed showed it).

Added, under a ``request`` dimension: what happened to each replayed request
(``tb_*`` variables), for analyses the aggregate metrics cannot answer (transfer times
against the model, where requests timed out). Run attributes ``testbed:*`` give the
router implementation, link set-up and the host's headroom verdict.
"""

from __future__ import annotations

import json
import platform

import numpy as np
import xarray as xr
from omegaconf import OmegaConf

from .. import __version__
from ..kernels.hist import hist_of
from ..metrics import METRICS, SERIES, count_metrics
from ..results import scheduler_coords, variable_attrs, window_means
from .router import OUTCOME

REQUEST_VARS = {
    "tb_arrival": ("s", "scheduled arrival of the request (the replayed workload)"),
    "tb_ingress": ("1", "ingress pod of the request"),
    "tb_prefill_worker": ("1", "prefill worker chosen (-1: none)"),
    "tb_decode_worker": ("1", "decode worker chosen (-1: none)"),
    "tb_outcome": ("1", "0 pending, 1 success, 2 timeout, 3 failure"),
    "tb_where": (
        "1",
        "state at a timeout or failure: 1 prefill queue/service, 2 waiting for a decode "
        "slot, 3 KV transfer, 4 waiting for a late first token, 5 decoding, 6 router backstop",
    ),
    "tb_send_lateness": ("s", "how late the load generator sent the request"),
    "tb_received": ("s", "router's receipt of the request (its arrival for the deadline)"),
    "tb_prefilled": ("s", "prefill ended (the prefill worker's clock)"),
    "tb_prefill_seen": ("s", "the router learnt that the prefill ended"),
    "tb_kv_start": ("s", "decode slot reserved, KV transfer started"),
    "tb_kv_end": ("s", "KV transfer ended (last byte received)"),
    "tb_first_token": ("s", "first token out"),
    "tb_first_seen": ("s", "the router learnt that the first token was out"),
    "tb_last_token": ("s", "last token out"),
    "tb_resolved": ("s", "when the request's outcome was decided"),
}


def _hist(x: np.ndarray) -> np.ndarray:
    """The kernel's latency histogram (``hist_add``) of the values ``x``."""
    return hist_of(np.ascontiguousarray(x, dtype=np.float64))


def _windows(t: np.ndarray, window: float, n_win: int) -> np.ndarray:
    return np.minimum((t / window).astype(np.int64), n_win - 1)


def policy_dataset(out, cfg, sc, policy: str) -> xr.Dataset:
    """The Dataset of one testbed run (one scheduler)."""
    rec, wl = out.records, out.workload
    sim = cfg.sim
    pod = sc.layout.pod
    n_pods, n_win = sc.layout.n_pods, sc.n_win
    a = wl["arrival"]
    measure_end = sim.duration - sim.timeout
    meas = (a >= sim.warmup) & (a < measure_end)
    outcome = rec["outcome"]
    ok, to, fo = outcome == OUTCOME["success"], outcome == OUTCOME["timeout"], outcome == 3
    t_recv, t_first, t_end = rec["t_recv"], rec["t_first"], rec["t_end"]
    done = ok & np.isfinite(t_end) & (t_end <= sim.duration)
    arrived = int(meas.sum())
    n_to, n_fo, n_done = int((meas & to).sum()), int((meas & fo).sum()), int((meas & done).sum())
    ttft = (t_first - t_recv)[meas & done]
    e2e = (t_end - t_recv)[meas & done]
    # time series, binned as the kernel bins them
    routed = np.zeros((n_win, n_pods), np.int64)
    for t_col, w_col in (("t_route_p", "p"), ("t_route_d", "d")):
        sel = rec[w_col] >= 0
        np.add.at(routed, (_windows(rec[t_col][sel], sim.window, n_win), pod[rec[w_col][sel]]), 1)
    bad = to | fo
    failures = np.zeros((n_win, n_pods), np.int64)
    for w_col in ("p", "d"):
        sel = bad & (rec[w_col] >= 0) & np.isfinite(rec["t_resolve"])
        wins = _windows(rec["t_resolve"][sel], sim.window, n_win)
        np.add.at(failures, (wins, pod[rec[w_col][sel]]), 1)
    win_a = _windows(a, sim.window, n_win)
    win_arr = np.bincount(win_a[meas], minlength=n_win)
    win_fail = np.bincount(win_a[meas & bad], minlength=n_win)
    factor, label = window_means(sc, cfg)
    decisions = int((rec["p"] >= 0).sum() + (rec["d"] >= 0).sum())
    m = count_metrics(
        cfg, arrived, n_done, n_to, n_fo, win_arr, win_fail, routed, factor,
        (_hist(ttft), float(ttft.sum())), (_hist(e2e), float(e2e.sum())), decisions,
    )  # fmt: skip
    m["gap_to_oracle"] = np.nan
    data = {k: ("scheduler", [v]) for k, v in m.items()}
    data["routed"] = (("scheduler", "window", "pod"), routed[None])
    data["failures"] = (("scheduler", "window", "pod"), failures[None])
    price = np.full((n_win, n_pods), np.nan)
    got = np.asarray(rec.get("price", np.zeros((0, 0))))
    if got.ndim == 2 and got.shape[1] == n_pods:
        price[: got.shape[0]] = got[:n_win]
    data["price"] = (("scheduler", "window", "pod"), price[None])
    data["window_arrivals"] = (("scheduler", "window"), win_arr[None])
    data["window_failures"] = (("scheduler", "window"), win_fail[None])
    data["bandwidth_factor"] = (("window", "pod"), factor)
    data["health_label"] = (("window", "pod"), label)
    cols = {
        "tb_arrival": a,
        "tb_ingress": wl["ingress"],
        "tb_prefill_worker": rec["p"],
        "tb_decode_worker": rec["d"],
        "tb_outcome": outcome,
        "tb_where": rec["where"],
        "tb_send_lateness": out.lateness,
        "tb_received": t_recv,
        "tb_prefilled": rec["t_prefilled"],
        "tb_prefill_seen": rec["t_prefill_rx"],
        "tb_kv_start": rec["t_tx"],
        "tb_kv_end": rec["t_kv"],
        "tb_first_token": t_first,
        "tb_first_seen": rec["t_first_rx"],
        "tb_last_token": t_end,
        "tb_resolved": rec["t_resolve"],
    }
    for k, v in cols.items():
        data[k] = (("scheduler", "request"), np.asarray(v)[None])
    ds = xr.Dataset(
        data,
        coords={  # the simulator's coordinates and attrs (otfr_vec.results.to_dataset)
            **scheduler_coords([policy]),
            "window": (
                "window",
                np.arange(n_win) * sim.window,
                {
                    "long_name": "window start",
                    "units": "s",
                    "description": "start of the time-series window",
                },
            ),
            "pod": (
                "pod",
                np.arange(n_pods),
                {"long_name": "pod index", "units": "1", "description": "pod of the cluster"},
            ),
            "request": np.arange(a.size),
        },
    )
    for name in {**METRICS, **SERIES}:
        if name in ds:
            ds[name].attrs.update(variable_attrs(name))
    for name, (units, desc) in REQUEST_VARS.items():
        ds[name].attrs.update(units=units, description=desc)
    ds.attrs.update(run_attrs(out, cfg, sc, policy))
    return ds


def _q(x, q) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.quantile(x, q)) if x.size else float("nan")


def run_attrs(out, cfg, sc, policy: str) -> dict:
    from .routing import router_source

    info, rec = out.info, out.records
    cpu = info.get("cpu", {})
    tc = np.asarray([c[1] for c in info.get("tc_changes", [])])
    return {
        f"testbed:{policy}:host_bound_reasons": json.dumps(info.get("host_bound", [])),
        f"testbed:{policy}:cpu": json.dumps(cpu),
        f"testbed:{policy}:send_lateness_p50_s": _q(out.lateness, 0.5),
        f"testbed:{policy}:send_lateness_p99_s": _q(out.lateness, 0.99),
        f"testbed:{policy}:tick_lag_p99_s": _q(rec["lag"], 0.99),
        f"testbed:{policy}:decision_us_p50": _q(rec["decide_ns"], 0.5) / 1e3,
        f"testbed:{policy}:decision_us_p99": _q(rec["decide_ns"], 0.99) / 1e3,
        f"testbed:{policy}:tc_change_lateness_max_s": float(tc.max()) if tc.size else 0.0,
        f"testbed:{policy}:backstops": int(rec["backstops"]),
        f"testbed:{policy}:send_failures": int(info.get("send_failures", 0)),
        f"testbed:{policy}:wall_s": float(out.wall_s),
        f"testbed:{policy}:netns": int(out.netns),
        "testbed:router": router_source(),
        "testbed:kernel": platform.release(),
        "testbed:host": platform.node(),
        "otfr_vec:version": __version__,
        "otfr_vec:config": OmegaConf.to_yaml(cfg, resolve=True),
        "otfr_vec:rate": sc.rate,
        "otfr_vec:rho_net": sc.rho_net,
        "otfr_vec:degraded_pods": sc.degradation.pods.tolist(),
        "otfr_vec:requests": int(out.workload["arrival"].size),
    }


def combine(parts: list[xr.Dataset]) -> xr.Dataset:
    """One dataset of several schedulers' runs (the same config and seed)."""
    ds = xr.concat(
        parts,
        dim="scheduler",
        data_vars="minimal",
        coords="minimal",
        compat="override",
        combine_attrs="drop_conflicts",
    )
    for p in parts:
        ds.attrs.update(p.attrs)
    fr = ds.failure_rate
    if "oracle" in ds.scheduler.values:
        ds["gap_to_oracle"] = fr - fr.sel(scheduler="oracle")
    else:
        ds["gap_to_oracle"] = fr * np.nan
    ds["gap_to_oracle"].attrs.update(variable_attrs("gap_to_oracle"))
    ds.attrs["otfr_vec:wall_s"] = float(
        sum(p.attrs[f"testbed:{s}:wall_s"] for p in parts for s in p.scheduler.values)
    )
    return ds
