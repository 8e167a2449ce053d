"""The PyAirbyte tutorial of the docs, run as it is against the emulator, offline.

PyAirbyte lives in its own venv (`make pyairbyte`; `make test` creates it): the test runs the
Python block of docs/sp-invoices.md's Tutorials there, in a directory laid out like the
repository (the config file, the connector under .venv/bin), and compares what landed in DuckDB
with the emulator's data set.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import date
from pathlib import Path

import pytest

from integration_tests.conftest import CLI
from sp_api_emulator import Dataset, EmulatorServer

ROOT = Path(__file__).resolve().parent.parent
PYAIRBYTE_PYTHON = ROOT / ".venv-pyairbyte" / "bin" / "python"
START, END = "2024-01-01T00:00:00Z", "2024-01-04T00:00:00Z"

# Runs the docs' block, then reports what it left behind: the read result and the cache.
RUNNER = """
import json, sys
from sqlalchemy import text

namespace = {"__name__": "__main__"}
exec(compile(open(sys.argv[1]).read(), "sp-invoices.md", "exec"), namespace)
result = namespace["result"]
with result.cache.get_sql_engine().connect() as connection:
    def count(sql):
        return connection.execute(text(sql)).scalar()
    report = {
        "invoices": len(result["invoices"].to_pandas()),
        "invoice_items": len(result["invoice_items"].to_pandas()),
        "sql_invoices": count("SELECT COUNT(DISTINCT id) FROM invoices"),
        "sql_items": count("SELECT COUNT(*) FROM invoice_items"),
        "sql_item_keys": count(
            "SELECT COUNT(*) FROM (SELECT DISTINCT invoiceid, itemnumber FROM invoice_items)"
        ),
        "sql_invoices_with_items": count("SELECT COUNT(DISTINCT invoiceid) FROM invoice_items"),
    }
print("REPORT " + json.dumps(report))
"""


def docs_example() -> str:
    """The Python block of the docs' Tutorials (docs/sp-invoices.md)."""
    docs = (ROOT / "docs" / "sp-invoices.md").read_text("utf-8")
    section = docs.split("### Tutorials\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the docs' Tutorials have no Python block"
    return match.group(1)


@pytest.fixture
def pyairbyte_python() -> Path:
    if not PYAIRBYTE_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{PYAIRBYTE_PYTHON} is missing: make test creates it before the tests")
        pytest.skip("PyAirbyte's venv is missing: `make pyairbyte` (or `make test`) creates it")
    return PYAIRBYTE_PYTHON


def test_the_docs_example_lands_every_invoice_and_item_in_duckdb(pyairbyte_python, tmp_path):
    dataset = Dataset.generate(seed=5, start=date(2024, 1, 1), days=3, invoices_per_day=(2, 12))
    invoices = dataset.invoices("2024-01-01T00:00:00", "2024-01-03T23:59:59.999999")
    items = sum(len(dataset.record(invoice["id"]).nfe.items) for invoice in invoices)
    assert invoices and items > len(invoices)  # items of several lines: the join is tested

    # The repository's layout, as the example expects it, in a directory of its own.
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "source-sp-invoices").symlink_to(CLI)
    (tmp_path / "integration_tests").mkdir()
    example = tmp_path / "read_invoices.py"
    example.write_text(docs_example())
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)

    with EmulatorServer(dataset, time_scale=60.0) as emulator:
        config = emulator.connector_config(START, replication_end_date=END)
        (tmp_path / "integration_tests" / "sample_config.json").write_text(json.dumps(config))
        done = subprocess.run(
            [str(pyairbyte_python), str(runner), str(example)],
            cwd=tmp_path,
            env={
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(tmp_path),
                "AIRBYTE_OFFLINE_MODE": "1",
                "DO_NOT_TRACK": "1",
                "AIRBYTE_LOGGING_ROOT": str(tmp_path / "logs"),
                "PYTHONWARNINGS": "ignore",
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
        documents_read = emulator.stats.count("getInvoicesDocument", 200)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    report = json.loads(output.split("REPORT ", 1)[1].splitlines()[0])
    assert report == {
        "invoices": len(invoices),
        "invoice_items": items,
        "sql_invoices": len(invoices),
        "sql_items": items,
        "sql_item_keys": items,
        "sql_invoices_with_items": len(invoices),
    }
    assert documents_read >= 1  # the items came from the emulator's export documents
    assert (tmp_path / ".cache" / "default_cache" / "default_cache.duckdb").exists()
    assert "CFOP" in done.stdout  # the example's SQL query printed its rows
