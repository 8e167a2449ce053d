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
from jsonschema import Draft7Validator, ValidationError

from source_sp_invoices import settings

DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
CREDENTIAL_FIELDS = ("lwa_app_id", "lwa_client_secret", "refresh_token")
# The spec's patterns in words, by key (for `statuses`, of each item): what a message asks for.
# Every pattern of the spec has one (unit_tests/test_config.py).
FORMS = {
    "marketplace_id": "8 to 20 upper-case letters and digits",
    "replication_start_date": "a UTC date-time",
    "replication_end_date": "a UTC date-time",
    "statuses": "upper-case letters and underscores",
    "series": "1 to 3 digits",
    "app_id": "amzn1.sp.solution. followed by letters, digits and hyphens",
}
# delivery_method's choice as source-s3 and the file-based CDK spell it: Copy Raw Files.
FILE_TRANSFER = "use_file_transfer"


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
    # lookback_exports: changed_days (export and emit only what changed), or every_day (0.5.0)
    lookback_changed_only: bool = True
    documents_window_days: int | None = None  # no ceiling but the plan (planner.py)
    parse_nfe: bool = True
    fail_on_invalid_xml: bool = False  # invalid_xml: fail_sync, rather than emit_with_error
    stop_sync_on_rate_limit: bool = False  # 429s past the retries: config_error, not transient
    copy_raw_files: bool = False  # delivery_method is Copy Raw Files: invoice files asked for
    keep_xml_column: bool = False  # with files delivered, invoice_documents keeps `xml` too
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
        lookback_changed_only=raw.get("lookback_exports", "changed_days") == "changed_days",
        documents_window_days=raw.get("documents_window_days"),
        parse_nfe=raw.get("parse_nfe", True),
        fail_on_invalid_xml=raw.get("invalid_xml") == "fail_sync",
        stop_sync_on_rate_limit=raw.get("stop_sync_on_rate_limit", False),
        copy_raw_files=(raw.get("delivery_method") or {}).get("delivery_type") == FILE_TRANSFER,
        keep_xml_column=raw.get("keep_xml_column", False),
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
    """Check the config against the spec: one problem for each bad value, naming its key and the
    form it takes; a value is quoted only when it is an item of a list, never a secret."""
    if not isinstance(raw, Mapping):
        return ["the config must be a JSON object."]
    schema = load_spec()["connectionSpecification"]
    errors = sorted(
        Draft7Validator(schema).iter_errors(raw),
        # A value's own words first: "one of NA, EU, FE" says more than "of type string".
        key=lambda e: (list(e.path), e.validator != "enum"),
    )
    problems, said = [], set()
    for error in errors:
        where = tuple(error.path)
        if where and where in said:
            continue  # a number for `region` is neither a string nor a region: said once
        said.add(where)
        problems.append(_schema_problem(error, schema["properties"]))
    return problems


def _schema_problem(error: ValidationError, properties: Mapping[str, Any]) -> str:
    """One spec rule a value breaks, as a sentence that names the key and what it takes."""
    if error.validator == "required":
        missing = error.message.split("'")[1]
        return f"`{missing}` is missing: {properties[missing]['title']} is required."
    key, *inside = error.path or ["config"]
    prop = properties.get(str(key), {})
    item = len(inside) == 1 and isinstance(inside[0], int)
    rule = prop.get("items", {}) if item else prop
    name = f"`{key}`"
    if item and not prop.get("airbyte_secret"):
        name += f" item {inside[0] + 1} ({_shown(error.instance)})"
    elif inside:
        name = f"`{'.'.join(str(p) for p in error.path)}`"
    form = FORMS.get(str(key)) or f"text matching {rule.get('pattern')}"
    like = _like(prop, item)
    if error.validator == "enum":
        return f"{name} must be one of {', '.join(str(c) for c in error.validator_value)}."
    if error.validator == "pattern":
        return f"{name} must be {form}{like}."
    if error.validator in ("minimum", "maximum"):
        return f"{name} must be between {rule.get('minimum')} and {rule.get('maximum')}."
    if error.validator == "oneOf" or (error.validator == "type" and "oneOf" in prop):
        return f"{name} must be {_choices(prop)}."
    if error.validator == "uniqueItems":
        return f"{name} lists {_repeated(error.instance)}: name each value once."
    if error.validator == "type":
        if error.validator_value == "integer" and "minimum" in rule and "maximum" in rule:
            expected = f" between {rule['minimum']} and {rule['maximum']}"
        elif error.validator_value == "boolean":
            expected = ": true or false"
        elif "pattern" in rule:
            expected = f": {form}{like}"
        else:
            expected = like
        return f"{name} must be of type {error.validator_value}{expected}."
    return f"{name} is not valid ({error.validator})."


def _choices(prop: Mapping[str, Any]) -> str:
    """The options of a oneOf key, by the value of the property that tells them apart (its
    `const` in each), as "an object whose `delivery_type` is a (A) or b (B)"."""
    options = prop["oneOf"]
    key = next(k for k, v in options[0]["properties"].items() if "const" in v)
    values = [f"{o['properties'][key]['const']} ({o['title']})" for o in options]
    return f"an object whose `{key}` is {', '.join(values[:-1])} or {values[-1]}"


def _like(prop: Mapping[str, Any], item: bool) -> str:
    """ ", like <the spec's first example>" (of one item, for a list), or "" without one. A
    secret's example is never shown: the CDK masks a secret's value wherever it appears."""
    examples = [] if prop.get("airbyte_secret") else prop.get("examples", [])
    example = examples[0] if examples else None
    if item:
        example = example[0] if isinstance(example, list) and example else None
    if example is None or example == "":
        return ""
    return f", like {example if isinstance(example, str) else json.dumps(example)}"


def _shown(value: Any) -> str:
    """A value as JSON, cut short: an item of a list, named where it is wrong."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:39] + "…"


def _repeated(values: list[Any]) -> str:
    """ "AUTHORIZED twice and CANCELED 3 times": the values a list holds more than once, equal
    as JSON Schema's uniqueItems has them (1 and 1.0 alike, true and 1 not)."""
    groups: list[list[Any]] = []
    for value in values:
        boolean = isinstance(value, bool)
        same = (g for g in groups if g[0] == value and isinstance(g[0], bool) == boolean)
        group = next(same, None)
        if group is None:
            groups.append([value])
        else:
            group.append(value)
    return " and ".join(
        f"{_shown(g[0]) if not isinstance(g[0], str) else g[0]} "
        f"{'twice' if len(g) == 2 else f'{len(g)} times'}"
        for g in groups
        if len(g) > 1
    )


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
