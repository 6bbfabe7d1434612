# otfr_vec — `make help` lists the targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install wheel sweep run testbed report paper test test-fast lint format bench update-baseline clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,jobqueue,testbed]"
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install otfr_vec with its dev tools

wheel: $(STAMP)  ## build dist/otfr_vec-*.whl (configuration and traces inside) to pip install anywhere
	$(BIN)/pip wheel --no-deps --quiet -w dist .
	@ls dist/otfr_vec-*.whl

sweep: $(STAMP)  ## the main job: the severity grid (r x every scheduler x 5 seeds, ~2.5 min on 2 cores) into outputs/severity.zarr
	$(BIN)/python -m otfr_vec.sweep +grid=severity $(ARGS)

report: $(STAMP)  ## figures and REPORT.md from the stores in outputs/ (into outputs/report; ARGS="--use severity=PATH" picks among candidates)
	$(BIN)/python -m otfr_vec.report $(wildcard outputs/*.zarr) --out outputs/report $(ARGS)

paper: $(STAMP)  ## every result R1-R10 into outputs/paper (5-12 min on 2 cores; resumes; FRESH=1 starts from scratch; POLICIES=all: all 16 in every grid, into outputs/paper-all)
	PY=$(BIN)/python bash sweeps/paper.sh

run: $(STAMP)  ## simulate the default scenario (32 x 32 workers, r = 0.10) for all five schedulers
	$(BIN)/python -m otfr_vec.run $(ARGS)

testbed: $(STAMP)  ## the loopback testbed's default run (needs root; ~1 min) into outputs/testbed.zarr
	$(BIN)/python -m otfr_vec.testbed run $(ARGS)

test: $(STAMP)  ## run the test suite
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)  ## the tests without the slow statistical ones
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)  ## ruff lint and format check
	$(BIN)/ruff check otfr_vec tests benchmarks
	$(BIN)/ruff format --check otfr_vec tests benchmarks

format: $(STAMP)  ## ruff autoformat
	$(BIN)/ruff format otfr_vec tests benchmarks

bench: $(STAMP)  ## every benchmark into outputs/benchmarks (ARGS=--record: refresh benchmarks/RESULTS.md; ~4 min)
	$(BIN)/python -m benchmarks $(ARGS)

update-baseline: $(STAMP)  ## refresh tests/baselines/metrics.json after an intended change of results (say why in the commit)
	$(BIN)/python benchmarks/update_baseline.py

clean:  ## remove caches and outputs (keeps .venv)
	rm -rf outputs .pytest_cache .hypothesis .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +
