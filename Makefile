# The two commands a newcomer needs: `make run` and `make test`.
# Everything else here is a step they depend on.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# gRPC stubs are generated from contracts/ (gitignored), by the install step.
GEN := quoting_worker/adapters/_generated/__init__.py


.PHONY: run test lint typecheck pytest services venv migrate clean

venv: $(STAMP) $(GEN)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(GEN): $(STAMP) $(wildcard contracts/*.proto) scripts/gen_protos.sh
	PYTHON=$(BIN)/python bash scripts/gen_protos.sh

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
