# The README's two commands: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv and installs densify with its development extras on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: demo test test-all lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/densify data info fashion-mini
	$(BIN)/densify coverage --data fashion-mini --recipe none --recipe flip --recipe vflip --recipe affine-light \
		--recipe cutout --recipe randaugment --per-class --json densify-report/coverage.json
	$(BIN)/densify recipes preview affine-light --data fashion-mini -o densify-report/affine-light-preview.png

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ''

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
