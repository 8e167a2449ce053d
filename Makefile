# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# PyAirbyte (the `airbyte` package) has its own venv: it brings some hundred packages (DuckDB,
# pandas, cloud SDKs) that the connector's venv must not lean on. It runs the connector
# from .venv as a local executable, as the docs' tutorial shows (docs/sp-invoices.md).
PYAIRBYTE_VERSION := 0.71.3
PYAIRBYTE_VENV := .venv-pyairbyte
PYAIRBYTE_STAMP := $(PYAIRBYTE_VENV)/.installed-$(PYAIRBYTE_VERSION)

# Airbyte's connector QA (airbyte-internal-ops, behind `airbyte-ops local connector qa`) has a
# venv of its own too: it is heavy (some 220 packages, 860 MB) and make test does not need it.
QA_VERSION := 0.132.0
QA_VENV := .venv-qa
QA_STAMP := $(QA_VENV)/.installed-$(QA_VERSION)

.PHONY: demo test lint unit integration bench pyairbyte qa erd clean

$(STAMP): setup.py
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[tests]'
	@touch $(STAMP)

$(PYAIRBYTE_STAMP):
	rm -rf $(PYAIRBYTE_VENV)
	$(PYTHON) -m venv $(PYAIRBYTE_VENV)
	$(PYAIRBYTE_VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(PYAIRBYTE_VENV)/bin/pip install --quiet --disable-pip-version-check \
		airbyte==$(PYAIRBYTE_VERSION)
	@touch $(PYAIRBYTE_STAMP)

$(QA_STAMP):
	rm -rf $(QA_VENV)
	$(PYTHON) -m venv $(QA_VENV)
	$(QA_VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(QA_VENV)/bin/pip install --quiet --disable-pip-version-check \
		airbyte-internal-ops==$(QA_VERSION)
	@touch $(QA_STAMP)

## make demo: install, start the bundled SP-API emulator, run a real read against it, summarise
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## make test: lint, then every unit and integration test (the first run also installs PyAirbyte),
## one test file at a time per core (pytest-xdist; a file's tests share their fixtures)
PARALLEL := -n auto --dist loadfile

test: $(STAMP) $(PYAIRBYTE_STAMP) lint
	$(BIN)/python -m pytest $(PARALLEL)

## make bench: rate-limit bound ratio, records per second, peak RSS (not part of make test)
bench: $(STAMP)
	$(BIN)/python scripts/bench.py

## make pyairbyte: PyAirbyte $(PYAIRBYTE_VERSION) in .venv-pyairbyte, for the docs' tutorial
pyairbyte: $(PYAIRBYTE_STAMP)

## make qa: Airbyte's own connector QA checks on this checkout, offline, at support level 300
## (the documentation content checks too); not part of make test
qa: $(QA_STAMP)
	$(QA_VENV)/bin/python scripts/airbyte_qa.py --sl 300

## make erd: regenerate erd/source.dbml's tables from the discovered catalog (its joins are kept)
erd: $(STAMP)
	$(BIN)/python scripts/erd.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(STAMP)
	$(BIN)/python -m pytest unit_tests

integration: $(STAMP) $(PYAIRBYTE_STAMP)
	$(BIN)/python -m pytest $(PARALLEL) integration_tests

clean:
	rm -rf $(VENV) $(PYAIRBYTE_VENV) $(QA_VENV) .demo .pytest_cache .ruff_cache *.egg-info
