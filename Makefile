# modeldeck: `make run` starts the platform with a demo, `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# `make run` needs the package and what it runs on, not the dev tools (playwright, mypy, ...).
RUN_STAMP := $(VENV)/.installed-run-stamp
# Benchmark-only: Evidently (extra 'bench') needs plotly<6, so it gets a venv of its own.
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp
# Benchmark-only: MLServer with its MLflow runtime and the flavours' libraries, apart from .venv.
MLSERVER_VENV ?= .venv-mlserver
MLSERVER_STAMP := $(MLSERVER_VENV)/.installed-stamp
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install run test test-slow test-ray lint bench bench-flavours bench-monitoring bench-dashboard screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

$(RUN_STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "creating the virtual environment $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "installing modeldeck and what it runs on into $(VENV) (once; a minute or two on a fresh machine)"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --progress-bar on -e .
	@touch $(RUN_STAMP)

install: $(STAMP)

## run: set up what running needs, then run the platform on embedded defaults with the demo model and its story (Ctrl-C stops)
run: $(RUN_STAMP)
	$(BIN)/modeldeck demo --story

## test: lint (ruff), types (mypy) and the suite but its slow suites (PostgreSQL too when MODELDECK_TEST_POSTGRES_URL is set)
# TEST_WORKERS: pytest-xdist workers, each running whole test files (module fixtures start one
# platform per file); 0 runs the suite in this process.
TEST_WORKERS ?= 2
test: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not ray and not slow" $(PYTEST_ARGS)

## test-slow: the suites marked slow, a minute or more each (builds with real uv, the demo, the CI pipeline, Cloudera-style builds, drift alerts end to end, canary rollouts and their evidence, the API fuzz, platform restarts and kills, every model flavour, the wheel in a fresh venv; about 17 minutes)
test-slow: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "slow and not ray" $(PYTEST_ARGS)

## test-ray: the Ray Serve runtime's tests (installs the ray extra, starts a local Ray head; about 2 minutes)
test-ray: install
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	$(BIN)/python -m pytest -m ray $(PYTEST_ARGS)

## lint: ruff, mypy (strict) and the import contracts (pyproject.toml [tool.importlinter])
lint: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: serving against `mlflow models serve` (needs wrk; installs it when root), then ingestion
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/serve.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/ingest.py $(INGEST_ARGS)

# uvloop 0.22 removed the implicit event loop MLServer 1.7's parallel workers ask for.
$(MLSERVER_STAMP):
	test -x $(MLSERVER_VENV)/bin/python || $(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MLSERVER_VENV)/bin/python -m pip install --quiet mlserver mlserver-mlflow \
		"mlflow==$$($(BIN)/python -c 'import mlflow; print(mlflow.__version__)')" \
		torch==2.13.0 xgboost-cpu lightgbm catboost "uvloop<0.22"
	touch $(MLSERVER_STAMP)

## bench-flavours: every flavour at c=1 and c=64 against `mlflow models serve` and MLServer (in .venv-mlserver)
bench-flavours: install $(MLSERVER_STAMP)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/serve.py --flavours --mlserver-python $(MLSERVER_VENV)/bin/python $(BENCH_ARGS)

$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[postgres,bench]'
	touch $(BENCH_STAMP)

## bench-monitoring: drift and performance over 1M stored predictions against Evidently (in .venv-bench)
bench-monitoring: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python benchmarks/monitoring.py $(MONITORING_ARGS)

## screenshots: the dashboard's browser tests, writing their screenshots to docs/screenshots/
screenshots: install
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium fonts-dejavu-core)
	MODELDECK_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest tests/ui/test_browser.py tests/ui/test_browser_actions.py tests/ui/test_story.py $(PYTEST_ARGS)

## bench-dashboard: the deployment page's API calls over 1M predictions and 14 days of rollups
bench-dashboard: install
	$(BIN)/python benchmarks/dashboard.py $(DASHBOARD_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
