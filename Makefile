# Arbiter's everyday commands. `make run` and `make test` set up .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: setup run test check lint types contracts pytest bench migrate revision

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[cpu,dev]'
	touch $@

setup: $(VENV)/.installed

run: setup  ## serve on the embedded defaults (SQLite file, migrations applied, admin key printed once)
	$(BIN)/arbiter serve

test: check  ## what CI runs: lint, import contracts, types, the whole suite

check: setup lint contracts types pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

contracts: setup
	$(BIN)/lint-imports

types: setup
	$(BIN)/mypy

pytest: setup
	$(PY) -m pytest

bench: setup
	$(PY) bench/api_load.py

migrate: setup
	$(BIN)/arbiter db upgrade

revision: setup  ## make revision m="add a column"
	$(BIN)/alembic revision --autogenerate -m "$(m)"
