"""A wheel works outside the source tree: configuration, traces and console scripts.

Builds a wheel from a copy of only what a source distribution holds (pyproject.toml,
README.md, otfr_vec/ with its conf link, conf/), installs it with ``--no-deps`` into a
fresh venv, and runs the console scripts from a directory outside any checkout. The
fresh venv borrows the running environment's dependencies through a ``.pth`` path entry
(so the test needs no download beyond the build backend, which pip caches); a path entry
processes no ``.pth`` files of its own, so the editable install of the checkout stays
invisible there and ``import otfr_vec`` must find the wheel's copy.

The simulations run with ``NUMBA_DISABLE_JIT=1``: compiling the kernels afresh for the
new install location takes ~25 s, and what is under test here is the packaging (the
kernels, compiled, are what the rest of the suite tests).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "cluster.pods=2",
    "cluster.workers_per_pod=2",
    "sim.duration=20",
    "sim.warmup=2",
    "degradation.onset=5",
    "degradation.duration=5",
    "degradation.pods=1",
]


def _run(cmd, cwd, env=None, **kw):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kw)
    assert p.returncode == 0, f"{cmd}\n{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin dir of a fresh venv holding only the wheel, a working directory outside)."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "conf", src / "conf")
    shutil.copytree(
        ROOT / "otfr_vec",
        src / "otfr_vec",
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"),
    )
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, src], tmp)
    (wheel,) = dist.glob("otfr_vec-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp)
    vpy = venv / "bin" / "python"
    purelib = _run([vpy, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp)
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(purelib.stdout.strip()) / "borrowed_deps.pth").write_text("\n".join(sorted(deps)))
    _run([sys.executable, "-m", "pip", "--python", vpy, "install", "--no-deps", "-q", wheel], tmp)
    work = tmp / "elsewhere"
    work.mkdir()
    return venv / "bin", work


def _env():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "NUMBA_DISABLE_JIT": "1"}


def test_the_wheel_carries_conf_and_traces(installed):
    bin_, work = installed
    probe = (
        "import otfr_vec, otfr_vec.config as c, otfr_vec.scenario.trace as t; "
        "print(otfr_vec.__file__); print(c.CONF_DIR); "
        "print(sorted(str(p.relative_to(c.CONF_DIR)) for p in c.CONF_DIR.rglob('*.yaml'))); "
        "print(t.packaged_traces())"
    )
    out = _run([bin_ / "python", "-c", probe], work, env=_env()).stdout.splitlines()
    venv = bin_.parent
    assert Path(out[0]).is_relative_to(venv) and Path(out[1]).is_relative_to(venv)
    ours = sorted(str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml"))
    assert out[2] == str(ours)
    assert "azure_code" in out[3] and "mooncake_conversation" in out[3]


def test_console_scripts_run_outside_the_source_tree(installed):
    bin_, work = installed
    p = _run([bin_ / "otfr-run", *TINY, "out=one.zarr"], work, env=_env())
    assert "fault_aware_otfr" in p.stdout and "note: rho_net = " in p.stdout
    assert xr.open_zarr(work / "one.zarr").failure_rate.sizes["scheduler"] == 5
    p = _run(
        [
            bin_ / "otfr-sweep",
            "+grid=severity",
            "schedulers=${policies:study}",
            *TINY,
            "sweep.axes.degradation.r=[0.1]",
            "sweep.seeds=1",
            "dask=serial",
            "store=sweep.zarr",
        ],
        work,
        env=_env(),
    )
    assert bool(xr.open_zarr(work / "sweep.zarr").done.all())
    assert "usage:" in _run([bin_ / "otfr-report", "--help"], work, env=_env()).stdout
    assert "{run,compare}" in _run([bin_ / "otfr-testbed", "--help"], work, env=_env()).stdout


def test_hydra_tab_completion_of_the_console_scripts(installed):
    bin_, work = installed
    install = _run([bin_ / "otfr-run", "-sc", "install=bash"], work).stdout
    assert "-F hydra_bash_completion otfr-run" in install
    for line, want in [
        ("otfr-run degradation.pat", "degradation.pattern="),
        ("otfr-sweep +grid=sev", "+grid=severity"),
    ]:
        env = {**_env(), "COMP_LINE": line, "COMP_POINT": str(len(line))}
        script = line.split()[0]
        assert want in _run([bin_ / script, "-sc", "query=bash"], work, env=env).stdout.split()
