"""Run a grid of scenarios on Dask into one resumable Zarr store (Hydra entry point).

python -m otfr_vec.sweep +grid=severity
python -m otfr_vec.sweep +grid=severity sim.duration=120 sweep.seeds=2 store=outputs/s.zarr
python -m otfr_vec.sweep +grid=label_noise dask=address dask.address=tcp://host:8786
python -m otfr_vec.sweep +sweep.axes.price.kappa=[0,0.5,1] dask=serial

A cell is one point of the grid and one seed index; it simulates every scheduler. Its
seed is derived from ``sim.seed`` and the seed index only, so every swept value of one
seed index sees the same workload, degradation and label draws (common random numbers),
and the store is bit-identical whichever workers run the cells, in whatever order.
Everything is validated before any store is touched or any task is submitted.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import time
from collections import deque
from typing import NamedTuple

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import cluster, store
from .config import CONF_DIR, Config, ConfigError, validate
from .config.schema import RUNTIME_KEYS
from .config.sweep_schema import flatten
from .inputs import check_inputs

SWEEP_KEYS = ("sweep", "dask", "store")  # not part of a cell's scenario configuration
TARGET_TASK_S = 0.5  # auto batching: cells per task so one task takes about this long


class Plan(NamedTuple):
    axes: dict  # dotted key -> list of values (store dimensions, in order)
    cell_seeds: list  # sim.seed of each seed index
    cells: list  # (index {dim: position}, scenario config as a plain dict)
    identity: dict  # what defines the cells: the stored config a resume must match


def cell_seed(seed: int, index: int) -> int:
    """The sim.seed of seed index ``index`` of a sweep with base ``sim.seed=seed``."""
    state = np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(2)
    return int((int(state[0]) << 32 | int(state[1])) >> 1)  # 63 bits: a valid sim.seed


def _axes(cfg) -> dict:
    """``sweep.axes`` flattened to {dotted key: values}, each key checked against the schema."""
    raw = OmegaConf.to_container(cfg.sweep.axes, resolve=True)
    axes, errors = {}, []
    scenario = {k: v for k, v in OmegaConf.to_container(cfg).items() if k not in SWEEP_KEYS}
    known = flatten(scenario)
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

            near = difflib.get_close_matches(key, known, n=3)
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
        elif len(set(map(repr, values))) != len(values):
            errors.append(f"sweep.axes.{key}={values!r}: values must be distinct")
        else:
            axes[key] = values
    if cfg.sweep.seeds < 1:
        errors.append(f"sweep.seeds={cfg.sweep.seeds!r}: must be at least 1")
    if cfg.sweep.batch is not None and cfg.sweep.batch < 1:
        errors.append(f"sweep.batch={cfg.sweep.batch!r}: must be at least 1 (or null)")
    if errors:
        raise ConfigError("invalid sweep:\n  " + "\n  ".join(errors))
    return axes


def plan(cfg) -> Plan:
    """Every cell's validated configuration; raises ConfigError naming every bad value."""
    axes = _axes(cfg)
    cluster.check(cfg.dask)
    scenario = OmegaConf.to_container(cfg, resolve=True)
    base = OmegaConf.merge(
        OmegaConf.structured(Config), {k: v for k, v in scenario.items() if k not in SWEEP_KEYS}
    )
    errors, configs = [], []
    for point in itertools.product(*(range(len(v)) for v in axes.values())):
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
        configs.append((point, OmegaConf.to_container(cell, resolve=True)))
    if errors:
        raise ConfigError("invalid sweep values:\n" + "\n".join(errors))
    seeds = [cell_seed(cfg.sim.seed, i) for i in range(cfg.sweep.seeds)]
    cells = []
    for point, scenario in configs:
        for s in range(cfg.sweep.seeds):
            scen = {**scenario, "sim": {**scenario["sim"], "seed": seeds[s]}}
            cells.append(({**dict(zip(axes, point, strict=True)), store.SEED: s}, scen))
    identity = flatten(OmegaConf.to_container(base, resolve=True))
    identity = {k: v for k, v in identity.items() if k not in axes and k not in RUNTIME_KEYS}
    identity["sweep.axes"] = axes
    identity["sweep.seeds"] = cfg.sweep.seeds
    return Plan(axes, seeds, cells, identity)


def run_cells(path: str, cells: list) -> list:
    """A Dask task: simulate and store each cell; returns the seconds each cell took."""
    from .api import simulate

    took, writer = [], store.CellWriter(path)
    for index, scenario in cells:
        t0 = time.perf_counter()
        ds = simulate(OmegaConf.create(scenario))
        extra = {
            "rho_net": ds.attrs["otfr_vec:rho_net"],
            "offered_rate": ds.attrs["otfr_vec:rate"],
            "requests": ds.attrs["otfr_vec:requests"],
        }
        writer.write(index, ds, extra)
        took.append(time.perf_counter() - t0)
    return took


def prepare(cfg, p: Plan) -> tuple[str, list]:
    """Create the store or check it may be resumed; return its path and the cells to run."""
    path = cfg.store if "://" in cfg.store else os.path.abspath(cfg.store)
    if os.path.exists(path) and cfg.sweep.overwrite:
        import shutil

        shutil.rmtree(path)
    if os.path.exists(path):
        store.check_identity(path, p.identity)
        done = store.done_mask(path)
        todo = [c for c in p.cells if not done[tuple(c[0].values())]]
    else:
        schedulers = p.cells[0][1]["schedulers"]
        tmpl = store.template(p.axes, p.cell_seeds, schedulers)
        store.create(path, tmpl, p.identity, store.provenance(OmegaConf.to_yaml(cfg, resolve=True)))
        todo = list(p.cells)
    return path, todo


def batch_size(cfg, mean_s: float | None, left: int, threads: int) -> int:
    """Cells per task: enough to amortise scheduling, few enough to keep every thread busy."""
    if cfg.sweep.batch:
        return cfg.sweep.batch
    if mean_s is None:
        return 1  # measure first
    fair = max(1, math.ceil(left / (2 * threads)))
    return max(1, min(fair, math.ceil(TARGET_TASK_S / max(mean_s, 1e-6))))


def execute(cfg, path: str, todo: list, client, bar) -> None:
    """Run ``todo`` on ``client`` (None: in this process), updating ``bar`` per task."""
    pending, took = deque(todo), []

    def take(threads):
        mean = float(np.mean(took)) if took else None
        n = batch_size(cfg, mean, len(pending), threads)
        return [pending.popleft() for _ in range(min(n, len(pending)))]

    if client is None:
        for cell in todo:  # no tasks: batching would only coarsen the progress bar
            run_cells(path, [cell])
            bar.update(1)
        return
    from distributed import as_completed

    threads = max(1, sum(client.nthreads().values()))
    running = as_completed()
    for _ in range(2 * threads):
        if pending:
            running.add(client.submit(run_cells, path, take(threads), pure=False))
    for fut in running:
        cell_s = fut.result()
        took += cell_s
        bar.update(len(cell_s))
        if pending:
            running.add(client.submit(run_cells, path, take(threads), pure=False))


def run_sweep(cfg, client=None, quiet: bool = False, p: Plan | None = None) -> str:
    """Plan (unless given), create or resume the store, run the missing cells; return the
    store path."""
    from tqdm import tqdm

    p = plan(cfg) if p is None else p
    path, todo = prepare(cfg, p)
    shape = " x ".join(f"{k} {len(v)}" for k, v in p.axes.items()) or "no axes"
    n_sched = len(p.cells[0][1]["schedulers"])
    say = (lambda *a: None) if quiet else print
    say(
        f"otfr_vec sweep: {shape} x {cfg.sweep.seeds} seeds = {len(p.cells)} cells of "
        f"{n_sched} schedulers; {len(p.cells) - len(todo)} already done; store {path}"
    )
    t0 = time.perf_counter()
    with tqdm(
        total=len(p.cells),
        initial=len(p.cells) - len(todo),
        unit="cell",
        file=sys.stderr,
        disable=quiet or not sys.stderr.isatty(),
    ) as bar:
        execute(cfg, path, todo, client, bar)
    store.finish(path, {"otfr_vec:end": store.now()})
    say(
        f"ran {len(todo)} cells in {time.perf_counter() - t0:.1f} s; "
        f"open with xr.open_zarr({path!r})"
    )
    return path


def main_cfg(cfg: DictConfig) -> int:
    try:
        p = plan(cfg)  # fail fast: nothing is started or written on bad input
        with cluster.connect(cfg.dask) as client:
            if client is not None:
                workers = client.nthreads()
                print(
                    f"dask: {len(workers)} workers, {sum(workers.values())} threads; "
                    f"dashboard {cluster.dashboard(client)}"
                )
            run_sweep(cfg, client, p=p)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


@hydra.main(config_path=str(CONF_DIR), config_name="sweep", version_base="1.3")
def main(cfg: DictConfig) -> None:
    code = main_cfg(cfg)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
