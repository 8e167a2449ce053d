"""Reading saved state strictly, and emitting state in the middle of a slice."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from airbyte_cdk.models import (
    AirbyteMessage,
    AirbyteStateBlob,
    AirbyteStateMessage,
    AirbyteStateType,
    AirbyteStreamState,
    StreamDescriptor,
)
from airbyte_cdk.models import Type as MessageType

from source_sp_invoices.config import ConfigError
from source_sp_invoices.dates import parse_datetime


def _unreadable(stream: str, key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(
        f"The saved state of stream `{stream}` has {key}={value!r}, which is not {expected}. "
        "Fix the state or reset the stream; it is not replaced by the start date silently."
    )


def read_state_datetime(stream: str, state: Mapping[str, Any], key: str) -> datetime:
    """A date-time of the saved state, or a config error that says which value is wrong."""
    value = state[key]
    try:
        return parse_datetime(value)
    except (TypeError, ValueError):
        raise _unreadable(stream, key, value, "a date-time like 2024-01-01T00:00:00Z") from None


def read_state_date(stream: str, state: Mapping[str, Any], key: str) -> date:
    """A date of the saved state, or a config error that says which value is wrong."""
    value = state[key]
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise _unreadable(stream, key, value, "a date like 2024-01-01") from None


def state_message(stream: str, state: Mapping[str, Any]) -> AirbyteMessage:
    """A STATE message for one stream, for checkpoints the CDK would only make per slice."""
    return AirbyteMessage(
        type=MessageType.STATE,
        state=AirbyteStateMessage(
            type=AirbyteStateType.STREAM,
            stream=AirbyteStreamState(
                stream_descriptor=StreamDescriptor(name=stream),
                stream_state=AirbyteStateBlob(dict(state)),
            ),
        ),
    )
