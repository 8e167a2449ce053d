# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit integration bench clean

$(STAMP): setup.py pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[tests]'
	@touch $(STAMP)

## make demo: install, start the bundled SP-API emulator, run a real read against it, summarise
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## make test: lint, then every unit and integration test
test: $(STAMP) lint
	$(BIN)/python -m pytest

## make bench: rate-limit bound ratio, records per second, peak RSS (not part of make test)
bench: $(STAMP)
	$(BIN)/python scripts/bench.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(STAMP)
	$(BIN)/python -m pytest unit_tests

integration: $(STAMP)
	$(BIN)/python -m pytest integration_tests

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache *.egg-info
