"""Testbed runs -> Datasets: every scheduler of ``cfg.schedulers`` on one scenario."""

from __future__ import annotations

import sys

import numpy as np
import xarray as xr

from .bed import RunOutput, run_policy
from .dataset import combine, policy_dataset
from .headroom import verdict


def describe(cfg, sc) -> str:
    lay = sc.layout
    return (
        f"testbed: {cfg.cluster.pods} pods x {cfg.cluster.workers_per_pod} workers "
        f"({lay.n_prefill} prefill, {lay.n_workers - lay.n_prefill} decode processes), "
        f"{sc.rate:.1f} req/s, rho_net = {sc.rho_net:.3f}, links {8 * cfg.network.bw0 / 1e6:g} "
        f"Mbit/s, degradation {cfg.degradation.pattern} r = {cfg.degradation.r} on pods "
        f"{sc.degradation.pods.tolist()}, {cfg.sim.duration:g} s, seed {cfg.sim.seed}"
    )


def run_testbed(cfg, opts, quiet: bool = False) -> xr.Dataset:
    """Run every scheduler of ``cfg.schedulers`` in the testbed, one after the other."""
    from ..engine import make_scenario
    from .config import check_options, unsupported

    check_options(opts)
    errs = unsupported(cfg)
    if errs:
        from ..config import ConfigError

        raise ConfigError("not supported by the testbed:\n  " + "\n  ".join(errs))
    sc = make_scenario(cfg)
    parts = []
    for policy in cfg.schedulers:
        out: RunOutput = run_policy(cfg, policy, opts, sc=sc, quiet=quiet)
        why = verdict(out.info.get("cpu", {}), out.lateness, out.records["lag"], opts)
        out.info["host_bound"] = why
        if why:
            print(
                f"testbed: warning: {policy}: the host, not the model, may have set this "
                "run's timing: " + "; ".join(why),
                file=sys.stderr,
            )
        parts.append(policy_dataset(out, cfg, sc, policy))
    ds = combine(parts)
    ds.attrs["testbed:host_bound"] = int(
        any(ds.attrs.get(f"testbed:{s}:host_bound_reasons", "[]") != "[]" for s in cfg.schedulers)
    )
    return ds


def request_table(ds: xr.Dataset) -> dict:
    """Per scheduler: KV transfer times (s) of the requests whose transfer ended."""
    out = {}
    for s in ds.scheduler.values:
        x = ds.sel(scheduler=s)
        dt = (x.tb_kv_end - x.tb_kv_start).values
        out[str(s)] = dt[np.isfinite(dt)]
    return out
