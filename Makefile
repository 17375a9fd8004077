# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: run test lint format fuzz bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## Serve on http://127.0.0.1:8000 through the real entrypoint (SQLite under instance/ by default).
run: $(VENV)/.runtime
	HOST=$${HOST:-127.0.0.1} ./entrypoint.sh

## Lint (ruff, mypy), then the whole test suite on SQLite and on PostgreSQL.
test: $(VENV)/.dev lint
	$(BIN)/pytest

## Benchmarks on the real PostgreSQL (BENCH_DATABASE_URL); not part of `make test`.
## BENCH_QUICK=1 make bench: a quick pass. Figures: bench/README.md.
## Each script's wall time is printed after its output (all of them: about 19 minutes on 2 idle cores).
BENCHMARKS := startup fleet many_revisions zero_downtime backfill api fetch rollout push rehearse slow_clients
bench: $(VENV)/.dev
	@all=$$(date +%s); for name in $(BENCHMARKS); do \
		start=$$(date +%s); $(BIN)/python bench/$$name.py || exit 1; \
		echo "\nbench/$$name.py took $$(( $$(date +%s) - start )) s"; \
	done; echo "make bench took $$(( $$(date +%s) - all )) s"

## Longer hostile runs: schemathesis with ~10,000 cases and the full fleet (10 rounds of 16 entrypoints).
fuzz: $(VENV)/.dev
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-300} FLEET_ROUNDS=$${FLEET_ROUNDS:-10} $(BIN)/pytest -n 2 -s \
		tests/test_fuzz_api.py tests/test_fleet_storm.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache instance
