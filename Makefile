# The README's two commands: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv and installs densify with its development extras on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: demo test test-fast browser lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/densify evaluate --resume
	@echo "open densify-report/report.html in a browser (every number: densify-report/report.json)"

# The whole suite, the slow browser test of report.html included (it needs Debian's chromium: `make browser`).
test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m ''

# Everything but the tests marked slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest

# Debian's chromium for the report test; installed when missing and apt-get is usable (root or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	( SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null ) || \
	echo "warning: chromium could not be installed; the browser test will be skipped (or fail under CI)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
