# Two commands for a new machine:
#   make serve   install what is needed and start llmserve on 127.0.0.1:8888 with the bundled model
#   make test    install the dev tools and run lint, types and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: serve test lint typecheck pytest install-serve install-dev model clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is pinned in pyproject (extra `local`): a CPU machine must not pull a multi-GB CUDA build.
$(VENV)/.serve-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $@ $(VENV)/.serve-installed

install-serve: $(VENV)/.serve-installed
install-dev: $(VENV)/.dev-installed

serve: install-serve
	$(BIN)/llmserve serve $(ARGS)

lint: install-dev
	$(BIN)/ruff check src tests tools examples benchmarks
	$(BIN)/ruff format --check src tests tools examples benchmarks
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	$(BIN)/pytest -q -p no:cacheprovider --durations=10

test: lint typecheck pytest

# Rebuild the bundled tiny chat model (deterministic, ~10 minutes on 2 CPU cores).
model: install-dev
	$(BIN)/python tools/build_tiny_model.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
