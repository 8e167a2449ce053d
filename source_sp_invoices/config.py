"""Typed, validated configuration: every bad input becomes one config error that names its field."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.is_cloud_environment import is_cloud_environment
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from jsonschema import Draft7Validator

from source_sp_invoices import settings

DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
CREDENTIAL_FIELDS = ("lwa_app_id", "lwa_client_secret", "refresh_token")


class ConfigError(AirbyteTracedException):
    """A config value the user must fix; Airbyte shows the message as it is."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message=message, internal_message=message, failure_type=FailureType.config_error
        )


@dataclass(frozen=True)
class InvoiceFilters:
    """The optional filters of getInvoices and createInvoicesExport, as the user set them."""

    statuses: tuple[str, ...] = ()
    invoice_type: str | None = None
    transaction_type: str | None = None
    series: str | None = None
    external_invoice_id: str | None = None
    transaction_identifier_name: str | None = None
    transaction_identifier_id: str | None = None

    def query_params(self) -> dict[str, str]:
        """The filters as getInvoices query parameters (arrays comma-separated, per the model)."""
        params: dict[str, str] = {}
        if self.statuses:
            params["statuses"] = ",".join(self.statuses)
        for key, value in (
            ("invoiceType", self.invoice_type),
            ("transactionType", self.transaction_type),
            ("series", self.series),
            ("externalInvoiceId", self.external_invoice_id),
            ("transactionIdentifierName", self.transaction_identifier_name),
            ("transactionIdentifierId", self.transaction_identifier_id),
        ):
            if value:
                params[key] = value
        return params

    def export_body(self) -> dict[str, Any]:
        """The filters as fields of createInvoicesExport's JSON body."""
        body: dict[str, Any] = {}
        if self.statuses:
            body["statuses"] = list(self.statuses)
        for key, value in (
            ("invoiceType", self.invoice_type),
            ("transactionType", self.transaction_type),
            ("series", self.series),
            ("externalInvoiceId", self.external_invoice_id),
        ):
            if value:
                body[key] = value
        if self.transaction_identifier_name and self.transaction_identifier_id:
            body["transactionIdentifier"] = {
                "name": self.transaction_identifier_name,
                "id": self.transaction_identifier_id,
            }
        return body


@dataclass(frozen=True)
class Config:
    """What the streams need, resolved: endpoints chosen, dates parsed, defaults applied."""

    marketplace_id: str
    lwa_app_id: str
    lwa_client_secret: str
    refresh_token: str
    api_endpoint: str
    lwa_endpoint: str
    start: datetime
    end: datetime | None  # None: up to the moment each sync starts
    invoices_window: timedelta = timedelta(days=settings.DEFAULT_INVOICES_WINDOW_DAYS)
    lookback: timedelta = timedelta(days=settings.DEFAULT_LOOKBACK_DAYS)
    documents_window_days: int | None = None  # no ceiling: windows grow while one document
    parse_nfe: bool = True
    fail_on_invalid_xml: bool = False  # invalid_xml: fail_sync, rather than emit_with_error
    stop_sync_on_rate_limit: bool = False  # 429s past the retries: config_error, not transient
    filters: InvoiceFilters = field(default_factory=InvoiceFilters)

    def end_or_now(self, now: datetime | None = None) -> datetime:
        """The end of the range a sync reads: the configured end, never later than now."""
        now = now or datetime.now(UTC)
        return min(self.end, now) if self.end else now


def load_spec() -> dict[str, Any]:
    """The connector's spec, as shipped in the package."""
    text = resources.files("source_sp_invoices").joinpath("spec.json").read_text("utf-8")
    return json.loads(text)


def parse_config(raw: Mapping[str, Any], now: datetime | None = None) -> Config:
    """Validate the raw config and resolve it; raise ConfigError naming every bad field."""
    now = now or datetime.now(UTC)
    problems = _schema_problems(raw)
    for name in CREDENTIAL_FIELDS:
        value = raw.get(name)
        if isinstance(value, str) and not value.strip():
            problems.append(f"`{name}` is empty: paste the value from your SP-API app.")
    if problems:
        raise ConfigError("Invalid configuration: " + " ".join(problems))

    region = raw.get("region", "NA")
    marketplace_id = raw.get("marketplace_id") or settings.BRAZIL_MARKETPLACE_ID
    marketplace = settings.MARKETPLACES.get(marketplace_id)
    if marketplace and marketplace.region != region:
        problems.append(
            f"`marketplace_id` {marketplace_id} ({marketplace.country}) belongs to region "
            f"{marketplace.region}, not to `region` {region}: set `region` to {marketplace.region}."
        )

    start = _parse_date(raw, "replication_start_date", problems)
    end = (
        _parse_date(raw, "replication_end_date", problems)
        if raw.get("replication_end_date")
        else None
    )
    if start and start > now:
        problems.append(
            f"`replication_start_date` {raw['replication_start_date']} lies in the future: "
            "choose a date in the past."
        )
    if start and end and end <= start:
        problems.append(
            f"`replication_end_date` {raw['replication_end_date']} is not after "
            f"`replication_start_date` {raw['replication_start_date']}."
        )

    environment = raw.get("aws_environment", "PRODUCTION")
    api_endpoint = _endpoint(raw, "api_endpoint", settings.ENDPOINTS[region][environment], problems)
    lwa_endpoint = _endpoint(raw, "lwa_endpoint", settings.LWA_TOKEN_URL, problems)

    name, ident = raw.get("transaction_identifier_name"), raw.get("transaction_identifier_id")
    if bool(name) != bool(ident):
        problems.append(
            "`transaction_identifier_name` and `transaction_identifier_id` go together: "
            "set both or neither."
        )
    if problems:
        raise ConfigError("Invalid configuration: " + " ".join(problems))
    assert start is not None  # a missing start date is a schema problem, reported above

    return Config(
        marketplace_id=marketplace_id,
        lwa_app_id=raw["lwa_app_id"].strip(),
        lwa_client_secret=raw["lwa_client_secret"].strip(),
        refresh_token=raw["refresh_token"].strip(),
        api_endpoint=api_endpoint,
        lwa_endpoint=lwa_endpoint,
        start=start,
        end=end,
        invoices_window=timedelta(
            days=raw.get("invoices_window_days", settings.DEFAULT_INVOICES_WINDOW_DAYS)
        ),
        lookback=timedelta(days=raw.get("lookback_days", settings.DEFAULT_LOOKBACK_DAYS)),
        documents_window_days=raw.get("documents_window_days"),
        parse_nfe=raw.get("parse_nfe", True),
        fail_on_invalid_xml=raw.get("invalid_xml") == "fail_sync",
        stop_sync_on_rate_limit=raw.get("stop_sync_on_rate_limit", False),
        filters=InvoiceFilters(
            statuses=tuple(raw.get("statuses") or ()),
            invoice_type=raw.get("invoice_type") or None,
            transaction_type=raw.get("transaction_type") or None,
            series=raw.get("series") or None,
            external_invoice_id=raw.get("external_invoice_id") or None,
            transaction_identifier_name=name or None,
            transaction_identifier_id=ident or None,
        ),
    )


def _schema_problems(raw: Mapping[str, Any]) -> list[str]:
    """Check the config against the spec; describe each problem by field, never by value."""
    if not isinstance(raw, Mapping):
        return ["the config must be a JSON object."]
    schema = load_spec()["connectionSpecification"]
    properties = schema["properties"]
    problems = []
    errors = sorted(Draft7Validator(schema).iter_errors(raw), key=lambda e: list(e.path))
    for error in errors:
        if error.validator == "required":
            missing = error.message.split("'")[1]
            problems.append(f"`{missing}` is missing: {properties[missing]['title']} is required.")
            continue
        name = ".".join(str(p) for p in error.path) or "config"
        top = str(error.path[0]) if error.path else ""
        prop = properties.get(top, {})
        if error.validator == "pattern" and top.startswith("replication_"):
            problems.append(f"`{name}` must be a UTC date-time like 2024-01-01T00:00:00Z.")
        elif error.validator == "enum":
            choices = ", ".join(str(c) for c in error.validator_value)
            problems.append(f"`{name}` must be one of {choices}.")
        elif error.validator == "type":
            problems.append(f"`{name}` must be of type {error.validator_value}.")
        elif error.validator in ("minimum", "maximum"):
            problems.append(
                f"`{name}` must be between {prop.get('minimum')} and {prop.get('maximum')}."
            )
        elif error.validator == "pattern":
            example = prop.get("examples", [""])[0]
            hint = f" like {example}" if isinstance(example, str) and example else ""
            problems.append(f"`{name}` does not have the expected format{hint}.")
        else:
            problems.append(f"`{name}` is not valid ({error.validator}).")
    return problems


def _parse_date(raw: Mapping[str, Any], name: str, problems: list[str]) -> datetime | None:
    try:
        return datetime.strptime(raw[name], DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        problems.append(f"`{name}` {raw[name]} is not a real date: use YYYY-MM-DDTHH:MM:SSZ.")
        return None


def _endpoint(raw: Mapping[str, Any], name: str, default: str, problems: list[str]) -> str:
    """The override if valid, else the default. Airbyte OSS: https, or http on a loopback host
    (the emulator). Airbyte Cloud (DEPLOYMENT_MODE=cloud): https to a public host only, as the
    CDK enforces on every request there, but said here, naming the key, in every command."""
    value = (raw.get(name) or "").strip()
    if not value:
        return default
    parts = urlsplit(value)
    cloud = is_cloud_environment()
    if "@" in parts.netloc:  # user:password@host: said without quoting the value
        problems.append(
            f"`{name}` must not carry a user name or password: the connector authenticates "
            "with the LWA credentials only."
        )
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"`{name}` {value} is not an http(s) URL.")
    elif cloud and parts.scheme == "http":
        problems.append(
            f"`{name}` {value} uses plain http, which Airbyte Cloud does not allow: use https, "
            "or leave it empty for Amazon's endpoint."
        )
    elif cloud and (private := _private_address(parts.hostname)):
        problems.append(
            f"`{name}` {value} points to {private}, which Airbyte Cloud does not let connectors "
            "call: use a public https endpoint, or leave it empty for Amazon's."
        )
    elif parts.scheme == "http" and not _is_loopback(parts.hostname):
        problems.append(
            f"`{name}` {value} uses plain http: use https, so that credentials are never sent in "
            "clear text (http is accepted only for loopback hosts such as 127.0.0.1)."
        )
    elif parts.query or parts.fragment:
        problems.append(f"`{name}` {value} must not carry a query string or fragment.")
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _private_address(host: str) -> str | None:
    """Why a host is not a public one ("a loopback address (127.0.0.1)"...), or None.

    An address literal is judged as written; a name by the addresses it resolves to, as the
    CDK's filter will at request time (a name that does not resolve is left to fail there).
    """
    if host == "localhost" or host.endswith(".localhost"):
        return "a loopback address (localhost)"
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None)
        except (OSError, UnicodeError):
            return None
        addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    for address in sorted(addresses, key=str):
        if address.is_loopback:
            return f"a loopback address ({address})"
        if address.is_private or address.is_link_local or address.is_reserved:
            return f"a private network address ({address})"
    return None
