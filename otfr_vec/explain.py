"""What a run's numbers mean, and when they mean less than they seem.

:func:`notes` reads a simulated dataset and its configuration and returns short notes:
the scale of the network load (``rho_net`` and what a degraded link is offered,
``rho_net / r``) in one sentence, and warnings for results that look like findings but are
artefacts of the setting: an offered load near zero (every failure rate 0), a
degradation that no measured request lives through (it starts after the run ends, say),
schedulers that tie because every degraded pod's health label was missed (a seed effect,
not a bug), no pre-onset baseline for the resilience and deflection metrics, and too few
measured requests to resolve a failure rate. ``python -m otfr_vec.run`` prints them
after its table; a sweep can keep them per cell.

The scale relation is described in docs/MODEL.md ("The scale that decides everything").
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np

from .scenario.layout import prefill_per_pod
from .scenario.workload import make_workload

LOW_LOAD = 0.05  # offered prefill load below which queues hardly form
FEW_REQUESTS = 1000  # measured arrivals below which a failure rate is coarse


class Note(NamedTuple):
    level: str  # "note" or "warning"
    text: str

    def __str__(self) -> str:
        return f"{self.level}: {self.text}"


def _scale(ds, cfg, mean_prompt: float) -> Note:
    rho, deg, net = float(ds.attrs["otfr_vec:rho_net"]), cfg.degradation, cfg.network
    if rho == 0:
        why = (
            "cluster.prefill_fraction=1 (prefill only)"
            if cfg.cluster.prefill_fraction >= 1
            else "network.kv_bytes_per_token=0"
        )
        return Note("note", f"rho_net = 0: no KV cache crosses the network ({why}).")
    head = (
        f"rho_net = {rho:.3g} (a KV link at full bandwidth is busy {100 * rho:.3g} % of the time)"
    )
    if deg.pattern == "none":
        return Note("note", head + "; no link degrades (degradation.pattern=none).")
    over = rho / deg.r
    transfer = mean_prompt * net.kv_bytes_per_token / (net.bw0 * deg.r)
    if over > 1:
        what = (
            f"is offered rho_net / r = {over:.3g}x what it can carry, so during the "
            "degradation its transfers queue and the requests sent there time out"
        )
    else:
        what = (
            f"is offered rho_net / r = {over:.3g} of what it can carry: it keeps up, and "
            "failures come only from bursts or from transfers that alone outlast the deadline"
        )
    alone = (
        f" (one mean-size transfer alone takes {transfer:.2g} s there, deadline "
        f"{cfg.sim.timeout:g} s)"
    )
    return Note("note", f"{head}; a degraded link (r = {deg.r:g}) {what}{alone}.")


def _degraded_while_measured(ds, cfg) -> bool | None:
    """Whether a link is degraded while measured requests are in flight: in a window that
    overlaps ``[sim.warmup, sim.duration)`` (the measured arrivals' lifetimes: they arrive
    before ``sim.duration - sim.timeout``). None where nothing degrades by design."""
    if cfg.degradation.pattern == "none" or cfg.degradation.r >= 1:
        return None
    start = ds.window.values
    seen = start + cfg.sim.window > cfg.sim.warmup
    return bool((ds.bandwidth_factor.values[seen] < 1.0).any())


def _unmeasured(ds, cfg) -> list[Note]:
    """A warning where the degradation misses every measured request."""
    if _degraded_while_measured(ds, cfg) is not False:
        return []
    deg, sim = cfg.degradation, cfg.sim
    if (ds.bandwidth_factor.values < 1.0).any():
        where = f"it is over before the measured window opens at sim.warmup={sim.warmup:g} s"
        fix = "move degradation.onset after sim.warmup"
    else:
        where = (
            f"degradation.onset={deg.onset:g} s is not before sim.duration={sim.duration:g} s"
            if deg.onset >= sim.duration
            else f"no pod degrades (degradation.pods={deg.pods:g})"
        )
        fix = "set degradation.onset inside the run or raise sim.duration"
    return [
        Note(
            "warning",
            f"no measured request meets a degraded link: {where}, so every scheduler ran on "
            f"a healthy network and the results say nothing about degradation; {fix} (the "
            "measured requests arrive in [sim.warmup, sim.duration - sim.timeout)).",
        )
    ]


def _ties(ds, cfg) -> list[Note]:
    """Groups of schedulers whose every per-scheduler value is identical."""
    scheds = [str(s) for s in ds.scheduler.values]
    names = [v for v in ds.data_vars if "scheduler" in ds[v].dims and v != "gap_to_oracle"]
    groups: dict[bytes, list[str]] = {}
    for s in scheds:
        key = b"".join(np.ascontiguousarray(ds[v].sel(scheduler=s).values).tobytes() for v in names)
        groups.setdefault(key, []).append(s)
    tied = [g for g in groups.values() if len(g) > 1]
    if not tied:
        return []
    pairs = ", ".join(" = ".join(g) for g in tied)
    pods = [int(p) for p in ds.attrs.get("otfr_vec:degraded_pods", [])]
    labelled = pods and float(ds.health_label.isel(pod=pods).max()) > 0
    why = "they made the same decisions throughout"
    if _degraded_while_measured(ds, cfg) is False:
        why += " (no measured request met a degraded link: see the warning above)"
    elif pods and not labelled and cfg.health.noise == 0:
        why += (
            f". No degraded pod (pods {pods}) was ever labelled unhealthy: each episode goes "
            f"unlabelled with probability health.miss = {cfg.health.miss:g}, drawn per pod "
            f"and seed, and sim.seed = {cfg.sim.seed} missed them all, so a scheduler that "
            "reads labels saw no more than one that does not. That is a draw, not a bug: "
            "compare schedulers over several seeds (a sweep with sweep.seeds=N)"
        )
    return [Note("warning", f"identical results for {pairs}: {why}.")]


def notes(ds, cfg) -> list[Note]:
    """The notes and warnings of one simulated dataset ``ds`` of configuration ``cfg``."""
    cl, sim = cfg.cluster, cfg.sim
    n_prefill = cl.pods * prefill_per_pod(cl)
    workload = make_workload(cfg, n_prefill)
    mean_prompt = workload.mean_prompt()
    out = [_scale(ds, cfg, mean_prompt)]
    rate = float(ds.attrs["otfr_vec:rate"])
    load = rate * mean_prompt / (n_prefill * cfg.service.prefill_tokens_per_s)
    if load < LOW_LOAD:
        fix = (
            "scale the trace with workload.trace_load (e.g. 0.7), workload.trace_rate or "
            "workload.trace_speedup"
            if cfg.workload.kind == "trace"
            else "raise workload.load or workload.rate"
        )
        out.append(
            Note(
                "warning",
                f"the offered load is near zero: {rate:.3g} requests/s fill {load:.2%} of the "
                f"prefill capacity ({n_prefill} workers x {cfg.service.prefill_tokens_per_s:g}"
                " tokens/s), so queues hardly form and every scheduler's failure rate is about "
                f"0; {fix}.",
            )
        )
    arrived = int(ds.arrived.max())
    if 0 < arrived < FEW_REQUESTS:
        out.append(
            Note(
                "warning",
                f"only {arrived} requests arrive in the measured window: a failure rate "
                f"resolves no better than 1/{arrived} = {1 / arrived:.2%}.",
            )
        )
    deg = cfg.degradation
    if deg.pattern != "none" and deg.onset < sim.warmup + sim.window:
        out.append(
            Note(
                "warning",
                f"degradation.onset={deg.onset:g} leaves no whole window (sim.window = "
                f"{sim.window:g} s) of measured time after sim.warmup={sim.warmup:g}: "
                "resilience_index and deflection_ratio have no pre-onset baseline and are NaN.",
            )
        )
    return out + _unmeasured(ds, cfg) + _ties(ds, cfg)


def print_notes(ds, cfg, file=None) -> None:
    """Print :func:`notes`, one per line (``python -m otfr_vec.run`` calls this)."""
    for n in notes(ds, cfg):
        print(n, file=file or sys.stdout)


__all__ = ["Note", "notes", "print_notes"]
