"""Readings of the Invoices API model: where Amazon's own model says two things, pick one.

The model (InvoicesApiModel_2024-06-19.json) contradicts itself in a few places; the emulator
serves each reading behind a switch, so a client can be tested under every one. The first value
of each field is the default and the emulator's behaviour before readings existed.

    server = EmulatorServer(dataset, readings=Readings(pagination="same_arguments"))
    server.readings = replace(server.readings, document_body="xml")  # read per request

See sp_api_emulator/README.md, "Readings of the model", for the model's words on each side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

# field -> its values, the default first
CHOICES: dict[str, tuple[Any, ...]] = {
    "pagination": ("token_alone", "same_arguments"),
    "export_dates": ("date", "date_time"),
    "export_statuses": ("model", "reports"),
    "document_body": ("zip", "xml"),
    "rate_limit_header": (True, False),
    "invoice_filter_date": ("date", "creation"),
    "bare_date_zone": ("UTC", "America/Sao_Paulo"),
}
_TRUE, _FALSE = frozenset({"true", "yes", "on", "1"}), frozenset({"false", "no", "off", "0"})


@dataclass(frozen=True)
class Readings:
    """Which reading of the model the emulator serves, field by field (defaults: today's).

    - pagination: "token_alone" (a nextToken travels alone, as the sandbox 400 says) or
      "same_arguments" (the nextToken description: "include the same arguments").
    - export_dates: createInvoicesExport's dateStart/dateEnd are "date" (format: date) or
      "date_time" (the model's example body, YYYY-MM-DDTHH:MM:SS).
    - export_statuses: "model" (REQUESTED, PROCESSING, DONE, ERROR) or "reports" (IN_QUEUE,
      IN_PROGRESS, DONE, FATAL, CANCELLED: the Reports API's names).
    - document_body: "zip" (documents are ZIPs of NF-e files) or "xml" (one NF-e per document,
      its id the invoice id, served as .xml).
    - rate_limit_header: answers carry x-amzn-RateLimit-Limit (True) or never (False).
    - invoice_filter_date: date filters look at the record's "date" or at its "creation" time.
    - bare_date_zone: the zone of createInvoicesExport's bare dates, "UTC" or
      "America/Sao_Paulo" (fixed UTC-03:00).
    """

    pagination: str = "token_alone"
    export_dates: str = "date"
    export_statuses: str = "model"
    document_body: str = "zip"
    rate_limit_header: bool = True
    invoice_filter_date: str = "date"
    bare_date_zone: str = "UTC"

    def __post_init__(self) -> None:
        """Refuse a value the field does not know, naming the ones it does."""
        for item in fields(self):
            value = getattr(self, item.name)
            allowed = CHOICES[item.name]
            # bool is an int: compare types too, so 1 is not taken for True
            if not any(type(value) is type(a) and value == a for a in allowed):
                options = ", ".join(_show(a) for a in allowed)
                raise ValueError(
                    f"reading {item.name} must be one of {options}; got {_show(value)}"
                )

    def to_json(self) -> dict[str, Any]:
        """Return the readings as JSON (server.info() shows them)."""
        return asdict(self)

    def with_changes(self, changes: dict[str, Any]) -> Readings:
        """Return a copy with some fields changed; values may be given as text (CLI, JSON)."""
        unknown = sorted(set(changes) - set(CHOICES))
        if unknown:
            raise ValueError(
                f"unknown reading(s) {', '.join(unknown)} (known: {', '.join(CHOICES)})"
            )
        return replace(self, **{name: _coerce(name, value) for name, value in changes.items()})

    @classmethod
    def parse(cls, assignments: list[str] | tuple[str, ...]) -> Readings:
        """Build readings from NAME=VALUE texts (the CLI's --reading), later ones winning."""
        changes: dict[str, Any] = {}
        for text in assignments:
            name, equals, value = text.partition("=")
            name = name.strip()
            if not equals or not name:
                raise ValueError(f"expected NAME=VALUE, got {text!r}")
            changes[name] = value.strip()
        return cls().with_changes(changes)


def _coerce(name: str, value: Any) -> Any:
    """Turn "false"/"true" into booleans for the boolean fields; leave the rest as given."""
    if isinstance(CHOICES.get(name, ("",))[0], bool) and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return value


def _show(value: Any) -> str:
    """Render a value as the command line spells it."""
    return str(value).lower() if isinstance(value, bool) else repr(value)


def help_text() -> str:
    """Return one line per reading: its name and values, the default first."""
    return "; ".join(
        f"{name}={'|'.join(_show(v).strip(chr(39)) for v in values)}"
        for name, values in CHOICES.items()
    )
