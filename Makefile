# LeviBot -- `make help` lists the targets. Every target creates/reuses .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Ploomber must never try to reach the network (telemetry, version check).
export PLOOMBER_STATS_ENABLED := false
export PLOOMBER_VERSION_CHECK_DISABLED := 1

.DEFAULT_GOAL := help
.PHONY: help install run test lab lint format clean clean-all serve bench marathon check-ops \
	export-argo export-airflow

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/constraints.txt ops/jupyter/*.json
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c requirements/constraints.txt -e '.[dev]'
	@# JupyterLab: avoid the ploomber/jupytext contents-manager clash; open .py as notebooks
	install -D -m 644 ops/jupyter/jupyter_server_config.json $(VENV)/etc/jupyter/jupyter_server_config.json
	install -D -m 644 ops/jupyter/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	@touch $@

install: $(STAMP) ## create .venv and install the project with pinned dependencies

run: $(STAMP) ## the whole pipeline on the embedded data, ending with the marathon decision
	$(BIN)/ploomber build
	@$(BIN)/levibot marathon summary || true

test: $(STAMP) ## run the test suite
	$(BIN)/python -m pytest

SERVE_WORKERS ?= 2
PROM_DIR := data/serving/prometheus
serve: $(STAMP) ## start the API on 127.0.0.1:8000 (needs a trained registry: make run)
	rm -rf $(PROM_DIR) && mkdir -p $(PROM_DIR)
	PROMETHEUS_MULTIPROC_DIR=$(PROM_DIR) $(BIN)/uvicorn serving.app:create_app --factory \
		--host 127.0.0.1 --port 8000 --workers $(SERVE_WORKERS)

DRIFT_RUNS ?= 100
SIM_RUNS ?= 20
bench: $(STAMP) ## benchmarks: serving req/s and p50/p99 vs a trivial endpoint, RSS; drift check; selection on real EURUSD; cost vs number of symbols
	@test -f registry/model_registry.json || $(MAKE) run
	$(BIN)/python bench/bench_serving.py
	$(BIN)/python bench/bench_drift.py
	$(BIN)/python bench/bench_drift_detection.py --runs $(DRIFT_RUNS)
	$(BIN)/python bench/bench_real_data.py
	$(BIN)/python bench/bench_replay.py
	$(BIN)/python bench/bench_scaling.py
	$(BIN)/levibot marathon simulate --runs $(SIM_RUNS)

marathon: $(STAMP) ## start a live marathon: pre-flight, canary at 10%, managed API on :8000
	$(BIN)/levibot marathon start

LAB_ARGS ?=
export-argo: $(STAMP) ## write deploy/cluster/argo.yaml: the pipeline as an Argo Workflow (offline)
	$(BIN)/levibot export argo

export-airflow: $(STAMP) ## write deploy/cluster/airflow/: the pipeline as an Airflow DAG (offline)
	$(BIN)/levibot export airflow

lab: $(STAMP) ## open the notebooks in JupyterLab (parameters injected, not saved)
	$(BIN)/jupyter lab --ip 127.0.0.1 --no-browser $(LAB_ARGS)

lint: $(STAMP) ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check-ops: ## validate ops/prometheus with promtool (installs it via apt if missing)
	command -v promtool || (apt-get update && apt-get install -y --no-install-recommends prometheus)
	promtool check config ops/prometheus/prometheus.yml
	promtool check rules ops/prometheus/alerts.yml
	promtool test rules ops/prometheus/alerts_test.yml

clean: ## remove what a build regenerates (store, replays, reports); keeps serving state, registry, run history
	rm -rf data/store data/staging data/replay data/simulate data/quarantine data/ingest_manifest.json \
		reports/*.html reports/*.ipynb reports/pipeline.png reports/.*.metadata .pytest_cache

clean-all: ## also remove serving state (shadow logs, paper books), the registry (every model) and run history: CONFIRM=yes
	@test "$(CONFIRM)" = yes || { echo "make clean-all deletes data/ (shadow logs, paper books, kill-switch), registry/ (every trained model) and reports/runs/; run: make clean-all CONFIRM=yes"; exit 2; }
	rm -rf data registry reports/runs reports/*.html reports/*.ipynb reports/.*.metadata .pytest_cache
