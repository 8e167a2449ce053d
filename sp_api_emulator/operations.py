"""The Invoices API operations the emulator serves, as plain functions of the request.

Each function validates its parameters (query string, or JSON body for createInvoicesExport) like
the real API (a 400 InvalidInput names the parameter or field and says why) and returns the JSON
body; HTTP, auth and rate limits live in `server`, the export life cycle in `exports`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from . import catalog
from .dataset import (
    BY_CREATION,
    BY_DATE,
    SORT_ORDERS,
    Dataset,
    InvoiceFilter,
    allowed_values,
    creation_time,
    day_bounds,
)
from .exports import ZIP_BODY, ExportRegistry, listed_statuses
from .faults import CANCEL, ODD, ExportFailure
from .models import Invoice
from .parsing import parse_datetime

Query = Mapping[str, list[str]]
MIN_PAGE_SIZE, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 1, 200, 100
MAX_EXPORTS_PAGE_SIZE = 100
DEFAULT_WINDOW = timedelta(hours=24)
DEFAULT_EXPORTS_WINDOW = timedelta(days=30)
SORT_BY = ("START_DATE_TIME",)
FILE_FORMATS = ("XML",)
TOKEN_ALONE = frozenset({"marketplaceId", "nextToken", "pageSize"})
TOKEN_WITH_PARAMETERS = (
    "Specifying nextToken with any other parameters will cause the request to fail."
)
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z?")
TOKEN_ALONE_READING, SAME_ARGUMENTS = "token_alone", "same_arguments"  # pagination readings
PAGING_PARAMETERS = frozenset({"nextToken", "pageSize"})  # may differ between pages
LIST_PARAMETERS = frozenset({"statuses"})  # compared as sets of values
SAME_ARGUMENTS_MESSAGE = (
    "Invalid Request: a nextToken must be sent with the same arguments as the call that "
    "produced it (pageSize may differ)."
)


class ApiError(Exception):
    """An SP-API error answer: HTTP status and one entry of the `errors` list."""

    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        """Describe the error."""
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        """Return the ErrorList JSON."""
        return error_body(self.code, self.message, self.details)


def error_body(code: str, message: str, details: str = "") -> dict[str, Any]:
    """Build an ErrorList JSON object with one error."""
    return {"errors": [{"code": code, "message": message, "details": details}]}


def invalid(message: str) -> ApiError:
    """Return a 400 InvalidInput error."""
    return ApiError(400, "InvalidInput", message)


class Params:
    """Validated access to a query string; unknown parameters are refused."""

    def __init__(self, query: Query, allowed: Iterable[str]) -> None:
        """Check that only `allowed` parameter names are present."""
        self._query = query
        unknown = sorted(set(query) - set(allowed))
        if unknown:
            raise invalid(f"Unknown query parameter(s): {', '.join(unknown)}.")

    def single(self, name: str, *, required: bool = False) -> str | None:
        """Return a parameter given at most once; an empty value is refused."""
        values = self._query.get(name)
        if not values:
            if required:
                raise invalid(f"Missing required parameter {name}.")
            return None
        if len(values) > 1:
            raise invalid(f"Parameter {name} must be given only once.")
        if values[0] == "":
            raise invalid(f"Parameter {name} must not be empty.")
        return values[0]

    def many(self, name: str) -> list[str] | None:
        """Return a list parameter, given repeated (a=1&a=2) or comma-separated (a=1,2)."""
        values = self._query.get(name)
        if values is None:
            return None
        items = [item.strip() for value in values for item in value.split(",")]
        if not items or any(item == "" for item in items):
            raise invalid(f"Parameter {name} must be a non-empty list of values without blanks.")
        return items

    def choice(self, name: str, allowed: Iterable[str], attribute: str = "") -> str | None:
        """Return a single parameter that must be one of `allowed`."""
        return one_of(self.single(name), f"parameter {name}", allowed, attribute)

    def date_time(self, name: str) -> datetime | None:
        """Return an ISO 8601 date-time parameter in UTC."""
        value = self.single(name)
        if value is None:
            return None
        try:
            return parse_datetime(value)
        except ValueError as error:
            raise invalid(f"Invalid value for parameter {name}: {error}.") from None


def one_of(
    value: str | None, label: str, allowed: Iterable[str], attribute: str = ""
) -> str | None:
    """Check that a value (of "parameter x" or "field x") is one of `allowed`."""
    options = sorted(allowed)
    if value is not None and value not in options:
        hint = f" (see getInvoicesAttributes {attribute})" if attribute else ""
        raise invalid(
            f"Invalid value {value!r} for {label}: expected one of {', '.join(options)}{hint}."
        )
    return value


def check_marketplace(params: Params) -> str:
    """Require marketplaceId and accept only Brazil, the one marketplace of this API."""
    marketplace = params.single("marketplaceId", required=True)
    assert marketplace is not None
    return marketplace_value(marketplace, "parameter marketplaceId")


def marketplace_value(marketplace: str, label: str) -> str:
    """Accept only Brazil, the one marketplace of this API."""
    if marketplace != catalog.MARKETPLACE_ID:
        raise invalid(
            f"Invalid value {marketplace!r} for {label}: the Invoices API supports only the "
            f"Brazil marketplace {catalog.MARKETPLACE_ID}."
        )
    return marketplace


def require_token_alone(query: Query) -> None:
    """Refuse a nextToken sent with filters, as Amazon does: the token carries the query."""
    if set(query) - TOKEN_ALONE:
        raise ApiError(400, "400", "Invalid Request.", TOKEN_WITH_PARAMETERS)


def call_arguments(query: Query) -> dict[str, list[str]]:
    """Return the arguments of a call that the next pages must repeat (pagination reading
    "same_arguments"): every parameter but nextToken and pageSize, list values as sorted sets."""
    arguments: dict[str, list[str]] = {}
    for name, values in sorted(query.items()):
        if name in PAGING_PARAMETERS:
            continue
        if name in LIST_PARAMETERS:
            arguments[name] = sorted({v.strip() for value in values for v in value.split(",")})
        else:
            arguments[name] = list(values)
    return arguments


def require_same_arguments(query: Query, produced: Mapping[str, list[str]]) -> None:
    """Refuse a nextToken sent without the arguments of the call that produced it, or with
    others (pagination reading "same_arguments"; the nextToken description of the model)."""
    sent = call_arguments(query)
    if sent == dict(produced):
        return
    missing = sorted(set(produced) - set(sent))
    unexpected = sorted(set(sent) - set(produced))
    different = sorted(n for n in set(sent) & set(produced) if sent[n] != produced[n])
    parts = [
        f"{label}: {', '.join(names)}"
        for label, names in (
            ("missing", missing),
            ("not in the first call", unexpected),
            ("different", different),
        )
        if names
    ]
    raise ApiError(400, "InvalidInput", SAME_ARGUMENTS_MESSAGE, "; ".join(parts))


def decode_token(
    tokens: PageTokens, token: str, operation: str, query: Query, pagination: str
) -> dict[str, Any]:
    """Check a call that carries a nextToken under a pagination reading; return the payload.

    "token_alone": other parameters are refused before the token is even read (Amazon's 400);
    "same_arguments": the token must be ours, then the call must repeat its arguments.
    """
    if pagination != SAME_ARGUMENTS:
        require_token_alone(query)
        return tokens.decode(token, operation)
    payload = tokens.decode(token, operation)
    require_same_arguments(query, payload.get("a") or {})
    return payload


def get_invoices_attributes(dataset: Dataset, query: Query) -> dict[str, Any]:
    """GET /attributes: the options of every invoice attribute."""
    check_marketplace(Params(query, {"marketplaceId"}))
    return {"invoicesAttributes": dataset.attributes}


def get_invoice(dataset: Dataset, invoice_id: str, query: Query) -> dict[str, Any]:
    """GET /invoices/{invoiceId}: one invoice, or 404 NotFound."""
    check_marketplace(Params(query, {"marketplaceId"}))
    try:
        return {"invoice": dataset.invoice(invoice_id)}
    except KeyError:
        raise ApiError(404, "NotFound", f"Invoice {invoice_id} was not found.") from None


class PageTokens:
    """Opaque, signed nextToken values: the operation, its whole query and the position.

    The query (date window included) is frozen into the token, so the next page needs nothing
    else, and paging a call whose dateEnd defaulted to "now" keeps reading the same window.
    The token also keeps the first call's arguments as sent (payload key "a"), which the
    pagination reading "same_arguments" requires every later page to repeat.
    """

    _SIGNATURE_BYTES = 12

    def __init__(self, secret: bytes) -> None:
        """Sign tokens with this server's secret."""
        self._secret = secret

    def encode(self, payload: dict[str, Any]) -> str:
        """Return a token for a payload."""
        raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        signature = hmac.new(self._secret, raw, hashlib.sha256).digest()[: self._SIGNATURE_BYTES]
        return base64.urlsafe_b64encode(raw + signature).decode().rstrip("=")

    def decode(self, token: str, operation: str) -> dict[str, Any]:
        """Return a token's payload, or raise 400 InvalidInput for anything not issued here
        for `operation` (payload key "op")."""
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise invalid("Invalid value for parameter nextToken: not a token we issued.") from None
        raw, signature = blob[: -self._SIGNATURE_BYTES], blob[-self._SIGNATURE_BYTES :]
        expected = hmac.new(self._secret, raw, hashlib.sha256).digest()[: self._SIGNATURE_BYTES]
        if len(blob) <= self._SIGNATURE_BYTES or not hmac.compare_digest(signature, expected):
            raise invalid("Invalid value for parameter nextToken: not a token we issued.")
        payload: dict[str, Any] = json.loads(raw)
        if payload.get("op") != operation:
            raise invalid(f"Invalid value for parameter nextToken: not a token of {operation}.")
        return payload


GET_INVOICES_PARAMS = frozenset(
    {
        "marketplaceId",
        "dateStart",
        "dateEnd",
        "pageSize",
        "nextToken",
        "sortBy",
        "sortOrder",
        "statuses",
        "invoiceType",
        "transactionType",
        "series",
        "externalInvoiceId",
        "transactionIdentifierName",
        "transactionIdentifierId",
    }
)


def _page_size(
    params: Params, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE
) -> int:
    """Return pageSize, 1..maximum (200 for invoices, 100 for exports)."""
    text = params.single("pageSize")
    if text is None:
        return default
    try:
        size = int(text)
    except ValueError:
        size = 0
    if not MIN_PAGE_SIZE <= size <= maximum or not text.strip().isdigit():
        raise invalid(
            f"Invalid value {text!r} for parameter pageSize: expected an integer from "
            f"{MIN_PAGE_SIZE} to {maximum}."
        )
    return size


def _statuses(values: list[str] | None, label: str) -> frozenset[str] | None:
    """Check invoice statuses against the attribute options."""
    if values is None:
        return None
    known = allowed_values("invoiceStatusOptions")
    unknown = sorted(set(values) - known)
    if unknown:
        raise invalid(
            f"Invalid value(s) {', '.join(unknown)} for {label}: expected values from "
            f"{', '.join(sorted(known))} (see getInvoicesAttributes invoiceStatusOptions)."
        )
    return frozenset(values)


def invoice_filter(
    *,
    statuses: list[str] | None,
    invoice_type: str | None,
    transaction_type: str | None,
    series: str | None,
    external_invoice_id: str | None,
    identifier: tuple[str | None, str | None],
    labels: Callable[[str], str],
) -> InvoiceFilter:
    """Validate the filters shared by getInvoices and createInvoicesExport.

    `labels` names a filter in error messages ("parameter x" in a query, "field x" in a body);
    the date window is resolved by the caller.
    """
    name, identifier_id = identifier
    name_label, id_label = labels("transactionIdentifierName"), labels("transactionIdentifierId")
    one_of(
        name,
        name_label,
        allowed_values("transactionIdentifierNameOptions"),
        "transactionIdentifierNameOptions",
    )
    if (name is None) != (identifier_id is None):
        raise invalid(f"Both {name_label} and {id_label} must be given, or neither.")
    return InvoiceFilter(
        statuses=_statuses(statuses, labels("statuses")),
        invoice_type=one_of(
            invoice_type,
            labels("invoiceType"),
            allowed_values("invoiceTypeOptions"),
            "invoiceTypeOptions",
        ),
        transaction_type=one_of(
            transaction_type,
            labels("transactionType"),
            allowed_values("transactionTypeOptions"),
            "transactionTypeOptions",
        ),
        series=series,
        external_invoice_id=external_invoice_id,
        transaction_identifier=(name, identifier_id) if name and identifier_id else None,
    )


def _filter(params: Params) -> InvoiceFilter:
    """Read the filters of getInvoices from the query string."""
    return invoice_filter(
        statuses=params.many("statuses"),
        invoice_type=params.single("invoiceType"),
        transaction_type=params.single("transactionType"),
        series=params.single("series"),
        external_invoice_id=params.single("externalInvoiceId"),
        identifier=(
            params.single("transactionIdentifierName"),
            params.single("transactionIdentifierId"),
        ),
        labels=lambda name: f"parameter {name}",
    )


def get_invoices(
    dataset: Dataset,
    query: Query,
    *,
    now: datetime,
    tokens: PageTokens,
    pagination: str = TOKEN_ALONE_READING,
    by: str = BY_DATE,
) -> dict[str, Any]:
    """GET /invoices: one page of invoices in the inclusive window [dateStart, dateEnd].

    A nextToken replaces every other parameter but marketplaceId (and pageSize, which may
    change from page to page); anything else sent with it is a 400, as on Amazon. Under the
    pagination reading "same_arguments" it must come with exactly the first call's arguments
    instead. `by="creation"` windows and pages on the invoices' creation time.
    """
    params = Params(query, GET_INVOICES_PARAMS)
    check_marketplace(params)
    next_token = params.single("nextToken")
    after: tuple[datetime, str] | None = None
    arguments = call_arguments(query)
    if next_token is not None:
        payload = decode_token(tokens, next_token, "getInvoices", query, pagination)
        arguments = payload.get("a") or {}
        flt, order = InvoiceFilter.from_json(payload["q"]), payload["o"]
        page_size = _page_size(params, default=payload["n"])
        after = (parse_datetime(payload["k"][0]), payload["k"][1])
        by = payload.get("b", BY_DATE)  # a token pages the way it began
    else:
        page_size = _page_size(params)
        params.choice("sortBy", SORT_BY)
        order = params.choice("sortOrder", SORT_ORDERS) or "DESC"
        given_start, given_end = params.date_time("dateStart"), params.date_time("dateEnd")
        flt = _filter(params)
        end = given_end or now
        start = given_start or end - DEFAULT_WINDOW
        if start > end:
            raise invalid(
                f"Invalid date range: dateStart {start.isoformat()} is after dateEnd "
                f"{end.isoformat()}."
            )
        flt = replace(flt, date_start=start, date_end=end)
    found: list[Invoice] = dataset.select(
        flt, sort_order=order, after=after, limit=page_size + 1, by=by
    )
    page = found[:page_size]
    body: dict[str, Any] = {"invoices": dataset.render(page)}
    if len(found) > page_size:
        last = page[-1]
        moment = creation_time(last.id, last.date) if by == BY_CREATION else last.date
        payload = {
            "op": "getInvoices",
            "q": flt.to_json(),
            "o": order,
            "n": page_size,
            "k": [moment.isoformat(), last.id],
            "a": arguments,  # what "same_arguments" compares the next call with
        }
        if by != BY_DATE:
            payload["b"] = by
        body["nextToken"] = tokens.encode(payload)
    return body


# --- exports ------------------------------------------------------------------------------------

EXPORT_REQUEST_FIELDS = frozenset(
    {
        "marketplaceId",
        "dateStart",
        "dateEnd",
        "statuses",
        "invoiceType",
        "transactionType",
        "series",
        "externalInvoiceId",
        "transactionIdentifier",
        "fileFormat",
    }
)
GET_EXPORTS_PARAMS = frozenset(
    {"marketplaceId", "dateStart", "dateEnd", "status", "pageSize", "nextToken"}
)


@dataclass(frozen=True)
class ExportRequest:
    """A validated createInvoicesExport body: inclusive days, the invoice filters, and the
    inclusive UTC instants the export covers (`window`: the days' bounds in the bare-date zone,
    or the exact date-times under export_dates="date_time")."""

    date_start: date
    date_end: date
    filter: InvoiceFilter
    body: Mapping[str, Any]  # as sent
    window: tuple[datetime, datetime] | None = None

    def bounds(self) -> tuple[datetime, datetime]:
        """Return the inclusive UTC instants the export covers."""
        return self.window or day_bounds(self.date_start, self.date_end)

    def invoice_filter(self) -> InvoiceFilter:
        """Return the filter with the date window of the days (the getInvoices selection)."""
        low, high = self.bounds()
        return replace(self.filter, date_start=low, date_end=high)


def _text_field(body: Mapping[str, Any], name: str) -> str | None:
    """Return a non-empty string field of a JSON body, or None when absent."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or value == "":
        raise invalid(f"Invalid value for field {name}: expected a non-empty string.")
    return value


def _date_field(body: Mapping[str, Any], name: str) -> date | None:
    """Return a YYYY-MM-DD field as a date (the export API takes days, not date-times)."""
    value = body.get(name)
    if value is None:
        return None
    try:
        if not isinstance(value, str) or not DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(
            f"Invalid value {value!r} for field {name}: expected a date YYYY-MM-DD."
        ) from None


def _date_time_field(body: Mapping[str, Any], name: str) -> datetime | None:
    """Return a YYYY-MM-DDTHH:MM:SS[.fff][Z] field as a UTC datetime (export_dates="date_time",
    the form of the model's example body); a bare date or an offset is refused."""
    value = body.get(name)
    if value is None:
        return None
    try:
        if not isinstance(value, str) or not DATE_TIME.fullmatch(value):
            raise ValueError
        return parse_datetime(value)
    except ValueError:
        raise invalid(
            f"Invalid value {value!r} for field {name}: expected a date-time "
            "YYYY-MM-DDTHH:MM:SS (UTC, optionally with a fraction and a Z), e.g. "
            "2024-07-01T00:00:00."
        ) from None


def _end_of_second(moment: datetime) -> datetime:
    """Return the last instant of the second `moment` falls in (dateEnd covers its second)."""
    return moment.replace(microsecond=0) + timedelta(seconds=1) - timedelta(microseconds=1)


def parse_export_request(
    raw: bytes,
    *,
    today: date,
    export_dates: str = "date",
    zone: tzinfo = UTC,
    now: datetime | None = None,
) -> ExportRequest:
    """Validate a createInvoicesExport JSON body (ExportInvoicesRequest).

    export_dates="date" (the model's `format: date`): dateEnd defaults to `today` and dateStart
    to the day before (Amazon: 24 hours before the request); both days are included, as days
    of `zone` (the bare_date_zone reading). export_dates="date_time" (the model's example
    body): the exact instants, dateEnd included to the end of its second; dateEnd defaults to
    `now` and dateStart to 24 hours before it.
    """
    try:
        body = json.loads(raw.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise invalid("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object (ExportInvoicesRequest).")
    unknown = sorted(set(body) - EXPORT_REQUEST_FIELDS)
    if unknown:
        raise invalid(f"Unknown field(s) in the request body: {', '.join(unknown)}.")
    marketplace = _text_field(body, "marketplaceId")
    if marketplace is None:
        raise invalid("Missing required field marketplaceId.")
    marketplace_value(marketplace, "field marketplaceId")
    file_format = _text_field(body, "fileFormat")
    one_of(file_format, "field fileFormat", FILE_FORMATS)
    window: tuple[datetime, datetime] | None = None
    if export_dates == "date_time":
        end_at = _date_time_field(body, "dateEnd") or (now or datetime.now(UTC))
        start_at = _date_time_field(body, "dateStart") or end_at - timedelta(hours=24)
        if end_at < start_at:
            raise invalid(
                f"Invalid date range: dateEnd {end_at.isoformat()} is before dateStart "
                f"{start_at.isoformat()}."
            )
        window = (start_at, _end_of_second(end_at))
        start, end = start_at.date(), end_at.date()
    else:
        end = _date_field(body, "dateEnd") or today
        start = _date_field(body, "dateStart") or end - timedelta(days=1)
        if end < start:
            raise invalid(f"Invalid date range: dateEnd {end} is before dateStart {start}.")
        window = day_bounds(start, end, zone)
    statuses = body.get("statuses")
    if statuses is not None and (
        not isinstance(statuses, list)
        or not statuses
        or not all(isinstance(s, str) and s for s in statuses)
    ):
        raise invalid("Invalid value for field statuses: expected a non-empty list of strings.")
    identifier = body.get("transactionIdentifier")
    pair: tuple[str | None, str | None] = (None, None)
    if identifier is not None:
        if not isinstance(identifier, dict) or set(identifier) - {"name", "id"}:
            raise invalid(
                "Invalid value for field transactionIdentifier: expected an object with "
                "name and id."
            )
        name, value = identifier.get("name"), identifier.get("id")
        if not (isinstance(name, str) and name and isinstance(value, str) and value):
            raise invalid(
                "Invalid value for field transactionIdentifier: name and id must both be "
                "non-empty strings."
            )
        pair = (name, value)
    labels = {
        "transactionIdentifierName": "field transactionIdentifier.name",
        "transactionIdentifierId": "field transactionIdentifier.id",
    }
    flt = invoice_filter(
        statuses=statuses,
        invoice_type=_text_field(body, "invoiceType"),
        transaction_type=_text_field(body, "transactionType"),
        series=_text_field(body, "series"),
        external_invoice_id=_text_field(body, "externalInvoiceId"),
        identifier=pair,
        labels=lambda name: labels.get(name, f"field {name}"),
    )
    return ExportRequest(start, end, flt, body, window)


def create_invoices_export(
    dataset: Dataset,
    registry: ExportRegistry,
    raw: bytes,
    *,
    today: date,
    planned_fault: Callable[[date], ExportFailure | None] = lambda _day: None,
    max_days: int | None = None,
    export_dates: str = "date",
    zone: tzinfo = UTC,
    now: datetime | None = None,
    by: str = BY_DATE,
    document_body: str = ZIP_BODY,
) -> dict[str, Any]:
    """POST /exports: snapshot the matching invoices into a new export; answer its id.

    `planned_fault(dateStart)` returns the fault planned for the export (ERROR with a message,
    CANCELLED, or an odd status), if any.
    `max_days`: the longest date range accepted (the model states none; an API that has one
    would answer a longer range with a 400, as here).
    The readings: `export_dates` and `zone` (bare_date_zone) say how dateStart/dateEnd read,
    `by` (invoice_filter_date) what time the range looks at, `document_body` what documents
    the export makes.
    """
    request = parse_export_request(raw, today=today, export_dates=export_dates, zone=zone, now=now)
    days = (request.date_end - request.date_start).days + 1
    if max_days is not None and days > max_days:
        raise invalid(
            f"Invalid date range: dateStart {request.date_start} to dateEnd {request.date_end} "
            f"spans {days} days; the maximum is {max_days} days."
        )
    found = dataset.select(request.invoice_filter(), sort_order="ASC", by=by)
    fault = planned_fault(request.date_start)
    kind = fault.kind if fault else None
    export = registry.create(
        (invoice.id for invoice in found),
        request.date_start,
        request.date_end,
        fault.message if fault and kind not in (CANCEL, ODD) else None,
        request.body,
        window=request.bounds(),
        cancelled=kind == CANCEL,
        odd_status=fault.status if fault and kind == ODD else None,
        body=document_body,
    )
    return {"exportId": export.export_id}


def get_invoices_export(
    registry: ExportRegistry,
    export_id: str,
    *,
    forgotten: Callable[[str], bool],
    statuses: str = "model",
) -> dict[str, Any]:
    """GET /exports/{exportId}: one export as it stands now, or 404 NotFound.

    `statuses` is the export_statuses reading its status is named in.
    """
    try:
        if forgotten(export_id):
            raise KeyError(export_id)
        export = registry.get(export_id)
    except KeyError:
        raise ApiError(404, "NotFound", f"Export {export_id} was not found.") from None
    return {"export": registry.to_api(export, statuses)}


def get_invoices_exports(
    registry: ExportRegistry,
    query: Query,
    *,
    now: datetime,
    tokens: PageTokens,
    forgotten: Callable[[str], bool],
    pagination: str = TOKEN_ALONE_READING,
    statuses: str = "model",
) -> dict[str, Any]:
    """GET /exports: exports created in [dateStart, dateEnd] (default: the last 30 days), oldest
    first, optionally of one status; paged like getInvoices (a nextToken stands alone, or comes
    with the same arguments under the pagination reading "same_arguments"). Statuses are
    named, and filtered, as the export_statuses reading `statuses` names them."""
    params = Params(query, GET_EXPORTS_PARAMS)
    check_marketplace(params)
    next_token = params.single("nextToken")
    after = -1
    arguments = call_arguments(query)
    if next_token is not None:
        payload = decode_token(tokens, next_token, "getInvoicesExports", query, pagination)
        arguments = payload.get("a") or {}
        start, end = parse_datetime(payload["w"][0]), parse_datetime(payload["w"][1])
        status, after = payload["s"], payload["k"]
        page_size = _page_size(params, payload["n"], MAX_EXPORTS_PAGE_SIZE)
    else:
        page_size = _page_size(params, MAX_EXPORTS_PAGE_SIZE, MAX_EXPORTS_PAGE_SIZE)
        status = params.choice("status", listed_statuses(statuses))
        end = params.date_time("dateEnd") or now
        start = params.date_time("dateStart") or end - DEFAULT_EXPORTS_WINDOW
        if start > end:
            raise invalid(
                f"Invalid date range: dateStart {start.isoformat()} is after dateEnd "
                f"{end.isoformat()}."
            )
    found = registry.listing(
        start,
        end,
        status=status,
        after=after,
        limit=page_size + 1,
        hidden=forgotten,
        reading=statuses,
    )
    page = found[:page_size]
    body: dict[str, Any] = {"exports": [registry.to_api(export, statuses) for export in page]}
    if len(found) > page_size:
        body["nextToken"] = tokens.encode(
            {
                "op": "getInvoicesExports",
                "w": [start.isoformat(), end.isoformat()],
                "s": status,
                "n": page_size,
                "k": page[-1].sequence,
                "a": arguments,  # what "same_arguments" compares the next call with
            }
        )
    return body


def get_invoices_document(
    registry: ExportRegistry, document_id: str, *, issue_url: Callable[[str], str]
) -> dict[str, Any]:
    """GET /documents/{invoicesDocumentId}: a fresh pre-signed URL of a DONE export's ZIP."""
    try:
        document = registry.document(document_id)
    except KeyError:
        raise ApiError(404, "NotFound", f"Document {document_id} was not found.") from None
    return {
        "invoicesDocument": {
            "invoicesDocumentId": document.document_id,
            "invoicesDocumentUrl": issue_url(document.document_id),
        }
    }
