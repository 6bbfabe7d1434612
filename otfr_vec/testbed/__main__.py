"""``python -m otfr_vec.testbed {run,compare} [--option value ...] [key=value ...]``

    python -m otfr_vec.testbed run                                  # ~1 minute, as root
    python -m otfr_vec.testbed run degradation.r=0.05 schedulers=[lc,fault_aware_lc]
    python -m otfr_vec.testbed compare --seeds 3 schedulers=[lc,fault_aware_lc]
    otfr-testbed run ...                                            # the console script

``key=value``: any simulator key, over the testbed's scaled defaults
(otfr_vec/testbed/config.py says which and why). Options: ``--help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..config import ConfigError
from .config import Options


def _options_parser(p: argparse.ArgumentParser) -> None:
    helps = {
        "leaf": "qdisc under each link's HTB class (pfifo; fq_codel, sfq if the kernel has them)",
        "queue_packets": "leaf queue limit in packets",
        "mtu": "loopback MTU inside the namespace",
        "tick": "router tick/observe period in s (default: sim.dt)",
        "tc_step": "s between rate updates of continuous degradation patterns",
        "min_idle_cores": "refuse to start with fewer idle cores",
        "max_host_busy": "flag the run host-bound above this mean CPU busy fraction",
        "max_lateness": "flag the run host-bound above this p99 timing error (s)",
        "force": "start even on a busy host (the run is flagged)",
        "keep": "copy each run's directory (plan, records, logs) under this folder",
        "inject": argparse.SUPPRESS,
    }
    for f in dataclasses.fields(Options):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", help=helps[f.name])
            continue
        conv = {"int": int, "float": float}.get(str(f.type), None)
        if conv is None and "float" in str(f.type):
            conv = float
        p.add_argument(flag, type=conv or str, default=f.default, help=helps[f.name])


def parser() -> argparse.ArgumentParser:
    script = Path(sys.argv[0]).name == "otfr-testbed"  # the console script, or python -m
    ap = argparse.ArgumentParser(
        prog="otfr-testbed" if script else "python -m otfr_vec.testbed",
        description=__doc__.split("\n")[0],
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the schedulers of the config in the testbed")
    run.add_argument("--out", default="outputs/testbed.zarr", help="Zarr store to write")
    cmp = sub.add_parser("compare", help="testbed vs simulator over seeds, side by side")
    cmp.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (sim.seed + k)")
    cmp.add_argument("--out", default="outputs/testbed_compare", help="folder for stores and table")
    for p in (run, cmp):
        _options_parser(p)
        p.add_argument("overrides", nargs="*", help="simulator keys, key=value")
    return ap


def options(ns) -> Options:
    return Options(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(Options)})


def main(argv: list[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    from .bed import HostBusy, TestbedError
    from .netns import NotRootError, require_root

    try:
        require_root()
        from .config import check_options, make_testbed_config

        opts = options(ns)
        check_options(opts)
        cfg = make_testbed_config(ns.overrides)
        if ns.cmd == "run":
            return cmd_run(cfg, opts, Path(ns.out))
        from .compare import cmd_compare

        return cmd_compare(cfg, opts, ns.seeds, Path(ns.out))
    except (ConfigError, NotRootError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except HostBusy as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except TestbedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        print(f"testbed: {err or 'interrupted'}", file=sys.stderr)
        return 143 if "SIGTERM" in str(err) else 130


def check_out(path: Path) -> None:
    """Refuse, before running, to replace anything but a store the testbed wrote."""
    import xarray as xr

    if path.exists():
        try:
            old = xr.open_zarr(path)
            ours = "testbed:router" in old.attrs
            old.close()
        except Exception:  # noqa: BLE001 - not a readable store: not ours
            ours = False
        if not ours:
            raise ConfigError(
                f"--out {path}: exists and is not a store written by the testbed; not "
                "replacing it (choose another --out)"
            )


def cmd_run(cfg, opts, out: Path) -> int:
    from ..engine import make_scenario
    from ..run import format_table, save
    from .run import describe, run_testbed

    check_out(out)
    print(describe(cfg, make_scenario(cfg)), flush=True)
    ds = run_testbed(cfg, opts)
    print(format_table(ds))
    out.parent.mkdir(parents=True, exist_ok=True)
    save(ds, str(out))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
