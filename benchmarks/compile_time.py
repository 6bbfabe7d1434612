"""Time a first compile of every kernel (an empty Numba cache), as a fresh machine pays it.

    python benchmarks/compile_time.py            # this checkout
    python benchmarks/compile_time.py --passes   # and advance's compiler passes

Compiles by one tiny run of all 16 policies with ``NUMBA_CACHE_DIR`` pointed at a new
empty folder (removed after), then prints the wall and CPU time of that run, the time
spent inlining ``inline_kernel`` helpers (``InlineWorker.inline_function``, outermost
calls), and the kernels that took longest (Numba's ``compiler_lock`` and ``llvm_lock``
timers; a kernel's time includes the kernels it compiled on the way). Sizeable noise on
a shared VM: compare checkouts alternately, as for the other benchmarks/ scripts.
"""

from __future__ import annotations

import gc
import os
import resource
import shutil
import sys
import tempfile
import time


def main(argv: list[str]) -> None:
    cache = tempfile.mkdtemp(prefix="otfr_vec-compile-")
    os.environ["NUMBA_CACHE_DIR"] = cache  # before otfr_vec.kernels picks its cache
    try:
        _measure("--passes" in argv)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _measure(passes: bool) -> None:
    from numba.core import inline_closurecall
    from numba.core.registry import CPUDispatcher

    import otfr_vec
    from otfr_vec import make_config
    from otfr_vec.engine import run
    from otfr_vec.kernels import step

    inline = inline_closurecall.InlineWorker.inline_function
    spent, depth, calls = [0.0], [0], [0]

    def timed(self, *args, **kwargs):
        depth[0] += 1
        calls[0] += 1
        t0 = time.process_time()
        try:
            return inline(self, *args, **kwargs)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                spent[0] += time.process_time() - t0

    inline_closurecall.InlineWorker.inline_function = timed
    cfg = make_config(
        ["schedulers=${policies:all}", "cluster.pods=2", "cluster.workers_per_pod=4"]
        + ["sim.duration=30"]
    )
    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime, time.perf_counter()
    run(cfg)
    wall, cpu = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0
    inline_closurecall.InlineWorker.inline_function = inline
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"first compile of every kernel ({otfr_vec.__file__}): wall {wall:.1f} s, cpu {cpu:.1f} s"
    )
    print(f"  inlining ({inline.__module__}): {spent[0]:.1f} s over {calls[0]} call sites")
    print(f"  peak RSS {rss:.0f} MiB")
    rows = []
    for obj in gc.get_objects():
        if isinstance(obj, CPUDispatcher) and obj.py_func.__module__.startswith("otfr_vec"):
            for ov in obj.overloads.values():
                t = (ov.metadata or {}).get("timers", {})
                name = f"{obj.py_func.__module__}.{obj.py_func.__name__}"
                rows.append((t.get("compiler_lock", 0.0), t.get("llvm_lock", 0.0), name))
    print(f"  {len(rows)} otfr_vec overloads; the longest (compile s, of it LLVM s):")
    for c, llvm, name in sorted(rows, reverse=True)[:8]:
        print(f"    {c:6.1f} {llvm:6.1f}  {name}")
    if passes:
        for ov in step.advance.overloads.values():
            for pipeline, times in ov.metadata["pipeline_times"].items():
                rows = sorted(
                    ((v.init + v.run + v.finalize, k) for k, v in times.items()), reverse=True
                )
                print(f"  advance, {pipeline} pipeline: {sum(r[0] for r in rows):.1f} s")
                for s, name in rows[:8]:
                    print(f"    {s:6.1f}  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
