"""Shared by unit and integration tests: every record a test produces is checked against the
JSON schema of its stream, so a schema that does not match real records fails the suite."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import jsonschema
import pytest

from source_sp_invoices import json_schemas

# The CDK's standard tests: parametrizes integration_tests/test_acceptance.py with the scenarios
# of acceptance-test-config.yml (only tests of a class that take `scenario`) and adds its options.
pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    """RFC 3339 date-time with an explicit offset (the optional rfc3339 package is not needed)."""
    if not isinstance(value, str):
        return True
    from datetime import datetime

    parsed = datetime.fromisoformat(value)
    return "T" in value and parsed.tzinfo is not None


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    from datetime import date

    return not isinstance(value, str) or date.fromisoformat(value).isoformat() == value


@cache
def stream_schema(stream: str) -> dict[str, Any]:
    """The schema the connector declares for the stream (as discover shows it)."""
    schema = json_schemas.stream_schema(stream)
    jsonschema.Draft7Validator.check_schema(schema)
    return schema


def validate_records(stream: str, records: Iterable[Mapping[str, Any]]) -> int:
    """Validate records against their stream's schema (formats included); return how many."""
    validator = jsonschema.Draft7Validator(stream_schema(stream), format_checker=FORMATS)
    count = 0
    for record in records:
        errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
        assert not errors, f"{stream} record does not match its schema: {errors[0].message}"
        count += 1
    return count


@pytest.fixture
def check_schema():
    return validate_records
