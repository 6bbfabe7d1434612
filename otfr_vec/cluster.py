"""Dask clusters for sweeps: one context manager from the ``dask`` config section.

The sweep never cares where its workers come from: a LocalCluster of processes sized to
the machine (the default), an existing scheduler (``dask=address``), batch jobs through
dask-jobqueue (``dask=slurm``, ``pbs``, ...), or no Dask at all (``dask=serial``, where
``client`` is None). Whatever starts here is closed here, on success or error.
"""

from __future__ import annotations

import contextlib
import logging
import os

from .config import ConfigError

JOBQUEUE = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
    "htcondor": "HTCondorCluster",
    "moab": "MoabCluster",
    "oar": "OARCluster",
}
KINDS = ("serial", "local", "address", *JOBQUEUE)


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def check(dask_cfg) -> None:
    """Raise ConfigError for an unusable ``dask`` section, before anything starts."""
    kind = dask_cfg.cluster
    if kind not in KINDS:
        raise ConfigError(f"dask.cluster={kind!r}: allowed values are {', '.join(KINDS)}")
    if kind == "address" and not dask_cfg.address:
        raise ConfigError("dask.address: dask=address needs the scheduler, e.g. tcp://host:8786")
    for key in ("n_workers", "threads_per_worker", "jobs"):
        value = dask_cfg[key]
        if value is not None and value < 1:
            raise ConfigError(f"dask.{key}={value!r}: must be at least 1")
    if kind in JOBQUEUE:
        try:
            import dask_jobqueue  # noqa: F401
        except ImportError as err:
            raise ConfigError(
                f"dask={kind} needs dask-jobqueue: pip install 'otfr_vec[jobqueue]'"
            ) from err


def _start(dask_cfg):
    """(cluster or None, client) for the section; the caller closes both."""
    from distributed import Client, LocalCluster

    # Hydra's stdout job logging would print every scheduler/worker INFO line
    logging.getLogger("distributed").setLevel(logging.WARNING)
    kind = dask_cfg.cluster
    if kind == "address":
        return None, Client(dask_cfg.address)
    if kind == "local":
        cluster = LocalCluster(
            n_workers=dask_cfg.n_workers or usable_cores(),
            threads_per_worker=dask_cfg.threads_per_worker,
            processes=dask_cfg.processes,
            dashboard_address=dask_cfg.dashboard,
            memory_limit=dask_cfg.memory_limit,
            # no dashboard: the scheduler still serves /health, on any free port
            scheduler_kwargs=None if dask_cfg.dashboard else {"dashboard_address": ":0"},
        )
    else:
        import dask_jobqueue

        kwargs = {k: v for k, v in dict(dask_cfg.cluster_kwargs).items() if v is not None}
        cluster = getattr(dask_jobqueue, JOBQUEUE[kind])(**kwargs)
        cluster.scale(jobs=dask_cfg.jobs)
    return cluster, Client(cluster)


def dashboard(client) -> str:
    """The dashboard address, or why there is none."""
    if "dashboard" in client.scheduler_info().get("services", {}):
        return client.dashboard_link
    return "none (pip install bokeh for the Dask dashboard)"


@contextlib.contextmanager
def connect(dask_cfg):
    """Yield a ``distributed.Client`` for ``dask_cfg`` (None for ``dask=serial``)."""
    check(dask_cfg)
    if dask_cfg.cluster == "serial":
        yield None
        return
    cluster, client = _start(dask_cfg)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


__all__ = ["KINDS", "check", "connect", "dashboard", "usable_cores"]
