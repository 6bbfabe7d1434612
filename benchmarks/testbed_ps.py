"""Is processor sharing a fair model of TCP flows through one shaped link? (root)

    sudo .venv/bin/python benchmarks/testbed_ps.py [--repeats 3] [--leaf pfifo]

Runs KV-sized TCP flows through the testbed's own shaped links (otfr_vec.testbed.flows:
a private namespace, HTB at both ends, the testbed's default 40 Mbit/s links) and
compares every flow's transfer time with the model's rule ``min(bw_p / n_p, bw_d /
n_d)`` and with max-min fair sharing. Cases:

* ``same sender``: n = 1, 2, 4, 8 flows of 300 KB (the testbed's mean KV cache) from one
  prefill worker to n decode workers, started together: the model has every one end at
  n x 300 KB / bw;
* ``same receiver``: n flows from n prefill workers into one decode worker;
* ``staggered``: 8 flows, Poisson starts (mean gap 30 ms) and lognormal sizes (mean
  300 KB, sigma 0.8, as the workload draws prompts) through one sender;
* ``mixed ends``: one sender to a healthy and a degraded (r = 0.1) receiver at once;
  the case where the model and max-min differ most.

Prints a markdown table (mean, min and max of measured / model per flow over all flows
and repeats; the same for max-min) with the machine's load, for sweeps/TESTBED.md.

    .venv/bin/python benchmarks/testbed_ps.py --store outputs/testbed_prelim/testbed-seed*.zarr

instead replays every KV transfer of testbed runs (start, bytes, both workers, deadline,
the run's degradation schedule) through both fluid rules and compares each measured
transfer time with them: the sharing rule checked at exactly the concurrency a run had
(no root needed).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

BW = 5e6  # the testbed's default link (network.bw0), bytes/s
KV = 300_000  # its mean KV cache (2000 tokens x 150 B), bytes


def cases(rng: np.random.Generator) -> dict:
    out = {}
    for n in (1, 2, 4, 8):
        out[f"same sender, {n} flow(s)"] = (
            [dict(start=0.0, bytes=KV, src=0, dst=10 + k) for k in range(n)],
            {},
        )
    for n in (2, 4, 8):
        out[f"same receiver, {n} flows"] = (
            [dict(start=0.0, bytes=KV, src=k, dst=10) for k in range(n)],
            {},
        )
    starts = np.cumsum(rng.exponential(0.03, 8))
    sizes = rng.lognormal(np.log(KV) - 0.32, 0.8, 8).round()
    out["staggered, 8 flows, one sender"] = (
        [
            dict(start=float(s), bytes=float(b), src=0, dst=10 + k)
            for k, (s, b) in enumerate(zip(starts, sizes, strict=True))
        ],
        {},
    )
    out["mixed ends: healthy + degraded receiver"] = (
        [dict(start=0.0, bytes=KV, src=0, dst=10), dict(start=0.0, bytes=KV, src=0, dst=11)],
        {11: 0.1},
    )
    return out


def bandwidths(flows, factors) -> dict:
    ends = {f["src"] for f in flows} | {f["dst"] for f in flows}
    return {w: BW * factors.get(w, 1.0) for w in ends}


def main(argv=None) -> None:
    from otfr_vec.testbed.flows import fluid_times, measure_in_netns

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--leaf", default="pfifo")
    ap.add_argument("--queue-packets", type=int, default=100)
    ap.add_argument("--store", nargs="+", help="testbed stores to analyse instead")
    args = ap.parse_args(argv)
    if args.store:
        return in_situ(args.store)
    t_start = time.time()
    rows = []
    for name, (flows, factors) in cases(np.random.default_rng(1)).items():
        bw = bandwidths(flows, factors)
        model = np.array(fluid_times(flows, bw, "model"))
        maxmin = np.array(fluid_times(flows, bw, "maxmin"))
        got = measure_in_netns([flows] * args.repeats, bw, leaf=args.leaf, queue=args.queue_packets)
        got = np.array(got)  # [repeats, flows]
        r_model, r_mm = got / model[None, :], got / maxmin[None, :]
        last = got.max(axis=1) / model.max()
        rows.append((name, len(flows), r_model, r_mm, last, got, model, maxmin))
        print(f"{name}: done", file=sys.stderr, flush=True)
    print(f"Command: `python benchmarks/testbed_ps.py --repeats {args.repeats} --leaf {args.leaf}`")
    print(
        f"({time.time() - t_start:.0f} s; {platform.node()}, Linux {platform.release()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end; "
        f"links {8 * BW / 1e6:g} Mbit/s, leaf {args.leaf} of {args.queue_packets} packets)\n"
    )
    print(
        "| case | flows | measured / model: mean [min, max] | measured / max-min: mean "
        "[min, max] | last flow done / model's |"
    )
    print("|---|---|---|---|---|")
    for name, n, rm, rmm, last, *_ in rows:
        f = lambda r: f"{r.mean():.2f} [{r.min():.2f}, {r.max():.2f}]"  # noqa: E731
        print(f"| {name} | {n} | {f(rm)} | {f(rmm)} | {last.mean():.2f} |")
    print()
    for name, *_, got, model, maxmin in rows:
        med = np.median(got, axis=0)
        print(
            f"- {name}: median measured "
            + ", ".join(f"{x:.3f}" for x in med)
            + " s; model "
            + ", ".join(f"{x:.3f}" for x in model)
            + " s; max-min "
            + ", ".join(f"{x:.3f}" for x in maxmin)
            + " s"
        )


def in_situ(paths) -> None:
    import xarray as xr

    from otfr_vec.testbed.flows import run_transfers

    print(f"Command: `python benchmarks/testbed_ps.py --store {' '.join(paths)}`\n")
    print(
        "| run | scheduler | transfers | measured / model: p10, median, p90 | measured / "
        "max-min: p10, median, p90 | cut by the deadline: measured, model, max-min |"
    )
    print("|---|---|---|---|---|---|")
    for path in paths:
        ds = xr.open_zarr(path).load()
        for s in ds.scheduler.values:
            got, model, maxmin = run_transfers(ds, str(s))
            ok = np.isfinite(got) & np.isfinite(model) & np.isfinite(maxmin)
            q = lambda r: ", ".join(f"{v:.2f}" for v in np.quantile(r, [0.1, 0.5, 0.9]))  # noqa: E731
            cut = ", ".join(str(int(np.isnan(v).sum())) for v in (got, model, maxmin))
            name = os.path.basename(path.rstrip("/"))
            print(
                f"| {name} | {s} | {got.size} | {q(got[ok] / model[ok])} | "
                f"{q(got[ok] / maxmin[ok])} | {cut} |"
            )


if __name__ == "__main__":
    main()
