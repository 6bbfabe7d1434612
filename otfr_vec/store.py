"""Zarr stores: a sweep's resumable store (template, writer, checksums, repair) and a run's dataset.

A sweep store is written by the sweep's driver process only (workers compute cells and
return their values), so no two writers ever touch one chunk: the driver holds a lock file
beside the store for as long as it writes. The template (metadata and coordinates, Zarr
format 3, ``to_zarr(compute=False)`` as in xarray-beam) is written to a temporary path and
renamed. Arrays are chunked ``CHUNK_CELLS`` cells per chunk, so a sweep of thousands of
cells stays a few hundred files; the driver writes the cells it has received every
``FLUSH_S`` seconds, chunk by chunk, each chunk written atomically (a temporary file,
renamed), every metric first, then each cell's ``checksum``, then its ``done`` entry.

A cell counts as done only when ``done`` is True *and* its values read back and match
its checksum (a 64-bit BLAKE2b of everything stored for it). A resume verifies every
done cell: a lost chunk (read back as fill values), a chunk of junk (a Zarr checksum or
codec error) or values changed behind our back make their cells damaged; they are named
and recomputed. Which paths may be created or replaced, and the lock: otfr_vec.paths.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import subprocess
import warnings
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import dask.array as da
import numpy as np
import xarray as xr
import zarr
from omegaconf import OmegaConf

from . import __version__
from .config.sweep_schema import flatten
from .metrics import METRICS, Metric
from .paths import (  # noqa: F401  (part of this module's interface)
    CONFIG,
    IDENTITY,
    StoreError,
    check_target,
    exists,
    is_url,
    lock,
    now,
    replace_dir,
    resolve,
)

ZARR_FORMAT = 3
SEED, SCHEDULER = "seed", "scheduler"
PLANNED = "planned"  # coordinate of a store whose design runs only some grid points
CHUNK_CELLS = 1024  # cells per chunk: ~100 KB per chunk of a scheduler metric
FLUSH_S = 1.0  # the driver writes received cells at most this long after they arrive
CELL_VARS = {
    "rho_net": Metric("1", "busy fraction of a KV link at nominal bandwidth"),
    "offered_rate": Metric("requests/s", "offered arrival rate of the cell"),
    "requests": Metric("requests", "arrivals over the whole run (same for every scheduler)"),
    "checksum": Metric("1", "BLAKE2b-64 of the cell's stored values: verified on resume"),
    "done": Metric("1", "True once the cell is written; other cells hold fill values"),
}
CELL_DTYPES = {
    "rho_net": np.float64,
    "offered_rate": np.float64,
    "requests": np.int64,
    "checksum": np.uint64,
    "done": np.bool_,
}
LONG_NAMES = {
    "rho_net": "KV link load at nominal bandwidth",
    "offered_rate": "offered arrival rate",
    "requests": "requests arrived over the run",
    "checksum": "cell checksum",
    "done": "cell written",
}
DEPENDENCIES = ("numpy", "numba", "xarray", "zarr", "dask", "distributed", "hydra-core")


def dtype(name: str):
    """The stored dtype of a sweep variable."""
    if name in CELL_DTYPES:
        return CELL_DTYPES[name]
    return np.int64 if METRICS[name].units in ("requests", "decisions") else np.float64


# the order cells are written in: metrics, then the checksum, then done (last)
WRITE_ORDER = (*METRICS, "rho_net", "offered_rate", "requests", "checksum", "done")
HASHED = WRITE_ORDER[:-2]


def write_dataset(ds: xr.Dataset, path: str, **kwargs) -> None:
    """``ds.to_zarr`` in Zarr format 3 with consolidated metadata (so ``xr.open_zarr``
    opens it without a warning); zarr's notice that consolidation is an extension of the
    format is expected here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Consolidated metadata", category=UserWarning)
        ds.to_zarr(path, zarr_format=ZARR_FORMAT, consolidated=True, **kwargs)


def consolidate(path: str) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(path)


def save_run(ds: xr.Dataset, path: str) -> None:
    """Write a run's dataset at ``path`` (checked by ``check_target``) atomically."""
    ds = ds.assign_attrs({"otfr_vec:kind": "run"})
    if is_url(path):
        write_dataset(ds, path, mode="w")
        return
    tmp = f"{path.rstrip('/')}.tmp-{os.getpid()}"
    try:
        write_dataset(ds, tmp, mode="w")
        replace_dir(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


# ------------------------------------------------------------------ the sweep store


def chunk_shape(shape: tuple) -> tuple:
    """Chunks over the sweep dimensions holding at most ``CHUNK_CELLS`` cells, trailing
    dimensions whole first (seeds of one point stay together)."""
    chunks, room = [], CHUNK_CELLS
    for n in reversed(shape):
        c = max(1, min(n, room))
        chunks.append(c)
        room = max(1, room // c)
    return tuple(reversed(chunks))


def _coord(values: list) -> np.ndarray:
    """Axis values as an array; strings as objects (Zarr 3's variable-length strings: its
    fixed-width unicode type has no specification yet)."""
    arr = np.asarray(values)
    return arr.astype(object) if arr.dtype.kind == "U" else arr


def template(
    axes: dict, cell_seeds: list, schedulers: list, coord_attrs, planned=None
) -> xr.Dataset:
    """The empty sweep dataset, lazy (Dask zeros) in chunks of ``chunk_shape``.

    ``coord_attrs(key)``: the CF attrs (long_name, units, description) of a swept key.
    ``planned``: bool over the axes, the points a design other than the full grid runs
    (kept as the coordinate ``planned``; the other points stay empty).
    """
    from .results import scheduler_coords, variable_attrs

    dims = (*axes, SEED)
    shape = tuple(len(v) for v in axes.values()) + (len(cell_seeds),)
    chunks = chunk_shape(shape)
    coords = {key: (key, _coord(values), coord_attrs(key)) for key, values in axes.items()}
    coords[SEED] = (
        SEED,
        np.arange(len(cell_seeds)),
        {"long_name": "seed index", "units": "1", "description": "index of the cell's seed"},
    )
    coords["cell_seed"] = (
        SEED,
        np.asarray(cell_seeds, dtype=np.int64),
        {
            "long_name": "sim.seed of the cell",
            "units": "1",
            "description": "rerun one cell with python -m otfr_vec.run ... sim.seed=<this>",
        },
    )
    coords.update(scheduler_coords(schedulers))
    if planned is not None:
        coords[PLANNED] = (
            tuple(axes),
            np.asarray(planned, bool),
            {
                "long_name": "point run by the design",
                "units": "1",
                "description": "True where sweep.design runs the point (one_at_a_time: "
                "the base configuration and each axis alone); the other points stay empty",
            },
        )
    data = {}
    for name in CELL_VARS:
        data[name] = (dims, da.zeros(shape, dtype=dtype(name), chunks=chunks))
    for name in METRICS:
        full = (*shape, len(schedulers))
        z = da.zeros(full, dtype=dtype(name), chunks=(*chunks, -1))
        data[name] = ((*dims, SCHEDULER), z)
    ds = xr.Dataset(data, coords=coords)
    for name in METRICS:
        ds[name].attrs.update(variable_attrs(name))
    for name, meta in CELL_VARS.items():
        ds[name].attrs.update(
            long_name=LONG_NAMES[name], units=meta.units, description=meta.description
        )
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
        CONFIG: cfg_yaml,
        "otfr_vec:versions": versions,
        "otfr_vec:git_commit": commit or "unknown",
        "otfr_vec:host": socket.gethostname(),
        "otfr_vec:start": now(),
    }


def create(path: str, ds: xr.Dataset, identity: dict, attrs: dict) -> None:
    """Write the template ``ds`` (metadata and coordinates only) atomically at ``path``,
    replacing the sweep store there if any (``check_target`` said it may)."""
    ds = ds.assign_attrs({**attrs, IDENTITY: OmegaConf.to_yaml(identity)})
    encoding = {name: {"chunks": ds[name].data.chunksize} for name in ds.data_vars}
    if is_url(path):
        write_dataset(ds, path, mode="w", compute=False, encoding=encoding)
        return
    tmp = f"{path.rstrip('/')}.tmp-{os.getpid()}"
    Path(tmp).parent.mkdir(parents=True, exist_ok=True)
    try:
        write_dataset(ds, tmp, mode="w", compute=False, encoding=encoding)
        replace_dir(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def check_identity(path: str, identity: dict) -> None:
    """Refuse to resume a store written by a different configuration, naming what differs."""
    try:
        attrs = zarr.open_group(path, mode="r").attrs
        stored = OmegaConf.to_container(OmegaConf.create(attrs[IDENTITY]))
    except Exception as err:  # not a Zarr group, or a group without our attrs
        raise StoreError(
            f"store={path}: exists and is not an otfr_vec sweep store; it is left untouched: "
            "choose another store=PATH"
        ) from err
    old, new = flatten(stored), flatten(identity)
    diffs = [
        f"{k}: store has {old.get(k, '<absent>')!r}, this run has {new.get(k, '<absent>')!r}"
        for k in sorted(old.keys() | new.keys())
        if old.get(k, "<absent>") != new.get(k, "<absent>")
    ]
    if diffs:
        raise StoreError(
            f"store={path} holds a sweep with a different configuration; it will not be "
            "resumed:\n  "
            + "\n  ".join(diffs)
            + "\nuse another store=PATH, or sweep.overwrite=true to discard it"
        )


def checksum(values: dict) -> np.uint64:
    """BLAKE2b-64 of a cell's stored values (``HASHED`` names, each as its stored dtype);
    never 0, the fill value of a cell not written."""
    h = hashlib.blake2b(digest_size=8)
    for name in HASHED:
        h.update(name.encode())
        h.update(np.ascontiguousarray(values[name], dtype=dtype(name)).tobytes())
    return np.uint64(max(1, int.from_bytes(h.digest(), "little")))


class Status(NamedTuple):
    done: np.ndarray  # bool over the sweep dimensions: written and verified
    damaged: dict  # cell index tuple -> why (its done entry is set but it does not verify)
    unreadable: list  # (array name, chunk key) that cannot be decoded


def _chunk_slices(arr) -> list:
    grid = [range(0, n, c) for n, c in zip(arr.shape, arr.chunks, strict=True)]
    import itertools

    return [
        tuple(slice(s, s + c) for s, c in zip(start, arr.chunks, strict=True))
        for start in itertools.product(*grid)
    ]


def _read(arr, name: str, unreadable: list):
    """The whole array; chunks that fail to decode read as fill values and are listed."""
    try:
        return arr[...]
    except Exception:
        pass
    out = np.full(arr.shape, arr.fill_value, dtype=arr.dtype)
    for sl in _chunk_slices(arr):
        try:
            out[sl] = arr[sl]
        except Exception as err:
            coords = tuple(s.start // c for s, c in zip(sl, arr.chunks, strict=True))
            unreadable.append((name, arr.metadata.encode_chunk_key(coords), sl, str(err)))
    return out


def verify(path: str) -> Status:
    """Read every array of a sweep store back and check every done cell's checksum."""
    group = zarr.open_group(path, mode="r")
    unreadable = []
    try:
        values = {name: _read(group[name], name, unreadable) for name in WRITE_ORDER}
    except KeyError:
        missing = [name for name in WRITE_ORDER if name not in group]
        if group.metadata.zarr_format == 2 and missing == ["checksum"]:
            why = "was written by an older otfr_vec (Zarr format 2, no per-cell checksums)"
        else:
            why = f"lacks the arrays {', '.join(missing)}, so it cannot be repaired cell by cell"
        raise StoreError(
            f"store={path}: {why}; it is left untouched: use another store=PATH, or "
            "sweep.overwrite=true to replace it"
        ) from None
    done = values["done"].astype(bool)
    damaged = {}
    for name, _key, sl, _err in unreadable:
        region = done[sl[: done.ndim]]
        for local in zip(*np.nonzero(region), strict=True):
            at = tuple(int(s.start + i) for s, i in zip(sl, local, strict=False))
            damaged.setdefault(at, f"{name}: chunk unreadable")
    for at in zip(*np.nonzero(done), strict=True):
        at = tuple(int(i) for i in at)
        if at in damaged:
            continue
        cell = {name: values[name][at] for name in HASHED}
        if checksum(cell) != values["checksum"][at]:
            damaged[at] = "values do not match their checksum (a chunk lost or changed)"
    for at in damaged:
        done[at] = False
    return Status(done, damaged, unreadable)


def repair_coords(path: str, tmpl: xr.Dataset) -> list[str]:
    """Rewrite every coordinate of the store that does not read back as the template's
    (a lost or junk chunk: coordinates are known from the plan); returns their names."""
    group = zarr.open_group(path, mode="r+")
    fixed = []
    for name, coord in tmpl.coords.items():
        want = np.asarray(coord.values)
        try:
            got = np.asarray(group[name][...])
            same = got.shape == want.shape and bool(np.all(got.astype(want.dtype) == want))
        except Exception:  # unreadable chunk; a missing array is refused by verify
            same = False
        if not same:
            group[name][...] = want
            fixed.append(str(name))
    return fixed


def repair(path: str, status: Status) -> None:
    """Delete the unreadable chunks (their cells are recomputed) and unmark damaged cells,
    so the store reads as it will be once they are rerun."""
    from zarr.core.sync import sync

    group = zarr.open_group(path, mode="r+")
    for name, key, _sl, _err in status.unreadable:
        arr = group[name]
        sync(arr.store_path.store.delete(f"{arr.path}/{key}"))
    if status.damaged:
        for name, value in (("checksum", 0), ("done", False)):
            arr = group[name]
            block = arr[...]
            for at in status.damaged:
                block[at] = value
            arr[...] = block


class Writer:
    """The driver's writer of cells into a sweep store it holds the lock of.

    ``add`` buffers a cell's values; ``flush`` writes every buffered cell, chunk by chunk
    and array by array in ``WRITE_ORDER`` (so ``done`` is last), and returns how many
    cells it wrote.
    """

    def __init__(self, path: str):
        group = zarr.open_group(path, mode="r+")
        self.arrays = {name: group[name] for name in WRITE_ORDER}
        self.chunks = self.arrays["done"].chunks
        self.buffer: dict = {}
        self.written = 0

    def add(self, at: tuple, values: dict) -> None:
        values = {name: np.asarray(values[name], dtype=dtype(name)) for name in HASHED}
        values["checksum"] = checksum(values)
        values["done"] = np.bool_(True)
        self.buffer[at] = values

    def flush(self) -> int:
        if not self.buffer:
            return 0
        by_chunk: dict = {}
        for at in self.buffer:
            start = tuple(i // c * c for i, c in zip(at, self.chunks, strict=True))
            by_chunk.setdefault(start, []).append(at)
        for name in WRITE_ORDER:
            arr = self.arrays[name]
            for start, cells in by_chunk.items():
                sl = tuple(
                    slice(s, min(s + c, n))
                    for s, c, n in zip(start, self.chunks, arr.shape, strict=False)
                )
                block = arr[sl]
                for at in cells:
                    block[tuple(i - s for i, s in zip(at, start, strict=True))] = self.buffer[at][
                        name
                    ]
                arr[sl] = block
        n = len(self.buffer)
        self.written += n
        self.buffer.clear()
        return n


def finish(path: str, attrs: dict) -> None:
    """Add ``attrs`` (the end time) and consolidate the metadata for ``xr.open_zarr``."""
    group = zarr.open_group(path, mode="r+")
    group.attrs.update(attrs)
    consolidate(path)


def done_mask(path: str) -> np.ndarray:
    """Which cells are marked done (bool array over the sweep dimensions and seed); see
    ``verify`` for which of them read back intact."""
    return zarr.open_array(f"{path}/done", mode="r")[...]


__all__ = [
    "CELL_VARS",
    "StoreError",
    "Writer",
    "check_identity",
    "check_target",
    "create",
    "done_mask",
    "finish",
    "lock",
    "now",
    "provenance",
    "repair",
    "repair_coords",
    "resolve",
    "save_run",
    "template",
    "verify",
]
