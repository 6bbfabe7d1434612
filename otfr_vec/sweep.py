"""Run a grid of scenarios on Dask into one resumable Zarr store (Hydra entry point).

python -m otfr_vec.sweep +grid=severity
python -m otfr_vec.sweep +grid=severity sim.duration=120 sweep.seeds=2 store=outputs/s.zarr
python -m otfr_vec.sweep +grid=label_noise dask=address dask.address=tcp://host:8786
python -m otfr_vec.sweep +sweep.axes.price.kappa=[0,0.5,1] dask=serial

A cell is one point of the grid and one seed index; it simulates every scheduler. Its
seed is derived from ``sim.seed`` and the seed index only, so every swept value of one
seed index sees the same workload, degradation and label draws (common random numbers),
and the store is bit-identical whichever workers run the cells, in whatever order.

Order of work: everything is validated (every cell's configuration, the store path), the
store's lock is taken, the store is created or checked (identity, every finished cell
verified) and only then, if any cell is left, is a Dask cluster started. Workers compute
cells and send their values back; the driver alone writes the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import os
import sys
import time
from collections import deque
from concurrent.futures import CancelledError
from typing import NamedTuple

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import cluster, store
from .config import CONF_DIR, Config, ConfigError, keys, validate
from .config.schema import RUNTIME_KEYS
from .config.sweep_schema import flatten
from .inputs import check_inputs
from .store import StoreError

SWEEP_KEYS = ("sweep", "dask", "store")  # not part of a cell's scenario configuration
DESIGNS = ("grid", "one_at_a_time")
TARGET_TASK_S = 0.5  # auto batching: cells per task so one task takes about this long
POLL_S = 1.0  # the driver checks its cluster and flushes the store at least this often


class Plan(NamedTuple):
    axes: dict  # dotted key -> list of values (store dimensions, in order)
    cell_seeds: list  # sim.seed of each seed index
    cells: list  # (index: positions along (*axes, seed), scenario config as a plain dict)
    identity: dict  # what defines the cells: the stored config a resume must match
    inputs: dict  # input file (as configured) -> sha256 of its content
    # index -> each scheduler's run inputs (engine.run_inputs, with the seed index): cells
    # with equal entries share that scheduler's run; None where sweep.reuse is off
    runs: dict | None = None

    @property
    def dims(self) -> tuple:
        return (*self.axes, store.SEED)

    @property
    def planned(self) -> np.ndarray | None:
        """bool over the axes: the points the design runs; None for a full grid."""
        if self.identity.get("sweep.design", "grid") == "grid":
            return None
        mask = np.zeros(tuple(len(v) for v in self.axes.values()), bool)
        for at, _ in self.cells:
            mask[at[:-1]] = True
        return mask

    def name(self, at: tuple) -> str:
        """A cell in words: ``degradation.r=0.1 seed=2``."""
        values = [v[i] for v, i in zip(self.axes.values(), at, strict=False)]
        return " ".join(f"{k}={v}" for k, v in zip(self.dims, [*values, at[-1]], strict=True))


class _WriteFailed(Exception):
    """Writing the store failed (an OSError of the writer, kept as ``args[0]``)."""


class SweepStopped(Exception):
    """The sweep stopped before its end; the message says what was kept and how to resume."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def cell_seed(seed: int, index: int) -> int:
    """The sim.seed of seed index ``index`` of a sweep with base ``sim.seed=seed``."""
    state = np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(2)
    return int((int(state[0]) << 32 | int(state[1])) >> 1)  # 63 bits: a valid sim.seed


def _axes(cfg, base) -> dict:
    """``sweep.axes`` flattened to {dotted key: values as the schema types them}, each key
    checked against the schema; values equal once typed (``[1, 1.0]``) are refused."""
    raw = OmegaConf.to_container(cfg.sweep.axes, resolve=True)
    axes, errors = {}, []
    known = keys.keys("run")
    for key, values in flatten(raw).items():
        if key in axes:
            errors.append(f"sweep.axes.{key}: given twice")
        elif key == "sim.seed":
            errors.append("sweep.axes.sim.seed: seeds are the seed dimension; set sweep.seeds=N")
        elif key == "schedulers":
            errors.append(
                "sweep.axes.schedulers: schedulers are always a dimension; set schedulers=[...]"
            )
        elif key not in known:
            import difflib

            near = difflib.get_close_matches(key, list(known), n=3)
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            errors.append(f"sweep.axes.{key}: not a configuration key{hint}")
        elif not isinstance(values, list):
            errors.append(f"sweep.axes.{key}={values!r}: must be a list of values, e.g. [{values}]")
        elif not values:
            errors.append(f"sweep.axes.{key}=[]: an axis needs at least one value")
        elif any(v is None or isinstance(v, (list, dict)) for v in values):
            errors.append(
                f"sweep.axes.{key}={values!r}: values must be numbers, strings or booleans"
            )
        else:
            typed = []
            for v in values:
                node = base.copy()
                try:
                    OmegaConf.update(node, key, v, merge=False)
                except OmegaConfBaseException as err:
                    errors.append(f"sweep.axes.{key}={v!r}: {str(err).splitlines()[0]}")
                    break
                typed.append(OmegaConf.select(node, key))
            else:
                same = [(a, b) for i, a in enumerate(values) for b in values[i + 1 :]]
                same = [(a, b) for a, b in same if typed[values.index(a)] == typed[values.index(b)]]
                if same or len(set(map(repr, typed))) != len(typed):
                    pairs = ", ".join(f"{a!r} and {b!r}" for a, b in same) or repr(values)
                    errors.append(
                        f"sweep.axes.{key}={values!r}: values must be distinct ({pairs} are the "
                        "same value: one cell would be computed twice)"
                    )
                else:
                    axes[key] = typed
    if cfg.sweep.design not in DESIGNS:
        errors.append(f"sweep.design={cfg.sweep.design!r}: allowed values are {', '.join(DESIGNS)}")
    elif cfg.sweep.design == "one_at_a_time":
        for key, values in axes.items():
            centre = OmegaConf.select(base, key)
            if _base_index(values, centre) is None:
                errors.append(
                    f"sweep.axes.{key}={values!r}: sweep.design=one_at_a_time varies each "
                    f"axis around the base configuration, but the axis lacks {key}'s base "
                    f"value {centre!r} (add it to the axis, or set {key} to one of its values)"
                )
    if cfg.sweep.seeds < 1:
        errors.append(f"sweep.seeds={cfg.sweep.seeds!r}: must be at least 1")
    if cfg.sweep.batch is not None and cfg.sweep.batch < 1:
        errors.append(f"sweep.batch={cfg.sweep.batch!r}: must be at least 1 (or null)")
    if cfg.sweep.progress_interval < 0:
        errors.append(f"sweep.progress_interval={cfg.sweep.progress_interval!r}: must be >= 0")
    if errors:
        raise ConfigError("invalid sweep:\n  " + "\n  ".join(errors))
    return axes


def _base_index(values: list, base_value):
    """Where an axis holds its key's base value (same value and type), or None."""
    return next(
        (i for i, v in enumerate(values) if v == base_value and type(v) is type(base_value)),
        None,
    )


def design_points(design: str, axes: dict, base) -> list:
    """The grid points a design runs, as positions along the axes, in grid order."""
    points = list(itertools.product(*(range(len(v)) for v in axes.values())))
    if design == "grid":
        return points
    centre = tuple(_base_index(v, OmegaConf.select(base, k)) for k, v in axes.items())
    return [p for p in points if sum(a != b for a, b in zip(p, centre, strict=True)) <= 1]


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def input_files(scenario: dict) -> dict:
    """{input as configured: its file} of one cell's configuration (a replayed trace)."""
    wl = scenario["workload"]
    if wl["kind"] != "trace" or not wl.get("trace"):
        return {}
    from .scenario.trace import resolve_trace

    return {f"workload.trace={wl['trace']}": resolve_trace(wl["trace"])}


def plan(cfg) -> Plan:
    """Every cell's validated configuration; raises ConfigError naming every bad value."""
    unknown = keys.unknown(cfg, "sweep")
    if unknown:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(unknown))
    scenario = OmegaConf.to_container(cfg, resolve=True)
    base = OmegaConf.merge(
        OmegaConf.structured(Config), {k: v for k, v in scenario.items() if k not in SWEEP_KEYS}
    )
    axes = _axes(cfg, base)
    cluster.check(cfg.dask)
    errors, configs = [], []
    for point in design_points(cfg.sweep.design, axes, base):
        cell = base.copy()
        try:
            for key, i in zip(axes, point, strict=True):
                OmegaConf.update(cell, key, axes[key][i], merge=False)
            check_inputs(validate(cell))
        except ConfigError as err:
            errors += [e for e in str(err).splitlines()[1:] if e not in errors]
            continue
        except OmegaConfBaseException as err:
            msg = f"  sweep.axes.{err.full_key}={err.value!r}: {str(err).splitlines()[0]}"
            errors += [msg] if msg not in errors else []
            continue
        scen = OmegaConf.to_container(cell, resolve=True)
        shared = None
        if cfg.sweep.reuse:
            from .engine import run_inputs

            shared = tuple(run_inputs(cell, s) for s in scen["schedulers"])
        configs.append((point, scen, shared))
    if errors:
        raise ConfigError("invalid sweep values:\n" + "\n".join(errors))
    seeds = [cell_seed(cfg.sim.seed, i) for i in range(cfg.sweep.seeds)]
    cells, files, runs = [], {}, ({} if cfg.sweep.reuse else None)
    for point, scen, shared in configs:
        files.update(input_files(scen))
        for s in range(cfg.sweep.seeds):
            cells.append(((*point, s), {**scen, "sim": {**scen["sim"], "seed": seeds[s]}}))
            if runs is not None:
                runs[(*point, s)] = tuple((k, s) for k in shared)
    identity = flatten(OmegaConf.to_container(base, resolve=True))
    identity = {k: v for k, v in identity.items() if k not in axes and k not in RUNTIME_KEYS}
    identity["sweep.axes"] = axes
    identity["sweep.seeds"] = cfg.sweep.seeds
    if cfg.sweep.design != "grid":  # (a grid store's identity predates the key)
        identity["sweep.design"] = cfg.sweep.design
    inputs = {name: _sha256(path) for name, path in sorted(files.items())}
    if inputs:
        identity["inputs (sha256 of each file)"] = inputs
    return Plan(axes, seeds, cells, identity, inputs, runs)


# ------------------------------------------------------------------ one cell


_HASHES: dict = {}


def _check_inputs(scenario: dict, inputs: dict) -> None:
    """Refuse a cell whose input file changed since the sweep was planned."""
    for name, path in input_files(scenario).items():
        st = os.stat(path)
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key not in _HASHES:
            _HASHES[key] = _sha256(path)
        if _HASHES[key] != inputs.get(name):
            raise StoreError(
                f"{name}: the file {path} changed while the sweep ran (sha256 now "
                f"{_HASHES[key][:12]}..., planned {str(inputs.get(name))[:12]}...); its cells "
                "would mix two workloads"
            )


def scheduler_values(scenario: dict, inputs: dict) -> tuple[dict, dict]:
    """Simulate one cell's schedulers (``scenario["schedulers"]``, all or some of the
    sweep's; the configuration validated by ``plan``) and return what the store keeps:
    {scheduler: {metric: value}} and the cell's own values."""
    from . import engine
    from .kernels.structs import ARRIVED
    from .metrics import METRICS, scalar_metrics
    from .results import window_means

    _check_inputs(scenario, inputs)
    cfg = OmegaConf.create(scenario)
    result = engine.run(cfg)
    sc, scheds = result.scenario, list(result.states)
    factor, _ = window_means(sc, cfg)
    rows = {s: scalar_metrics(result.states[s], cfg, factor) for s in scheds}
    rows = {s: {m: r[m] for m in METRICS if m != "gap_to_oracle"} for s, r in rows.items()}
    own = {
        "rho_net": sc.rho_net,
        "offered_rate": sc.rate,
        "requests": int(result.states[scheds[0]].cnt[ARRIVED]),  # whole run
    }
    return rows, own


def cell_values(scenario: dict, rows: dict, own: dict) -> dict:
    """One cell's values for the store (every metric per scheduler, then the cell's own
    values), from ``rows`` and ``own`` as :func:`scheduler_values` returns them."""
    from .metrics import METRICS

    scheds = scenario["schedulers"]
    values = {m: np.array([rows[s][m] for s in scheds]) for m in METRICS if m != "gap_to_oracle"}
    fr = values["failure_rate"]
    oracle = fr[scheds.index("oracle")] if "oracle" in scheds else np.nan
    values["gap_to_oracle"] = fr - oracle
    values.update(own)
    return values


def run_cells(cells: list, inputs: dict, runs: list | None = None) -> list:
    """A Dask task: simulate each cell; returns (index, values, seconds) per cell.

    ``runs``: per cell, each scheduler's run inputs (``Plan.runs``); a scheduler whose run
    inputs an earlier cell of this task had is not simulated again: its values are that
    run's (the cell's own values, which no key a scheduler may skip changes, too)."""
    out, done = [], {}  # run inputs -> (the scheduler's values, the cell's own values)
    for c, (at, scenario) in enumerate(cells):
        t0 = time.perf_counter()
        scheds = scenario["schedulers"]
        keys = runs[c] if runs is not None else [None] * len(scheds)
        need = [s for s, k in zip(scheds, keys, strict=True) if k is None or k not in done]
        rows, own = {}, None
        if need:
            rows, own = scheduler_values({**scenario, "schedulers": need}, inputs)
            for s, k in zip(scheds, keys, strict=True):
                if k is not None and s in rows:
                    done[k] = (rows[s], own)
        for s, k in zip(scheds, keys, strict=True):
            if s not in rows:
                rows[s], shared = done[k]
                own = own if own is not None else shared
        out.append((at, cell_values(scenario, rows, own), time.perf_counter() - t0))
    return out


def families(todo: list, runs: dict | None) -> list:
    """``todo`` split into groups that share scheduler runs (cells linked by equal run
    inputs, transitively), each in plan order; one cell per group without ``runs``."""
    if runs is None:
        return [[cell] for cell in todo]
    parent = list(range(len(todo)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict = {}
    for i, (at, _) in enumerate(todo):
        for k in runs[at]:
            j = first.setdefault(k, i)
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict = {}
    for i, cell in enumerate(todo):
        groups.setdefault(root(i), []).append(cell)
    return list(groups.values())


TASKS_PER_THREAD = 4  # families are cut into about this many tasks per thread


def chunks(fams: list, threads: int, batch: int | None) -> list:
    """Families cut into Dask tasks: ``batch`` cells each if set, else each family into
    about its share of ``TASKS_PER_THREAD`` tasks per thread (whole when that is one),
    so every thread stays busy; a chunk runs each shared scheduler run it needs once."""
    total = sum(len(f) for f in fams)
    out = []
    for fam in fams:
        k = max(1, round(TASKS_PER_THREAD * threads * len(fam) / total))
        size = batch or math.ceil(len(fam) / k)
        out += [fam[i : i + size] for i in range(0, len(fam), size)]
    return out


def count_runs(todo: list, runs: dict | None) -> int:
    """Scheduler runs ``todo`` takes (each distinct run inputs once)."""
    if runs is None:
        return sum(len(scen["schedulers"]) for _, scen in todo)
    return len({k for at, _ in todo for k in runs[at]})


# ------------------------------------------------------------------ the driver


class Progress:
    """A bar on a terminal; elsewhere (a log, a batch job) one line every ``interval`` s:
    cells done / total, rate and ETA."""

    def __init__(self, total: int, done: int, quiet: bool, interval: float):
        from tqdm import tqdm

        self.total, self.n, self.n0 = total, done, done
        self.t0 = self.last = time.monotonic()
        self.interval, self.quiet = interval, quiet
        self.tty = sys.stderr.isatty()
        self.bar = None
        if self.tty and not quiet:
            self.bar = tqdm(total=total, initial=done, unit="cell", file=sys.stderr)

    def update(self, k: int) -> None:
        self.n += k
        if self.bar is not None:
            self.bar.update(k)
        elif not self.quiet and time.monotonic() - self.last >= self.interval:
            self.line()

    def line(self) -> None:
        t = time.monotonic()
        self.last = t
        rate = (self.n - self.n0) / max(t - self.t0, 1e-9)
        left = self.total - self.n
        eta = _duration(left / rate) if rate > 0 else "unknown"
        print(
            f"otfr_vec sweep: {self.n}/{self.total} cells ({100 * self.n / self.total:.0f} %), "
            f"{rate:.2f} cells/s, ETA {eta}",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif not self.quiet and self.last > self.t0 and self.n > self.n0:
            self.line()  # a log that had progress lines ends with the last count


def _duration(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def batch_size(cfg, mean_s: float | None, left: int, threads: int) -> int:
    """Cells per task: enough to amortise scheduling, few enough to keep every thread busy."""
    if cfg.sweep.batch:
        return cfg.sweep.batch
    if mean_s is None:
        return 1  # measure first
    fair = max(1, math.ceil(left / (2 * threads)))
    return max(1, min(fair, math.ceil(TARGET_TASK_S / max(mean_s, 1e-6))))


def prepare(cfg, p: Plan, path: str | None = None, say=print) -> tuple[str, list]:
    """Create the store or check it may be resumed (identity, every finished cell read
    back and verified; damaged cells named, unmarked and rerun); return its path and the
    cells to run. The caller holds the store's lock."""
    path = store.resolve(cfg.store) if path is None else path
    store.check_target(path, "store", "sweep")
    schedulers = p.cells[0][1]["schedulers"]
    tmpl = store.template(p.axes, p.cell_seeds, schedulers, keys.coord_attrs, p.planned)
    if store.exists(path) and not cfg.sweep.overwrite:
        store.check_identity(path, p.identity)
        status = store.verify(path)
        fixed = store.repair_coords(path, tmpl)
        if fixed:
            say(f"store {path}: rewrote damaged coordinates {', '.join(fixed)} from the plan")
        if status.damaged:
            named = [f"{p.name(at)} ({why})" for at, why in sorted(status.damaged.items())]
            more = f"; and {len(named) - 10} more" if len(named) > 10 else ""
            say(
                f"store {path}: {len(named)} finished cells are damaged and will be "
                f"recomputed: {'; '.join(named[:10])}{more}"
            )
            store.repair(path, status)
        return path, [c for c in p.cells if not status.done[c[0]]]
    store.create(path, tmpl, p.identity, store.provenance(OmegaConf.to_yaml(cfg, resolve=True)))
    return path, list(p.cells)


class _Run:
    """One execution of ``todo``: submits tasks, writes what comes back, watches the cluster."""

    def __init__(self, cfg, p: Plan, writer, progress):
        self.cfg, self.p, self.writer, self.progress = cfg, p, writer, progress
        self.took: list = []
        self.last_flush = time.monotonic()

    def receive(self, results) -> None:
        for at, values, seconds in results:
            self.writer.add(at, values)
            self.took.append(seconds)
        self.progress.update(len(results))
        if time.monotonic() - self.last_flush >= store.FLUSH_S:
            self.flush()

    def flush(self) -> None:
        try:
            self.writer.flush()
        except OSError as err:  # full disk, read-only, gone: not the cluster's doing
            raise _WriteFailed(err) from err
        self.last_flush = time.monotonic()

    def task(self, group: list) -> tuple:
        """run_cells' arguments for ``group`` (cells of whole families)."""
        runs = self.p.runs
        return group, self.p.inputs, None if runs is None else [runs[at] for at, _ in group]

    def serial(self, todo) -> None:
        for fam in families(todo, self.p.runs):
            self.receive(run_cells(*self.task(fam)))

    def dask(self, todo, client) -> None:
        from distributed import wait

        threads = max(1, sum(client.nthreads().values()))
        fams = families(todo, self.p.runs)
        shared = any(len(f) > 1 for f in fams)
        pending = deque(chunks(fams, threads, self.cfg.sweep.batch) if shared else todo)

        def submit():
            if shared:  # one chunk of a family per task
                group = pending.popleft()
            else:
                mean = float(np.mean(self.took)) if self.took else None
                n = batch_size(self.cfg, mean, len(pending), threads)
                group = [pending.popleft() for _ in range(min(n, len(pending)))]
            futures.add(client.submit(run_cells, *self.task(group), pure=False))

        futures: set = set()
        for _ in range(2 * threads):
            if pending:
                submit()
        watch = cluster.Watch(client, self.cfg.dask)
        while futures:
            try:
                done, _ = wait(list(futures), timeout=POLL_S, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            except (CancelledError, OSError):  # the scheduler forgot them, or is gone
                raise watch.lost() from None
            for fut in done:
                if fut.status == "cancelled":
                    raise watch.lost()
                try:  # its result lives on a worker: if that worker just died, it is
                    results = fut.result(timeout=POLL_S)  # recomputed (or never comes)
                except TimeoutError:
                    continue
                except (CancelledError, OSError):
                    if fut.status == "error":  # the cell's own error
                        raise
                    raise watch.lost() from None
                futures.discard(fut)
                self.receive(results)
                if pending:
                    submit()
            if time.monotonic() - self.last_flush >= store.FLUSH_S:
                self.flush()
            self.progress.update(0)  # a line on time in a log, even while cells are long
            watch.check()
            threads = max(threads, watch.threads)
            while pending and len(futures) < 2 * threads:  # workers joined (batch jobs)
                submit()


def run_sweep(cfg, client=None, quiet: bool = False, p: Plan | None = None, start=None) -> str:
    """Plan (unless given), take the store's lock, create or resume the store, run the
    missing cells and verify them; return the store path.

    ``client``: a ``distributed.Client`` to run on; ``start``: a context manager factory
    yielding one (or None), entered only if any cell is left; neither: in this process.
    Raises ConfigError / StoreError before any work, SweepStopped if stopped half-way.
    """
    p = plan(cfg) if p is None else p
    say = (lambda *a, **k: None) if quiet else print
    path = store.resolve(cfg.store)
    store.check_target(path, "store", "sweep")
    with store.lock(path, say=say):
        try:
            path, todo = prepare(cfg, p, path, say)
        except OSError as err:  # e.g. no space for the template: nothing was run
            raise StoreError(f"store={path}: cannot write it ({err.strerror or err})") from None
        shape = " x ".join(f"{k} {len(v)}" for k, v in p.axes.items()) or "no axes"
        if p.planned is not None:
            shape = f"{int(p.planned.sum())} points ({shape}, one axis at a time)"
        n_sched = len(p.cells[0][1]["schedulers"])
        say(
            f"otfr_vec sweep: {shape} x {cfg.sweep.seeds} seeds = {len(p.cells)} cells of "
            f"{n_sched} schedulers; {len(p.cells) - len(todo)} already done; store {path}"
        )
        if todo and p.runs is not None:
            n_runs, n_all = count_runs(todo, p.runs), count_runs(todo, None)
            if n_runs < n_all:
                say(
                    f"otfr_vec sweep: {n_runs} scheduler runs for the {n_all} scheduler-cells "
                    "left: cells that differ only in keys a scheduler does not read share its "
                    "run (sweep.reuse=false runs every one)"
                )
        t0 = time.perf_counter()
        if todo:
            _execute(cfg, p, path, todo, client, start, quiet, say)
        status = store.verify(path)
        store.finish(path, {"otfr_vec:end": store.now()})
    n_done = int(status.done.sum())
    missing = [c[0] for c in todo if not status.done[c[0]]]
    if missing:
        raise StoreError(
            f"store={path}: {len(missing)} cells written by this sweep do not read back "
            f"intact ({'; '.join(p.name(at) for at in missing[:5])}); run the same command "
            "to recompute them"
        )
    say(
        f"ran {len(todo)} cells in {time.perf_counter() - t0:.1f} s; the store holds "
        f"{n_done} of {len(p.cells)} cells, verified; open with xr.open_zarr({path!r})"
    )
    return path


def _execute(cfg, p, path, todo, client, start, quiet, say) -> None:
    """Run ``todo`` into the store at ``path``; on any stop, keep what arrived and say so."""
    writer = store.Writer(path)
    progress = Progress(len(p.cells), len(p.cells) - len(todo), quiet, cfg.sweep.progress_interval)
    run = _Run(cfg, p, writer, progress)
    resume = "run the same command to resume"
    try:
        try:
            with contextlib.ExitStack() as stack:
                if client is None and start is not None:
                    client = stack.enter_context(start())
                    if client is not None and not quiet:
                        cluster.announce(client, cfg.dask)
                if client is None:
                    run.serial(todo)
                else:
                    run.dask(todo, client)
        finally:
            progress.close()
            run.flush()
    except KeyboardInterrupt:
        kept = _kept(path, len(p.cells))
        raise SweepStopped(f"interrupted: {kept}; {resume}", code=130) from None
    except cluster.ClusterLost as err:
        raise SweepStopped(f"{err}; {_kept(path, len(p.cells))}; {resume}") from None
    except _WriteFailed as failed:
        err = failed.args[0]
        kept = _kept(path, len(p.cells))
        raise SweepStopped(
            f"cannot write the store {path} ({err.strerror or err}): {kept}; fix that "
            f"(free disk space, permissions) and {resume}"
        ) from None
    except OSError as err:  # a connection of the Dask client (CommClosedError is one)
        kept = _kept(path, len(p.cells))
        raise SweepStopped(f"lost the Dask cluster ({err}); {kept}; {resume}") from None
    except StoreError:
        raise
    except Exception as err:  # a cell failed, or its worker died repeatedly (KilledWorker)
        kept = _kept(path, len(p.cells))
        first = str(err).splitlines()[0] if str(err) else ""
        raise SweepStopped(f"a cell failed: {type(err).__name__}: {first}; {kept}") from err


def _kept(path: str, total: int) -> str:
    try:
        n = int(store.verify(path).done.sum())
    except Exception:  # the store itself unreadable: say so rather than guess
        return f"the store {path} could not be read back"
    return f"{n} of {total} cells are in the store {path}"


def main_cfg(cfg: DictConfig) -> int:
    try:
        p = plan(cfg)  # fail fast: nothing is started or written on bad input
        run_sweep(cfg, p=p, start=lambda: cluster.connect(cfg.dask))
    except (ConfigError, StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OmegaConfBaseException as err:
        print(f"error: {keys.omegaconf_error(err)}", file=sys.stderr)
        return 2
    except SweepStopped as err:
        print(f"error: {err}" if err.code != 130 else str(err), file=sys.stderr)
        if err.__cause__ is not None and os.environ.get("OTFR_VEC_DEBUG"):
            raise
        return err.code
    return 0


@hydra.main(config_path=str(CONF_DIR), config_name="sweep", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    code = main_cfg(cfg)
    if code:
        sys.exit(code)


def main() -> None:
    """The command line: overrides Hydra cannot parse are reported before it tries."""
    keys.exit_on_bad_argv()
    with cluster.keep():  # -m: the grids of one command share one cluster
        _hydra_main()


if __name__ == "__main__":
    main()
