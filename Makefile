# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS := --quiet --disable-pip-version-check

# The locks: every package of an install at one version, with the hashes of its release's files,
# for Python 3.11 on Linux x86-64 (the base image's). `make lock` writes them; every install here
# and in the Dockerfile takes them with --require-hashes, so the image ships what make test proved.
LOCK := requirements.lock
TESTS_LOCK := requirements-tests.lock
PYAIRBYTE_LOCK := requirements-pyairbyte.lock

# PyAirbyte (the `airbyte` package) has its own venv: it brings some hundred packages (DuckDB,
# pandas, cloud SDKs) that the connector's venv must not lean on. It runs the connector
# from .venv as a local executable, as the docs' tutorial shows (docs/sp-invoices.md). It has
# its own lock too: make test runs it, and its packages left to float would let a release of
# any of them break make test.
PYAIRBYTE_VERSION := 0.71.3
PYAIRBYTE_VENV := .venv-pyairbyte
PYAIRBYTE_STAMP := $(PYAIRBYTE_VENV)/.installed-$(PYAIRBYTE_VERSION)

# Airbyte's connector QA (airbyte-internal-ops, behind `airbyte-ops local connector qa`) has a
# venv of its own too: it is heavy (some 220 packages, 860 MB) and make test does not need it.
QA_VERSION := 0.132.0
QA_VENV := .venv-qa
QA_STAMP := $(QA_VENV)/.installed-$(QA_VERSION)

.PHONY: demo test lint unit integration bench pyairbyte qa erd lock clean

# A new venv each time, so that a package the lock dropped does not linger. The package itself
# comes last, without dependencies, built by the locked setuptools (build isolation would fetch
# an unpinned one).
$(STAMP): setup.py $(TESTS_LOCK)
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/pip install $(PIP_FLAGS) --require-hashes -r $(TESTS_LOCK)
	$(BIN)/pip install $(PIP_FLAGS) --no-deps --no-build-isolation -e .
	@touch $(STAMP)

$(PYAIRBYTE_STAMP): $(PYAIRBYTE_LOCK)
	rm -rf $(PYAIRBYTE_VENV)
	$(PYTHON) -m venv $(PYAIRBYTE_VENV)
	$(PYAIRBYTE_VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(PYAIRBYTE_VENV)/bin/pip install $(PIP_FLAGS) --require-hashes -r $(PYAIRBYTE_LOCK)
	@touch $(PYAIRBYTE_STAMP)

$(QA_STAMP):
	rm -rf $(QA_VENV)
	$(PYTHON) -m venv $(QA_VENV)
	$(QA_VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(QA_VENV)/bin/pip install --quiet --disable-pip-version-check \
		airbyte-internal-ops==$(QA_VERSION)
	@touch $(QA_STAMP)

## make lock: write the locks again from setup.py and PYAIRBYTE_VERSION, keeping every locked
## version that still fits; LOCK_FLAGS=--upgrade takes the newest that fit instead, and
## LOCK_FLAGS='--upgrade-package NAME' does so for one package. The tests lock is held to the
## install lock's versions, so the tests run what the image ships.
# Every file of each locked release is hashed, so pip may take whichever wheel fits the machine;
# manylinux_2_28 (glibc 2.28 or newer) is the platform the resolution assumes.
LOCK_FLAGS :=
UV_COMPILE = $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command 'make lock' $(LOCK_FLAGS)

LOCKS := $(LOCK) $(TESTS_LOCK) $(PYAIRBYTE_LOCK)

# A lock written again unchanged gets its old time back, so that make reinstalls no venv for it.
lock: $(STAMP)
	@mkdir -p $(VENV)/locks-before && cp -p $(LOCKS) $(VENV)/locks-before/
	$(UV_COMPILE) setup.py -o $(LOCK)
	$(UV_COMPILE) setup.py --extra tests --constraint $(LOCK) -o $(TESTS_LOCK)
	echo 'airbyte==$(PYAIRBYTE_VERSION)' | $(UV_COMPILE) - -o $(PYAIRBYTE_LOCK)
	@for lock in $(LOCKS); do \
		if cmp -s $$lock $(VENV)/locks-before/$$lock; then touch -r $(VENV)/locks-before/$$lock $$lock; fi; \
	done

## make demo: install, start the bundled SP-API emulator, run a real read against it, summarise;
## make demo FILES=1 also reads with the invoice files staged as Airbyte's file transfer does
demo: $(STAMP)
	$(BIN)/python scripts/demo.py $(if $(FILES),--files)

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
