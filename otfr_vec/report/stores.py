"""Opening stores and choosing, for each result, the one store it is drawn from.

A store says what it is in its attrs: ``otfr_vec:config`` (the resolved configuration,
with ``sweep.name``, the grid) and, for a sweep, ``otfr_vec:sweep`` (the configuration
that defines its cells). A result prefers a store of its own grid; when several stores
qualify and the grid does not decide, the report refuses and says how to name one
(``--use R1=PATH`` or ``--use severity=PATH``) instead of picking the first.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from omegaconf import OmegaConf

from ..config.schema import Config
from ..config.sweep_schema import flatten
from ..metrics import METRICS
from ..store import PLANNED, StoreError, verify
from ..sweep import SWEEP_KEYS

SEED, SCHEDULER = "seed", "scheduler"
# keys that never make a store's scenario differ from the study's: the swept seed, the
# scheduler dimension, and where the output went
NOT_SETTING = ("sim.seed", "schedulers", "out")


class Skip(Exception):
    """A result cannot be drawn from a store; the message says why."""


class ReportError(Exception):
    """Bad input to the report (a store, a flag); the message names it and what to do."""


def study_setting() -> dict:
    """The study's setting: this version's configuration defaults, flattened."""
    return flatten(OmegaConf.to_container(OmegaConf.structured(Config)))


def same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


@dataclass
class Store:
    path: str
    ds: xr.Dataset  # loaded; cells not marked done are NaN
    config: dict | None  # flattened resolved configuration; None if the store has none
    kind: str  # sweep | run | unknown
    cells: int = 1  # cells (points x seeds) of the grid
    finished: int = 1
    unfinished: list[str] = field(default_factory=list)  # points short of seeds, in words
    damaged: list[str] = field(default_factory=list)  # finished cells whose counts disagree
    missing: list[str] = field(default_factory=list)  # metrics this store lacks
    used_by: list[str] = field(default_factory=list)  # results drawn from it

    @property
    def grid(self) -> str | None:
        return self.config.get("sweep.name") if self.config and self.kind == "sweep" else None

    @property
    def axes(self) -> list[str]:
        """Swept dimensions (config keys), in the store's order."""
        ref = next((v for v in ("failure_rate", "done") if v in self.ds), None)
        dims = self.ds[ref].dims if ref else self.ds.dims
        return [str(d) for d in dims if d in self.ds.coords and d not in (SEED, SCHEDULER)]

    @property
    def seeds(self) -> int:
        return int(self.ds.sizes.get(SEED, 1))

    def differs(self) -> list[str] | None:
        """Scenario keys whose value differs from the study's setting (the configuration
        defaults), swept keys excluded, as ``key = value (study: default)``; None when the
        store records no configuration."""
        if self.config is None:
            return None
        study, swept = study_setting(), set(self.axes)
        out = []
        for key, value in self.config.items():
            top = key.split(".")[0]
            if key in swept or key in NOT_SETTING or top in SWEEP_KEYS:
                continue
            if key not in study:
                out.append(f"{key} = {value!r} (not a key of this version)")
            elif not same(value, study[key]):
                out.append(f"{key} = {value!r} (study: {study[key]!r})")
        return out

    def describe(self) -> str:
        """One line: what the store is, how finished, how it relates to the study."""
        what = {"sweep": f"grid `{self.grid}`", "run": "one run"}.get(self.kind, "no recorded grid")
        parts = [what]
        if self.axes:
            grid = " x ".join(f"{a} {self.ds.sizes[a]}" for a in self.axes)
            if PLANNED in self.ds.coords:
                n = int(self.ds[PLANNED].sum())
                grid = f"{grid}, one key at a time ({n} points)"
            parts.append(grid)
        parts.append(f"{self.seeds} seed{'s' if self.seeds != 1 else ''}")
        if self.finished < self.cells:
            parts.append(f"{self.finished} of {self.cells} cells finished")
        if self.damaged:
            n = len(self.damaged)
            parts.append(f"{n} damaged cell{'s' if n > 1 else ''} left out")
        diff = self.differs()
        if diff is None:
            parts.append("configuration not recorded")
        elif diff:
            shown = ", ".join(diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
            parts.append(f"differs from the study's setting: {shown}")
        else:
            parts.append("the study's setting")
        return "; ".join(parts)


def _config(attrs: dict) -> dict | None:
    text = attrs.get("otfr_vec:config")
    if not isinstance(text, str):
        return None
    try:
        tree = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    except Exception:  # a store of another tool, or a hand-made one: no usable config
        return None
    return flatten(tree) if isinstance(tree, dict) else None


def _load(ds: xr.Dataset) -> tuple[xr.Dataset, xr.DataArray | None]:
    """Load every variable; one whose chunks cannot all be decoded (a corrupted chunk)
    is read cell by cell, the unreadable cells become NaN and are returned as a mask
    over the cell dimensions (None when everything read)."""
    out, bad = {}, None
    for name, da in ds.data_vars.items():
        try:
            out[name] = da.load()
            continue
        except Exception:  # zarr and its codecs raise many types for a damaged chunk
            pass
        cell_dims = [d for d in da.dims if d != SCHEDULER]
        values = np.full(da.shape, np.nan)
        miss = np.zeros([ds.sizes[d] for d in cell_dims], bool)
        for idx in np.ndindex(*miss.shape):
            at = dict(zip(cell_dims, idx, strict=True))
            try:
                values[tuple(at.get(d, slice(None)) for d in da.dims)] = da.isel(at).values
            except Exception:
                miss[idx] = True
        out[name] = da.copy(data=values)
        mask = xr.DataArray(miss, dims=cell_dims, coords={d: ds[d] for d in cell_dims})
        bad = mask if bad is None else (bad | mask)
    return ds.assign(out).load(), bad


def _inconsistent(ds: xr.Dataset) -> xr.DataArray | None:
    """Cells whose counts break the identities every finished cell obeys (arrived =
    completed + timed out + failed + in flight; failure_rate x arrived = failures): a
    lost chunk of an integer variable reads back as 0, not as a hole, and only this
    shows it. True per cell (over every dimension but scheduler)."""
    counts = ("arrived", "completed", "timed_out", "failed_other", "in_flight")
    bad = []
    if set(counts) <= set(ds):
        total = ds.completed + ds.timed_out + ds.failed_other + ds.in_flight
        bad.append(ds.arrived != total)
    if {"failure_rate", "arrived", "timed_out", "failed_other"} <= set(ds):
        fails = ds.timed_out + ds.failed_other
        bad.append(abs(ds.failure_rate * ds.arrived - fails) > 0.5)
        bad.append(ds.failure_rate.isnull() & (ds.arrived > 0))
    if not bad:
        return None
    out = bad[0]
    for b in bad[1:]:
        out = out | b
    return out.any(SCHEDULER)


def _unverified(path: str, done: xr.DataArray) -> xr.DataArray | None:
    """Done cells of a sweep store whose values do not match their per-cell checksum
    (:func:`otfr_vec.store.verify`: a changed value the count identities cannot see, a
    chunk lost or unreadable). None for a store without checksums (written by
    ``run out=`` or by an older otfr_vec), where the identities are the only check."""
    try:
        status = verify(path)
    except (StoreError, KeyError):
        return None
    if not status.damaged:
        return None
    mask = np.zeros(done.shape, bool)
    for at in status.damaged:
        mask[at] = True
    return xr.DataArray(mask, coords=done.coords, dims=done.dims)


def _cells(mask: xr.DataArray) -> list[str]:
    """The True cells of ``mask`` in words (``degradation.r = 0.1, seed 2``)."""
    out = []
    for idx in zip(*np.nonzero(np.atleast_1d(mask.values)), strict=True):
        where = [
            f"{d} {int(mask[d].values[i])}" if d == SEED else f"{d} = {label(mask[d].values[i])}"
            for d, i in zip(mask.dims, idx, strict=True)
        ]
        out.append(", ".join(where) or "the run")
    return out


def _unfinished(done: xr.DataArray, planned=None) -> list[str]:
    """The grid points (``planned`` ones only, if given) with fewer finished seeds than
    the store has, in words."""
    axes = [d for d in done.dims if d != SEED]
    per_point = done.sum(SEED) if SEED in done.dims else done.astype(int)
    total = done.sizes.get(SEED, 1)
    out = []
    for idx in itertools.product(*(range(done.sizes[d]) for d in axes)):
        if planned is not None and not planned.values[idx]:
            continue
        k = int(per_point.values[idx]) if axes else int(per_point.values)
        if k < total:
            where = ", ".join(
                f"{d} = {label(done[d].values[i])}" for d, i in zip(axes, idx, strict=True)
            )
            out.append(f"{where or 'the run'}: {k} of {total} seeds")
    return out


def open_store(path: str) -> Store:
    """Open and load a store written by ``otfr_vec.sweep`` or ``otfr_vec.run out=...``.

    Cells not marked done (a sweep still running or interrupted) become NaN; so do done
    cells that are damaged (counts that break their identities, unreadable chunks, values
    that fail their checksum); what is not finished or damaged and which metrics are
    absent are recorded for the report to say.
    """
    p = Path(path)
    if not p.exists():
        raise ReportError(f"{path}: no such store")
    try:
        ds = xr.open_zarr(p)
    except Exception as err:  # zarr raises several types for "not a store"
        raise ReportError(f"{path}: not a Zarr store readable by xarray ({err})") from None
    if SCHEDULER not in ds.dims or not any(m in ds for m in METRICS):
        raise ReportError(f"{path}: not an otfr_vec store (no metric by scheduler)")
    ds, unreadable = _load(ds)
    config = _config(ds.attrs)
    kind = "sweep" if "otfr_vec:sweep" in ds.attrs else ("run" if config else "unknown")
    store = Store(path, ds, config, kind)
    store.missing = [m for m in METRICS if m not in ds and m != "decisions"]
    done = None
    if "done" in ds:
        done = ds["done"].astype(bool)
        planned = ds.coords.get(PLANNED)  # a design that runs only some points
        planned = None if planned is None else planned.astype(bool).transpose(*done.dims[:-1])
        store.cells, store.finished = int(done.size), int(done.sum())
        if planned is not None:
            store.cells = int(planned.sum()) * done.sizes.get(SEED, 1)
        if store.finished == 0:
            raise ReportError(f"{path}: no finished cell yet (run the sweep first)")
        if store.finished < store.cells:
            store.unfinished = _unfinished(done, planned)
    bad = _inconsistent(ds)
    checked = _unverified(path, done) if kind == "sweep" and done is not None else None
    for more in (unreadable, checked):
        if more is not None:
            bad = more if bad is None else (bad | more)
    if bad is not None:
        if done is not None:
            bad = bad & done
        store.damaged = _cells(bad)
    keep = done if done is not None else None
    if store.damaged:
        keep = ~bad if keep is None else keep & ~bad
    if keep is not None and not bool(keep.all()):
        store.ds = ds.where(keep)  # fill values and damaged cells must not count
    return store


def label(v) -> str:
    """A coordinate value as text: 0.1, 30, none."""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


def at_defaults(ds: xr.Dataset, keep) -> tuple[xr.Dataset, str]:
    """``ds`` with every swept key not in ``keep`` held at the study's value, and a
    sentence saying so. A key whose study value is not on the grid is averaged instead
    (without skipping holes: a seed with a missing cell drops out of that point and the
    seed counts show it)."""
    study, held, only, averaged = study_setting(), [], [], []
    for d in [str(d) for d in ds.dims if d in ds.coords and d not in (SEED, SCHEDULER)]:
        if d in keep or d in ("window", "pod"):
            continue
        value = study.get(d)
        hit = [i for i, v in enumerate(ds[d].values) if value is not None and same(v, value)]
        if hit:
            ds = ds.isel({d: hit[0]})
            held.append(f"{d} = {label(value)}")
        elif ds.sizes[d] == 1:
            only.append(f"{d} = {label(ds[d].values[0])}")
            ds = ds.isel({d: 0})
        else:
            averaged.append(f"{d} ({', '.join(label(v) for v in ds[d].values)})")
            ds = ds.mean(d, skipna=False, keep_attrs=True)
    parts = []
    if held:
        parts.append("other swept keys held at the study's value: " + ", ".join(held))
    if only:
        parts.append("at the grid's only value of " + ", ".join(only))
    if averaged:
        parts.append(
            "averaged over " + ", ".join(averaged) + " (the study's value is not on the grid)"
        )
    return ds, ("; ".join(parts) + ".") if parts else ""


def choose(results, stores: list[Store], use: dict[str, Store]):
    """For each result, the store it is drawn from, or why it is skipped.

    ``use``: explicit choices, keyed by a result key (``R1``) or a grid name
    (``severity``: every result of that grid). Returns ``{key: (store, ctx, note)}`` and
    ``{key: reason}``; raises ReportError listing every result that several stores
    qualify for, with the candidates and the flag that settles it.
    """
    chosen, skipped, ambiguous = {}, {}, []
    for res in results:
        grids = [g for g in (res.grid, *getattr(res, "fallback", ())) if g]
        forced = use.get(res.key) or (use.get(res.grid) if res.grid else None)
        soft = next((use[g] for g in grids[1:] if g in use), None)
        if forced is None and soft is not None:  # named for a grid it only falls back to
            try:
                chosen[res.key] = (soft, res.check(soft), "named with --use")
                continue
            except Skip:
                pass
        if forced is not None:
            try:
                chosen[res.key] = (forced, res.check(forced), "named with --use")
            except Skip as why:
                raise ReportError(
                    f"--use {res.key}={forced.path}: {res.key} cannot be drawn from it: {why}"
                ) from None
            continue
        fits, reasons = [], {}
        for s in stores:
            try:
                fits.append((s, res.check(s)))
            except Skip as why:
                reasons.setdefault(str(why), []).append(f"`{s.path}`")
        home = []
        for grid in grids:  # its own grid first, then its fallbacks
            home = [(s, c) for s, c in fits if s.grid == grid]
            if home:
                break
        if len(home) == 1 and home[0][0].grid != res.grid:
            s, ctx = home[0]
            chosen[res.key] = (s, ctx, f"not a store of the `{res.grid}` grid: from `{s.grid}`")
        elif len(home) == 1:
            chosen[res.key] = (*home[0], "")
        elif len(home) > 1 or (not home and len(fits) > 1):
            ambiguous.append((res, [s for s, _ in (home or fits)], bool(home)))
        elif fits:
            s, ctx = fits[0]
            note = (
                f"not a store of the `{res.grid}` grid ({s.describe().split(';')[0]})"
                if res.grid
                else ""
            )
            chosen[res.key] = (s, ctx, note)
        else:
            skipped[res.key] = (
                "; ".join(f"{', '.join(paths)}: {why}" for why, paths in reasons.items())
                or "no store given"
            )
    if ambiguous:
        lines = ["several stores qualify; name the one to use with --use KEY=PATH:"]
        groups: dict[tuple, tuple[list, list]] = {}  # same candidates: said once
        for res, cands, by_grid in ambiguous:
            key = cands[0].grid if by_grid else res.key
            groups.setdefault((key, tuple(s.path for s in cands)), ([], cands))[0].append(res)
        for (key, _), (same_, cands) in groups.items():
            what = f"grid {key}" if key == same_[0].grid else same_[0].title
            lines.append(f"  {', '.join(r.key for r in same_)} ({what}):")
            lines += [f"    {s.path}: {s.describe()}" for s in cands]
            lines.append(f"    e.g. --use {key}={cands[0].path}")
        lines.append(
            "(--use takes a result, R1, or a grid name, severity, for every result of that grid)"
        )
        raise ReportError("\n".join(lines))
    return chosen, skipped


__all__ = [
    "ReportError",
    "Skip",
    "Store",
    "at_defaults",
    "choose",
    "label",
    "open_store",
    "study_setting",
]
