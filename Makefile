# The commands a person and CI run. CI calls `make test` unchanged (.ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Debian packages the product and its tests run for real: Prometheus (with promtool) and
# Alertmanager (with amtool), a C compiler for the scorer's compiled trees, openssl for the
# TLS settings' tests, and PostgreSQL for the history sink (its server binaries only: the
# cluster and service the package creates stay unused). The shell expands the glob: any version.
DEB_PACKAGES := prometheus prometheus-alertmanager gcc libc6-dev openssl postgresql
DEB_BINARIES := /usr/bin/prometheus /usr/bin/promtool /usr/bin/prometheus-alertmanager /usr/bin/amtool \
	/usr/bin/gcc /usr/include/stdio.h /usr/bin/openssl /usr/lib/postgresql/*/bin/initdb
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help venv system-deps lint format typecheck test test-fast demo clean

help:
	@echo "make demo         run appraise on the embedded broker, demo time scales"
	@echo "make test         lint, type-check and run every test against real servers"
	@echo "make test-fast    only the tests that need no broker or server"
	@echo "make lint         ruff, ruff format --check, and the layer check (lint-imports)"
	@echo "make typecheck    mypy --strict"
	@echo "make format       apply ruff's formatting and fixes"
	@echo "make venv         prepare .venv (done by every target that needs it)"
	@echo "make system-deps  install the Debian packages the tests run (when missing)"
	@echo "make clean        remove .venv and the tools' caches"

# The venv is rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(STAMP)

# Installs what is missing; a machine that has everything is left alone (no network needed).
system-deps:
	@missing=""; for b in $(DEB_BINARIES); do [ -e $$b ] || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(DEB_PACKAGES) (missing:$$missing)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES); \
	fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv
	$(BIN)/mypy

test: system-deps lint typecheck
	$(BIN)/pytest

test-fast: venv
	$(BIN)/pytest -m "not integration"

demo: venv
	@$(MAKE) --no-print-directory system-deps || echo "note: could not install $(DEB_PACKAGES); appraise up runs without them"
	$(BIN)/appraise up --profile demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
