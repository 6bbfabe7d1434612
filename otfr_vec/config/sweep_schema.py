"""Typed schema of a sweep: the scenario ``Config`` plus grid axes, store and Dask settings.

Registered in Hydra's ConfigStore as ``sweep_config`` and composed by ``conf/sweep.yaml``,
so ``python -m otfr_vec.sweep`` validates the sweep keys the same way ``otfr_vec.run``
validates the scenario keys, while ``conf/config.yaml`` (one scenario) stays unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from .schema import Config


@dataclass
class GridConfig:
    name: str = "sweep"  # names the default store, outputs/<name>.zarr; set by each grid
    # swept key -> list of values, nested like the config (degradation: {r: [0.1, 0.05]})
    # or with dotted keys ("degradation.r": [...]); one store dimension per key
    axes: dict[str, Any] = field(default_factory=dict)
    # grid: every combination of the axes' values; one_at_a_time: the base configuration
    # (each axis at its key's configured value, which must be on the axis) and each axis
    # alone through its other values (1 + sum(len - 1) points instead of the product)
    design: str = "grid"
    seeds: int = 1  # seed indices 0..seeds-1; cell seed = f(sim.seed, seed index)
    batch: int | None = None  # cells per Dask task; null = sized from measured cell time
    overwrite: bool = False  # discard an existing store instead of resuming it
    # run a scheduler once for cells that differ only in keys it does not read (the
    # label keys for a policy without labels, price keys for one without the price...);
    # the store is the same either way
    reuse: bool = True
    # s between progress lines (cells done / total, rate, ETA) when stderr is not a terminal
    progress_interval: float = 30.0


@dataclass
class DaskConfig:
    # serial (in this process) | local (LocalCluster) | address (existing scheduler)
    # | slurm | pbs | sge | lsf | htcondor | moab | oar (dask-jobqueue)
    cluster: str = "local"
    address: str | None = None  # cluster=address: tcp://host:8786
    n_workers: int | None = None  # local: worker processes, null = usable cores
    threads_per_worker: int = 1  # kernels are serial; one cell per thread
    processes: bool = True  # local: false = threads in this process
    dashboard: str | None = ":8787"  # local: dashboard address, null = none
    memory_limit: str = "auto"  # local: per worker
    jobs: int = 1  # jobqueue: batch jobs to submit (each job = cluster_kwargs.processes workers)
    cluster_kwargs: dict[str, Any] = field(default_factory=dict)  # to the jobqueue cluster
    # s without any worker after which the sweep stops (finished cells kept); for batch
    # jobs counted from the first worker that connected (jobs may queue for long)
    worker_timeout: float = 120.0


@dataclass
class SweepConfig(Config):
    sweep: GridConfig = field(default_factory=GridConfig)
    dask: DaskConfig = field(default_factory=DaskConfig)
    store: str = "outputs/${sweep.name}.zarr"  # the Zarr store of the sweep (resumed if present)


ConfigStore.instance().store(name="sweep_config", node=SweepConfig)


def flatten(tree, prefix: str = "") -> dict:
    """Nested mappings -> {dotted key: leaf}; lists and scalars are leaves."""
    out = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


__all__ = ["DaskConfig", "GridConfig", "SweepConfig", "flatten"]
