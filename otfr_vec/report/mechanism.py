"""R8, the mechanism in one run's time series: the degraded pods' bandwidth and label,
the risk price, the traffic they receive and the failures charged to them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import policies
from . import plots
from .drawers import PRICED, Result, has, source_note
from .stores import SCHEDULER, Skip, Store
from .tables import by_scheduler, schedulers


def check_r8(store: Store):
    if not {"window", "pod"} <= set(store.ds.dims) or "price" not in store.ds:
        raise Skip("needs a single-run store with time series (`python -m otfr_vec.run out=...`)")
    has(store, "bandwidth_factor", "health_label", "routed", "failures")
    f = store.ds.bandwidth_factor
    for d in [x for x in f.dims if x not in ("window", "pod")]:
        f = f.isel({d: 0})
    if not (f.values.min(axis=0) < 1.0).any():
        raise Skip("the run has no degraded pod")


def r8(store: Store, _ctx, out: Path) -> str:
    """Mechanism time series of one run: factor, price, traffic share, failures."""
    ds = store.ds
    for d in [x for x in ds.dims if x not in ("window", "pod", SCHEDULER)]:
        ds = ds.isel({d: 0})
    plt = plots.pyplot()
    t = ds.window.values
    f = ds.bandwidth_factor.values
    degraded = f.min(axis=0) < 1.0
    fig, ax = plt.subplots(4, 1, figsize=(9, 9.5), sharex=True)
    ax[0].plot(t, f[:, degraded].mean(1), color="k", label="bandwidth factor")
    ax[0].plot(t, ds.health_label.values[:, degraded].mean(1), color="k", ls=":", label="label")
    ax[0].set_ylabel("degraded pods: mean\nbandwidth factor and\nlabel (1 = unhealthy)")
    scheds = schedulers(ds)
    for s in scheds:
        style = {"color": policies.color(s), "lw": 1.2}
        routed = ds.routed.sel(scheduler=s).values.astype(float)
        total = routed.sum(1)
        share = np.divide(
            routed[:, degraded].sum(1), total, out=np.full_like(total, np.nan), where=total > 0
        )
        ax[2].plot(t, 100 * share, label=s, **style)
        ax[3].plot(t, ds.failures.sel(scheduler=s).values[:, degraded].sum(1), **style)
        price = ds.price.sel(scheduler=s).values
        if s in PRICED:  # every scheduler's price is computed; these two route by it
            ax[1].plot(t, price[:, degraded].mean(1), label=f"{s}, degraded pods", **style)
            ax[1].plot(t, price[:, ~degraded].mean(1), ls="--", label=f"{s}, healthy pods", **style)
    ax[1].set_ylabel("risk price pi\n(mean over the pods' workers)")
    ax[2].set_ylabel("decisions to degraded\npods (% of all)")
    ax[3].set_ylabel("failures charged to\ndegraded pods (per s)")
    ax[3].set_xlabel("time (s)")
    for a in ax:
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            plots.legend_right(a)
    fig.tight_layout()
    plots.save(fig, out / "R8_mechanism.png")
    table = by_scheduler(ds.expand_dims(run=["this run"]), "failure_rate", "run", "run")
    return "\n\n".join(
        [
            source_note(store),
            plots.image(
                "R8: degraded pods' bandwidth and label, price, traffic share, failures over time",
                "R8_mechanism.png",
            ),
            f"Degraded pods: {', '.join(str(p) for p in ds.pod.values[degraded])}.",
            table,
        ]
    )


MECHANISM = Result("R8", "Mechanism time series of one run", None, check_r8, r8)

__all__ = ["MECHANISM"]
