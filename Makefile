# The two commands a newcomer needs: `make run` and `make test`.
# Everything else here is a step they depend on.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# gRPC stubs are generated from contracts/ (gitignored), by the install step.
GEN := messaging/_generated/__init__.py


# The development Kafka broker's classpath, resolved from Maven Central (ops/kafka/pom.xml).
KAFKA_LIBS := var/kafka/libs
KAFKA_STAMP := $(KAFKA_LIBS)/.installed

# The quoting core compiled with mypyc (scripts/build_core.py): rebuilt when a
# core module changes; quoting_worker/core/__init__.py ignores a stale build.
CORE_SOURCES := $(filter-out quoting_worker/core/__init__.py,$(wildcard quoting_worker/core/*.py))
CORE_STAMP := quoting_worker/core/_compiled/MANIFEST.json

.PHONY: run test lint typecheck pytest services kafka venv core migrate clean

venv: $(STAMP) $(GEN)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(GEN): $(STAMP) $(wildcard contracts/*.proto) scripts/gen_protos.sh
	PYTHON=$(BIN)/python bash scripts/gen_protos.sh

core: $(CORE_STAMP)

$(CORE_STAMP): $(STAMP) $(CORE_SOURCES) quoting_worker/core/__init__.py scripts/build_core.py
	@command -v gcc >/dev/null || { echo "make core: gcc is needed to compile the quoting core"; exit 1; }
	@mkdir -p var
	$(BIN)/python scripts/build_core.py > var/build_core.log 2>&1 || { tail -40 var/build_core.log; exit 1; }
	@tail -1 var/build_core.log

services:
	bash scripts/services.sh

kafka: $(KAFKA_STAMP)

$(KAFKA_STAMP): ops/kafka/pom.xml
	@command -v java >/dev/null || { echo "make kafka: Java 17 is needed for the development broker"; exit 1; }
	@command -v mvn >/dev/null || { echo "make kafka: Maven is needed to fetch the development broker"; exit 1; }
	rm -rf $(KAFKA_LIBS)
	mvn --quiet --batch-mode -f ops/kafka/pom.xml dependency:copy-dependencies \
	  -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(KAFKA_LIBS)
	touch $(KAFKA_STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: venv
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/mypy .

# The whole suite on the compiled core, then the core's own tests on the
# interpreted one (tests/test_core_builds.py also compares their actions).
pytest: venv core services kafka
	MMS_CORE=compiled $(BIN)/pytest
	MMS_CORE=interpreted $(BIN)/pytest tests/core

test: lint typecheck pytest

run: venv core services kafka
	bash scripts/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache quoting_worker/core/_compiled
