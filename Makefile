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

.PHONY: help setup run test test-fast tune calibrate benchmark lint format bench serve clean-venv

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

BENCHMARK ?=
BENCH_DIR = bench/$(BENCHMARK)
BENCH_TASK = $(if $(filter pastis,$(BENCHMARK)),croptype,$(if $(filter bigearthnet%,$(BENCHMARK)),multilabel,scene))
BENCH_ENCODERS = $(if $(filter pastis,$(BENCHMARK)),$(BENCH_DIR)/models/pretrain,models/pretrain)
BENCH_P = --params $(BENCH_DIR)/params.yaml

benchmark: setup  ## a standard benchmark end to end: BENCHMARK=eurosat|bigearthnet|bigearthnet_v1|pastis from data/benchmarks/<name> (docs/benchmarks.md)
	@case "$(BENCHMARK)" in eurosat|bigearthnet|bigearthnet_v1|pastis) ;; \
	  *) echo "usage: make benchmark BENCHMARK=eurosat|bigearthnet|bigearthnet_v1|pastis (download: docs/benchmarks.md)" >&2; exit 2;; esac
	mkdir -p $(BENCH_DIR)
	cp params.yaml $(BENCH_DIR)/params.yaml
	s2ssl tune apply --best profiles/$(BENCHMARK).yaml $(BENCH_P)
	s2ssl fetch $(BENCH_P) --out $(BENCH_DIR)/raw --reports $(BENCH_DIR)/reports/fetch
	s2ssl validate $(BENCH_P) --raw $(BENCH_DIR)/raw --out $(BENCH_DIR)/validated --reports $(BENCH_DIR)/reports/validate
	$(if $(filter pastis,$(BENCHMARK)),MLFLOW_TRACKING_URI=sqlite:///$(abspath $(BENCH_DIR))/mlflow.db s2ssl pretrain --method cscl $(BENCH_P) --data $(BENCH_DIR)/validated --out $(BENCH_DIR)/models/pretrain --reports $(BENCH_DIR)/reports/pretrain,@echo "encoders: models/pretrain (from make run)")
	MLFLOW_TRACKING_URI=sqlite:///$(abspath $(BENCH_DIR))/mlflow.db s2ssl finetune --task $(BENCH_TASK) $(BENCH_P) \
	  --data $(BENCH_DIR)/validated --pretrained $(BENCH_ENCODERS) --out $(BENCH_DIR)/models/finetune --reports $(BENCH_DIR)/reports/finetune
	s2ssl evaluate $(BENCH_P) --runs $(BENCH_DIR)/reports/finetune --data $(BENCH_DIR)/validated --out $(BENCH_DIR)/reports/evaluate
	@echo "report: $(BENCH_DIR)/reports/evaluate/report.md   (runs: $(BENCH_DIR)/reports/finetune/$(BENCH_TASK)/runs, MLflow: $(BENCH_DIR)/mlflow.db)"

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
