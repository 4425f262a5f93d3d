# s2ssl — the two commands:  `make run` (set up + whole pipeline)  and  `make test` (set up + tests).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed

# Quiet, offline-friendly defaults (no telemetry; see DESIGN §6).
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export MPLBACKEND := Agg

.PHONY: help setup run test test-fast tune calibrate lint format bench serve clean-venv

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)  ## create .venv (if absent) and install s2ssl with its dev tools

run: setup  ## run the whole pipeline (dvc repro) on the embedded synthetic world
	dvc repro
	@echo
	@echo "Results:"
	@echo "  datasets      data/raw/{unlabelled,landcover,croptype}   (s2ssl info data/raw/landcover)"
	@echo "  quicklooks    reports/fetch/*.png"
	@echo "  validated     data/validated/*  (quarantine: reports/validate/quarantine.csv)"
	@echo "  data docs     reports/validate/datadocs/index.html        (open in a browser)"
	@echo "  encoders      models/pretrain/<method>/encoders/<unit>     (model.safetensors + config.json; reports/pretrain/<method>/metrics.json)"
	@echo "  fine-tuned    models/finetune/<task>/model                 (per-run results: reports/finetune/<task>/runs)"
	@echo "  evaluation    reports/evaluate/report.md                   (figures/, metrics.json; dvc plots show)"
	@echo "  registry      s2ssl models                                 (MLflow: mlruns/mlflow.db; reports/promote/decisions.json)"
	@echo "  maps          s2ssl predict data/raw/landcover --out predictions   (champion model)"
	@echo "  metrics       dvc metrics show"

serve: setup  ## Prefect server on 127.0.0.1:4200 + the prefect.yaml deployments on their schedules
	python -m flows.serve --start-server

test: setup  ## run the test suite (offline, CPU)
	pytest -q

test-fast: setup  ## the test suite without the tests marked slow (a quick check; `make test` runs all)
	pytest -q -m "not slow"

tune: setup  ## run or resume the Optuna sweep (dvc repro tune/dvc.yaml; never part of make run)
	dvc repro tune/dvc.yaml

calibrate: setup  ## random init + baselines vs targets, no pre-training (dvc repro calibrate/dvc.yaml; never part of make run)
	dvc repro calibrate/dvc.yaml

lint: setup  ## ruff lint + format check
	ruff check src tests flows benchmarks
	ruff format --check src tests flows benchmarks

format: setup  ## apply ruff formatting and safe fixes
	ruff check --fix src tests flows benchmarks
	ruff format src tests flows benchmarks

bench: setup  ## run the benchmarks (JSON on stdout)
	python benchmarks/bench_fetch.py

clean-venv:  ## remove the virtual environment
	rm -rf $(VENV)
