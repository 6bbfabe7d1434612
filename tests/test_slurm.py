"""dask=slurm against a real single-node Slurm started here: the grid equals the serial store.

The fixture installs Debian's slurm-wlm and munge if they are missing (root and apt are
needed; CI runs as root on a Debian machine), starts munged, slurmctld and slurmd on this
machine with a private configuration, socket and spool directory (nothing of the system's
own Slurm or munge is touched), and stops them on every exit path. Every address is on
loopback. Where Slurm cannot be installed or started the test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr
from conftest import GRID

from otfr_vec import make_config
from otfr_vec.sweep import run_sweep

PACKAGES = ["slurm-wlm", "munge"]
DAEMONS = ("munged", "slurmctld", "slurmd")


def _install() -> str | None:
    """None once the daemons are there, else why they cannot be."""
    if all(shutil.which(d) or os.path.exists(f"/usr/sbin/{d}") for d in DAEMONS):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "slurm-wlm and munge are not installed and this is not root with apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    for attempt in range(2):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if r.returncode == 0:
            return None
        if attempt == 0:  # a fresh machine has no package lists yet
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
    return f"apt-get install {' '.join(PACKAGES)} failed: {r.stderr.strip()[-300:]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _conf(d: Path, host: str) -> Path:
    cpus = os.cpu_count() or 1
    mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    for sub in ("state", "spool"):
        (d / sub).mkdir()
    conf = d / "slurm.conf"
    conf.write_text(
        f"""ClusterName=otfrtest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={d}/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={int(mem_mb * 0.8)} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""
    )
    return conf


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A running single-node Slurm; yields the environment its clients need."""
    why = _install()
    if why:
        pytest.skip(why)
    if os.geteuid() != 0:
        pytest.skip("starting slurmd needs root (CI runs as root)")
    d = tmp_path_factory.mktemp("slurm")
    os.chmod(d, 0o755)
    host = socket.gethostname().split(".")[0]
    conf = _conf(d, host)
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs = []
    try:
        munge = [_sbin("munged"), "--foreground", "--force", f"--socket={d}/munge.socket"]
        munge += [f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log"]
        munge += [f"--seed-file={d}/munged.seed", "--key-file=/etc/munge/munge.key"]
        procs.append(subprocess.Popen(munge, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        _wait(lambda: (d / "munge.socket").exists(), 20, "munged did not start", procs)
        for daemon in ("slurmctld", "slurmd"):
            cmd = [_sbin(daemon), "-D", "-f", str(conf)] + (["-c"] if daemon == "slurmctld" else [])
            procs.append(
                subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            )

        def idle():
            r = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=10
            )
            return r.returncode == 0 and r.stdout.strip() == "idle"

        _wait(idle, 60, "the Slurm node did not become idle", procs, d)
        yield env
    finally:
        subprocess.run(["scancel", "--full", "-u", "root"], env=env, capture_output=True)
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait(ok, timeout, message, procs, d=None):
    deadline = time.monotonic() + timeout
    while not ok():
        dead = [p.args[0] for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            logs = ""
            if d is not None:
                for log in sorted(d.glob("*.log")):
                    logs += f"\n{log.name}: {log.read_text()[-600:]}"
            pytest.skip(f"{message} (exited: {dead}){logs}")
        time.sleep(0.5)


def test_sweep_through_dask_slurm_equals_serial(slurm, tmp_path):
    ref = run_sweep(
        make_config([*GRID, "dask=serial", f"store={tmp_path / 'ref.zarr'}"], config_name="sweep"),
        quiet=True,
    )
    store = tmp_path / "slurm.zarr"
    args = [
        *GRID,
        "dask=slurm",
        "dask.jobs=1",
        "dask.cluster_kwargs.cores=2",
        "dask.cluster_kwargs.processes=2",
        "dask.cluster_kwargs.memory=2GB",
        "dask.cluster_kwargs.walltime=00:10:00",
        "dask.cluster_kwargs.queue=debug",
        f"dask.cluster_kwargs.log_directory={tmp_path / 'logs'}",
        "+dask.cluster_kwargs.scheduler_options.host=127.0.0.1",
        "dask.cluster_kwargs.worker_extra_args=[--host,127.0.0.1]",
        f"store={store}",
    ]
    p = subprocess.run(
        [sys.executable, "-m", "otfr_vec.sweep", *args],
        cwd=tmp_path,
        env=slurm,
        capture_output=True,
        text=True,
        timeout=300,
    )
    logs = "".join(f.read_text()[-1000:] for f in (tmp_path / "logs").glob("*"))
    assert p.returncode == 0, p.stdout + p.stderr + logs
    assert "holds 4 of 4 cells, verified" in p.stdout
    xr.testing.assert_equal(xr.open_zarr(store), xr.open_zarr(ref))
