# The two commands of the README: `make serve` and `make test`. Everything else is a helper.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test lint typecheck unit install install-test bench bench-quick fuzz chaos chaos-short soak clean coverage mutation

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[sdk]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

serve: install
	$(BIN)/hpcplane serve

lint: install-test
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools

typecheck: install-test
	$(BIN)/mypy

# The suite runs under coverage, the servers it starts and the xdist workers included; below the floor
# ([tool.coverage.report] fail_under) the run fails (docs/test-strength.md). TEST_WORKERS xdist workers:
# most tests wait on servers and timers, so more workers than cores (decision 0058); a file's tests, and
# the tests that change the machine (tests/support/scheduling.py), stay on one worker. The chaos run
# (tests/chaos: faults timed against leases) runs after them, alone on the machine, as before xdist.
TEST_WORKERS ?= 4
COVERED_PYTEST = rm -rf .coverage-data && mkdir -p .coverage-data \
	&& $(BIN)/python -m coverage run -m pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/chaos \
	&& $(BIN)/python -m coverage run -m pytest tests/chaos \
	&& $(BIN)/python -m coverage combine --quiet

test: lint typecheck
	$(COVERED_PYTEST)
	$(BIN)/python -m tools.coverage_report

# The same run, and the per-module table written to docs/coverage-report.md.
coverage: install-test
	$(COVERED_PYTEST)
	$(BIN)/python -m tools.coverage_report --write docs/coverage-report.md

# Mutants of the core modules, each run against the unit and integration tests that reach it.
mutation: install-test
	$(BIN)/python -m tools.mutation

bench: install-test
	$(BIN)/python -m bench

bench-quick: install-test
	$(BIN)/python -m bench --quick

# A long fuzz run (tests/fuzz): FUZZ_SECONDS split between SQLite and PostgreSQL (when reachable).
FUZZ_SECONDS ?= 300
fuzz: install-test
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m tests.fuzz

# Faults injected into real processes (docs/operations.md, "Faults"): a few minutes; the table it prints.
chaos: install-test
	$(BIN)/python -m bench.chaos

chaos-short: install-test
	$(BIN)/python -m bench.chaos --short

# Half load without faults for SOAK_SECONDS (default 1800): errors and RSS growth per hour.
SOAK_SECONDS ?= 1800
soak: install-test
	SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/python -m bench.chaos.soak

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage-data mutants
