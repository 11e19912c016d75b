# The commands a person and CI run. CI calls `make test` unchanged (.ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv lint format typecheck test test-fast demo clean

help:
	@echo "make demo   run appraise on the embedded broker (prepares .venv first)"
	@echo "make test   lint, type-check and run every test (prepares .venv first)"
	@echo "make format apply ruff's formatting and fixes"

# The venv is rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

test-fast: venv
	$(BIN)/pytest -m "not integration"

demo: venv
	$(BIN)/appraise up

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
