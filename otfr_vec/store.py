"""The Zarr store of a sweep: lazy template, per-cell region writes, done mask, provenance.

Follows xarray-beam: the driver writes a lazy template once (metadata and coordinates
only, ``to_zarr(compute=False)``), each task writes only its own cells with
``to_zarr(region=...)`` (chunk size 1 along every sweep dimension, so no two cells share a
chunk and writers never race), and metadata is consolidated at the start and the end.

A cell is done only when its ``done`` entry is True, written *after* its metrics: a cell
killed half-way keeps ``done`` False (a missing chunk reads as the fill value) and is
simply run again. Zarr's local store writes each chunk to a temporary file and renames
it, so a chunk is either whole or absent. The template itself is written to a temporary
path and renamed, so a store that exists is always a complete template.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from omegaconf import OmegaConf

from . import __version__
from .config import ConfigError
from .config.sweep_schema import flatten
from .metrics import METRICS, Metric

ZARR = {"zarr_format": 2}
SEED, SCHEDULER = "seed", "scheduler"
IDENTITY = "otfr_vec:sweep"  # attr: the resolved configuration that defines the cells
CELL_VARS = {
    "done": Metric("1", "True once the cell's metrics are written; other cells hold fill values"),
    "rho_net": Metric("1", "KV link busy fraction at nominal bandwidth (docs/MODEL.md section 2)"),
    "offered_rate": Metric("requests/s", "offered arrival rate of the cell"),
    "requests": Metric("requests", "arrivals over the whole run (same for every scheduler)"),
}
CELL_DTYPES = {"done": bool, "rho_net": float, "offered_rate": float, "requests": np.int64}
DEPENDENCIES = ("numpy", "numba", "xarray", "zarr", "dask", "distributed", "hydra-core")


def template(axes: dict, cell_seeds: list, schedulers: list) -> xr.Dataset:
    """The empty sweep dataset, backed by lazy Dask zeros chunked one cell per chunk."""
    dims = (*axes, SEED)
    shape = tuple(len(v) for v in axes.values()) + (len(cell_seeds),)
    coords = {key: (key, np.asarray(values)) for key, values in axes.items()}
    coords[SEED] = (SEED, np.arange(len(cell_seeds)), {"description": "seed index"})
    coords["cell_seed"] = (
        SEED,
        np.asarray(cell_seeds, dtype=np.int64),
        {"description": "sim.seed of the cell: rerun one with python -m otfr_vec.run"},
    )
    coords[SCHEDULER] = np.asarray(schedulers, dtype=str)
    data = {}
    chunks = (1,) * len(shape)
    for name, dtype in CELL_DTYPES.items():
        data[name] = (dims, da.zeros(shape, dtype=dtype, chunks=chunks))
    for name in METRICS:
        dtype = np.int64 if METRICS[name].units in ("requests", "decisions") else float
        full = (*shape, len(schedulers))
        data[name] = ((*dims, SCHEDULER), da.zeros(full, dtype=dtype, chunks=(*chunks, -1)))
    ds = xr.Dataset(data, coords=coords)
    for name, meta in {**CELL_VARS, **METRICS}.items():
        ds[name].attrs.update(units=meta.units, description=meta.description)
    return ds


def provenance(cfg_yaml: str) -> dict:
    """Namespaced attrs saying what wrote the store, where and from which code."""
    versions = {"otfr_vec": __version__, "python": platform.python_version()}
    for dist in DEPENDENCIES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "otfr_vec:config": cfg_yaml,
        "otfr_vec:versions": versions,
        "otfr_vec:git_commit": commit or "unknown",
        "otfr_vec:host": socket.gethostname(),
        "otfr_vec:start": now(),
    }


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def create(path: str, ds: xr.Dataset, identity: dict, attrs: dict) -> None:
    """Write the template ``ds`` (metadata and coordinates only) atomically at ``path``."""
    ds = ds.assign_attrs({**attrs, IDENTITY: OmegaConf.to_yaml(identity)})
    tmp = f"{path.rstrip('/')}.tmp-{os.getpid()}"
    Path(tmp).parent.mkdir(parents=True, exist_ok=True)
    try:
        ds.to_zarr(tmp, mode="w", compute=False, consolidated=True, **ZARR)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def check_identity(path: str, identity: dict) -> None:
    """Refuse to resume a store written by a different configuration, naming what differs."""
    try:
        attrs = zarr.open_group(path, mode="r", **ZARR).attrs
        stored = OmegaConf.to_container(OmegaConf.create(attrs[IDENTITY]))
    except Exception as err:  # not a Zarr group, or a group without our attrs
        raise ConfigError(
            f"store={path}: exists and is not an otfr_vec sweep store; choose another store=PATH"
        ) from err
    old, new = flatten(stored), flatten(identity)
    diffs = [
        f"{k}: store has {old.get(k, '<absent>')!r}, this run has {new.get(k, '<absent>')!r}"
        for k in sorted(old.keys() | new.keys())
        if old.get(k, "<absent>") != new.get(k, "<absent>")
    ]
    if diffs:
        raise ConfigError(
            f"store={path} holds a sweep with a different configuration; it will not be "
            "resumed:\n  "
            + "\n  ".join(diffs)
            + "\nuse another store=PATH, or sweep.overwrite=true to discard it"
        )


def done_mask(path: str) -> np.ndarray:
    """Which cells are finished (bool array over the sweep dimensions and seed)."""
    return zarr.open_array(f"{path}/done", mode="r", **ZARR)[...]


class CellWriter:
    """Writes cells into an existing store: each cell's metrics, then its ``done`` entry.

    The region writes go through zarr directly on arrays opened once per task:
    ``to_zarr(region=...)`` re-opens and re-validates the whole store on every call
    (~0.1 s), a third of a small cell. Every cell is exactly one chunk of every array, as
    the template's chunking guarantees, so writers never share a chunk.
    """

    def __init__(self, path: str):
        group = zarr.open_group(path, mode="r+", **ZARR)
        self.arrays = {name: group[name] for name in (*METRICS, *CELL_VARS)}

    def write(self, index: dict, ds: xr.Dataset, extra: dict) -> None:
        """Write cell ``index`` ({dim: position}) from ``otfr_vec.simulate``'s dataset.

        Its time series are not stored (their shape depends on sim.duration and the
        cluster size); ``extra``: the cell's ``CELL_VARS`` other than ``done``.
        """
        at = tuple(index.values())
        for name in METRICS:
            self.arrays[name][at] = ds[name].values
        for name, value in extra.items():
            self.arrays[name][at] = value
        self.arrays["done"][at] = True  # last: a cell killed before this is not done


def finish(path: str, attrs: dict) -> None:
    """Add ``attrs`` (the end time) and consolidate the metadata for ``xr.open_zarr``."""
    group = zarr.open_group(path, mode="r+", **ZARR)
    group.attrs.update(attrs)
    zarr.consolidate_metadata(path, **ZARR)


__all__ = [
    "CELL_VARS",
    "CellWriter",
    "check_identity",
    "create",
    "done_mask",
    "finish",
    "now",
    "provenance",
    "template",
]
