# Taskplane developer commands.
#
# `make up` and `make test` are all a new user needs: both create .venv and
# install the project into it on first use (and again whenever pyproject.toml
# changes). Everything else the stack needs ships as wheels.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STATE_DIR := .taskplane
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help install up services test lint format migrate worker api clean-state schemas client-types bench

help:
	@echo "make up           run the whole local stack (Ctrl-C stops it)"
	@echo "make test         run the whole test suite against real servers"
	@echo "make lint         ruff check, ruff format --check, mypy, lint-imports"
	@echo "make format       ruff format and ruff check --fix"
	@echo "make services     run only Postgres, Redis and Temporal"
	@echo "make migrate      apply migrations to TASKPLANE_DATABASE_URL"
	@echo "make schemas      regenerate schemas/json/ and docs/asyncapi.json from the event models"
	@echo "make client-types regenerate the JS client's types (clients/js) from the schemas and OpenAPI,"
	@echo "                  and the task page's bundle of it (api/static/taskplane-client.js; needs Node)"
	@echo "make worker|api   run one process against TASKPLANE_* servers"
	@echo "make bench        benchmarks (~15 min; BENCH_ARGS=--quick: ~3 min): bench/results/, docs/performance.md"
	@echo "make clean-state  delete $(STATE_DIR)/ (all local data)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Taskplane needs Python 3.11+; try: make PYTHON=python3.11 ..." >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing Taskplane and its dev tools into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --config-settings editable_mode=compat -e '.[dev]'
	@touch $@

install: $(STAMP)

up: $(STAMP)
	$(BIN)/taskplane up

services: $(STAMP)
	$(BIN)/taskplane services --migrate

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(STAMP)
	$(BIN)/taskplane migrate

# Refuses a change that breaks a published event schema (docs/events.md).
schemas: $(STAMP)
	$(BIN)/python -m tools.schema_export

# The bundle needs Node and `npm ci --prefix clients/js`; `make up` does not (it is committed).
client-types: $(STAMP)
	$(BIN)/python -m tools.client_types
	$(BIN)/python -m tools.client_bundle

# Starts its own servers on free ports; prints a table, writes bench/results/<mode>.json.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

worker: $(STAMP)
	$(BIN)/taskplane worker

api: $(STAMP)
	$(BIN)/taskplane api

# Refuses while `make up` runs; without a venv there is nothing running to protect.
clean-state:
	@if [ -x $(BIN)/taskplane ]; then $(BIN)/taskplane clean-state; else rm -rf $(STATE_DIR); fi
