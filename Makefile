# The two commands a newcomer needs: `make run` and `make test`.
# Everything else here is a step they depend on.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed


.PHONY: run test lint typecheck pytest services venv migrate clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

services:
	bash scripts/services.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/mypy .

pytest: venv services
	$(BIN)/pytest

test: lint typecheck pytest

run: venv services
	bash scripts/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
