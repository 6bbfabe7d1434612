"""Dask clusters for sweeps: one context manager from the ``dask`` config section.

The sweep never cares where its workers come from: a LocalCluster of processes sized to
the machine (the default), an existing scheduler (``dask=address``), batch jobs through
dask-jobqueue (``dask=slurm``, ``pbs``, ...), or no Dask at all (``dask=serial``, where
``client`` is None). Whatever starts here is closed here, on success or error.

Inside :func:`keep` (the sweep's command line opens one around Hydra), a cluster that
served a sweep to its end stays up for the next sweep of the same ``dask`` settings in
the process: ``python -m otfr_vec.sweep -m +grid=severity,telemetry`` starts its workers
once, and they import otfr_vec and load the compiled kernels once. A sweep that stopped
on an error closes its cluster; the scope closes the rest when it ends.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import sys
import time

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
_kept: dict | None = None  # inside keep(): the dask settings (JSON) -> (cluster, client)
_served: dict[int, list] = {}  # id(client) -> [order started, sweeps served before this one]
_started = itertools.count()


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
    if not dask_cfg.worker_timeout > 0:
        raise ConfigError(f"dask.worker_timeout={dask_cfg.worker_timeout!r}: must be > 0 (s)")
    if kind in JOBQUEUE:
        try:
            import dask_jobqueue  # noqa: F401
        except ImportError as err:
            raise ConfigError(
                f"dask={kind} needs dask-jobqueue: pip install 'otfr_vec[jobqueue]'"
            ) from err


def _start(dask_cfg):
    """(cluster or None, client) for the section; the caller closes both."""
    from distributed import Client

    # Hydra's stdout job logging would print every scheduler/worker INFO line; a lost
    # connection is reported by the sweep in one line, not as the client's tracebacks
    logging.getLogger("distributed").setLevel(logging.WARNING)
    # ("asyncio": distributed's wait() leaves an internal AllExit unretrieved on timeout)
    for name in ("distributed.client", "distributed.utils", "distributed.comm", "distributed.core"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    kind = dask_cfg.cluster
    cluster = None
    if kind == "address":
        try:
            return None, Client(dask_cfg.address)
        except (OSError, TimeoutError) as err:
            msg = f"cannot reach the Dask scheduler {dask_cfg.address} ({err})"
            raise ClusterLost(msg) from None
    if kind == "local":
        # worker processes log only what is critical and ignore SIGINT: Ctrl-C stops the
        # driver, which then closes them in order. Their errors at a stop are no news (a
        # cancelled task; a worker still inside a cell when the scheduler closed logs its
        # failed heartbeat: 40 lines of traceback after the sweep's one); a cell's own
        # error reaches the driver through its future and is reported there
        os.environ.setdefault("DASK_DISTRIBUTED__LOGGING__DISTRIBUTED", "critical")
        with _sigint_ignored():
            cluster = _local(dask_cfg)
    elif kind != "address":
        import dask_jobqueue
        from omegaconf import OmegaConf

        given = OmegaConf.to_container(dask_cfg.cluster_kwargs, resolve=True)
        kwargs = {k: v for k, v in given.items() if v is not None}
        cluster = getattr(dask_jobqueue, JOBQUEUE[kind])(**kwargs)
        cluster.scale(jobs=dask_cfg.jobs)
    return cluster, Client(cluster)


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored while child processes start (they inherit it); restored after."""
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to inherit from here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _local(dask_cfg):
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=dask_cfg.n_workers or usable_cores(),
        threads_per_worker=dask_cfg.threads_per_worker,
        processes=dask_cfg.processes,
        dashboard_address=dask_cfg.dashboard,
        memory_limit=dask_cfg.memory_limit,
        # no dashboard: the scheduler still serves /health, on any free port
        scheduler_kwargs=None if dask_cfg.dashboard else {"dashboard_address": ":0"},
    )


def dashboard(client) -> str:
    """The dashboard address, or why there is none."""
    if "dashboard" in client.scheduler_info(n_workers=0).get("services", {}):
        return client.dashboard_link
    return "none (dask.dashboard=null, or bokeh missing: pip install 'bokeh>=3.1')"


def announce(client, dask_cfg) -> None:
    """One line: where the sweep runs and its dashboard."""
    workers = client.nthreads()
    if workers:
        what = f"{len(workers)} workers, {sum(workers.values())} threads"
    else:
        what = "no worker yet (waiting for them to connect)"
    n = _served.get(id(client), [0, 0])[1]
    if n:
        what += f", kept from the {n} sweep{'s' if n > 1 else ''} before"
    print(f"dask: {what}; dashboard {dashboard(client)}", flush=True)


class ClusterLost(RuntimeError):
    """The Dask scheduler went away, or no worker was left for ``dask.worker_timeout``."""


class Watch:
    """Checked by the driver about once a second: is the scheduler there, are workers?

    A batch-job cluster (dask-jobqueue) may wait long for its first worker, so the
    no-worker clock starts once one has connected; elsewhere it starts at once.
    """

    GRACE_S = 10.0  # the client reconnecting to its scheduler this long means it is gone
    BATCH_NOTICE_S = 60.0  # say that batch jobs are still queued after this long

    def __init__(self, client, dask_cfg):
        self.client, self.timeout = client, float(dask_cfg.worker_timeout)
        self.batch = dask_cfg.cluster in JOBQUEUE
        self.seen = False
        self.since = self.lost_since = time.monotonic()
        self.threads = 0
        self.noticed = False

    def address(self) -> str:
        try:
            return self.client.scheduler.address
        except AttributeError:
            return "?"

    def lost(self) -> ClusterLost:
        return ClusterLost(f"lost the Dask scheduler {self.address()}")

    def check(self) -> None:
        t = time.monotonic()
        if self.client.status != "running":
            if t - self.lost_since > self.GRACE_S or self.client.status in ("closed", "closing"):
                raise self.lost()
            return
        self.lost_since = t
        try:
            workers = self.client.nthreads()
        except (OSError, TimeoutError) as err:
            raise ClusterLost(f"lost the Dask scheduler {self.address()} ({err})") from None
        if workers:
            self.seen, self.since, self.noticed = True, t, False
            self.threads = sum(workers.values())
            return
        if self.batch and not self.seen:
            if not self.noticed and t - self.since > self.BATCH_NOTICE_S:
                print(
                    f"dask: no worker yet after {t - self.since:.0f} s: the batch jobs are "
                    "still queued (see squeue / qstat)",
                    file=sys.stderr,
                    flush=True,
                )
                self.noticed = True
            return
        if not self.noticed:
            print(
                f"dask: no worker connected to {self.address()}; waiting up to "
                f"{self.timeout:g} s (dask.worker_timeout)",
                file=sys.stderr,
                flush=True,
            )
            self.noticed = True
        if t - self.since > self.timeout:
            raise ClusterLost(
                f"no Dask worker for {self.timeout:g} s on {self.address()} (all workers gone)"
            )


@contextlib.contextmanager
def connect(dask_cfg):
    """Yield a ``distributed.Client`` for ``dask_cfg`` (None for ``dask=serial``).

    Closed on leaving, unless inside :func:`keep` and the body ended without an error:
    then it is kept for the next ``connect`` with the same settings.
    """
    check(dask_cfg)
    if dask_cfg.cluster == "serial":
        yield None
        return
    key = _key(dask_cfg)
    pair = _kept.pop(key, None) if _kept is not None else None
    if pair is None or pair[1].status != "running":
        if pair is not None:
            _close(*pair)
        pair = _start(dask_cfg)
        _served[id(pair[1])] = [next(_started), 0]
    else:
        _served[id(pair[1])][1] += 1
    done = False
    try:
        yield pair[1]
        done = True
    finally:
        if done and _kept is not None and pair[1].status == "running":
            _kept[key] = pair
        else:
            _close(*pair)


@contextlib.contextmanager
def keep():
    """A scope in which :func:`connect` reuses a cluster across sweeps; closes them at its end."""
    global _kept
    outer, _kept = _kept, {}
    try:
        yield
    finally:
        pairs, _kept = list(_kept.values()), outer
        # the last started first: each client restores the dask config it found
        for pair in sorted(pairs, key=lambda p: _served[id(p[1])][0], reverse=True):
            _close(*pair)


def _key(dask_cfg) -> str:
    from omegaconf import OmegaConf

    return json.dumps(OmegaConf.to_container(dask_cfg, resolve=True), sort_keys=True)


def _close(cluster, client) -> None:
    _served.pop(id(client), None)
    # closing kills workers still running a cell (after a stop): expected, not news
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with contextlib.suppress(Exception):
        client.close(timeout=10)
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)


__all__ = [
    "KINDS",
    "ClusterLost",
    "Watch",
    "announce",
    "check",
    "connect",
    "dashboard",
    "keep",
    "usable_cores",
]
