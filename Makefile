# make demo / make test create .venv on their own when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint typecheck format clean mutation

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The pinned torch is a CPU wheel; installing it first keeps pip from pulling a CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/medseg demo

test: $(INSTALLED) lint typecheck
	$(BIN)/python -m pytest --durations=15

# Mutation testing of the core modules (tools/mutate.py): about 20 minutes on 2 cores; not part of `make test`.
mutation: $(INSTALLED)
	$(BIN)/python tools/mutate.py

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The type hints of medseg/ (settings in pyproject.toml's [tool.mypy]).
typecheck: $(INSTALLED)
	$(BIN)/python -m mypy

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) demo_output .pytest_cache .ruff_cache .mypy_cache .hypothesis
