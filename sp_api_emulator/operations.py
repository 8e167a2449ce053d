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
from datetime import date, datetime, timedelta
from typing import Any

from . import catalog
from .dataset import SORT_ORDERS, Dataset, InvoiceFilter, allowed_values, day_bounds
from .exports import EXPORT_STATUSES, ExportRegistry
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
    dataset: Dataset, query: Query, *, now: datetime, tokens: PageTokens
) -> dict[str, Any]:
    """GET /invoices: one page of invoices in the inclusive window [dateStart, dateEnd].

    A nextToken replaces every other parameter but marketplaceId (and pageSize, which may
    change from page to page); anything else sent with it is a 400, as on Amazon.
    """
    params = Params(query, GET_INVOICES_PARAMS)
    check_marketplace(params)
    next_token = params.single("nextToken")
    after: tuple[datetime, str] | None = None
    if next_token is not None:
        require_token_alone(query)
        payload = tokens.decode(next_token, "getInvoices")
        flt, order = InvoiceFilter.from_json(payload["q"]), payload["o"]
        page_size = _page_size(params, default=payload["n"])
        after = (parse_datetime(payload["k"][0]), payload["k"][1])
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
    found: list[Invoice] = dataset.select(flt, sort_order=order, after=after, limit=page_size + 1)
    page = found[:page_size]
    body: dict[str, Any] = {"invoices": dataset.render(page)}
    if len(found) > page_size:
        last = page[-1]
        body["nextToken"] = tokens.encode(
            {
                "op": "getInvoices",
                "q": flt.to_json(),
                "o": order,
                "n": page_size,
                "k": [last.date.isoformat(), last.id],
            }
        )
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
    """A validated createInvoicesExport body: inclusive UTC days and the invoice filters."""

    date_start: date
    date_end: date
    filter: InvoiceFilter
    body: Mapping[str, Any]  # as sent

    def invoice_filter(self) -> InvoiceFilter:
        """Return the filter with the date window of the days (the getInvoices selection)."""
        low, high = day_bounds(self.date_start, self.date_end)
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


def parse_export_request(raw: bytes, *, today: date) -> ExportRequest:
    """Validate a createInvoicesExport JSON body (ExportInvoicesRequest).

    dateEnd defaults to today and dateStart to the day before (Amazon: 24 hours before the
    request); both days are included.
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
    end = _date_field(body, "dateEnd") or today
    start = _date_field(body, "dateStart") or end - timedelta(days=1)
    if end < start:
        raise invalid(f"Invalid date range: dateEnd {end} is before dateStart {start}.")
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
    return ExportRequest(start, end, flt, body)


def create_invoices_export(
    dataset: Dataset,
    registry: ExportRegistry,
    raw: bytes,
    *,
    today: date,
    planned_error: Callable[[date], str | None],
    max_days: int | None = None,
) -> dict[str, Any]:
    """POST /exports: snapshot the matching invoices into a new export; answer its id.

    `planned_error(dateStart)` returns the errorMessage of an export a fault makes fail.
    `max_days`: the longest date range accepted (the model states none; an API that has one
    would answer a longer range with a 400, as here).
    """
    request = parse_export_request(raw, today=today)
    days = (request.date_end - request.date_start).days + 1
    if max_days is not None and days > max_days:
        raise invalid(
            f"Invalid date range: dateStart {request.date_start} to dateEnd {request.date_end} "
            f"spans {days} days; the maximum is {max_days} days."
        )
    found = dataset.select(request.invoice_filter(), sort_order="ASC")
    export = registry.create(
        (invoice.id for invoice in found),
        request.date_start,
        request.date_end,
        planned_error(request.date_start),
        request.body,
    )
    return {"exportId": export.export_id}


def get_invoices_export(
    registry: ExportRegistry, export_id: str, *, forgotten: Callable[[str], bool]
) -> dict[str, Any]:
    """GET /exports/{exportId}: one export as it stands now, or 404 NotFound."""
    try:
        if forgotten(export_id):
            raise KeyError(export_id)
        export = registry.get(export_id)
    except KeyError:
        raise ApiError(404, "NotFound", f"Export {export_id} was not found.") from None
    return {"export": registry.to_api(export)}


def get_invoices_exports(
    registry: ExportRegistry,
    query: Query,
    *,
    now: datetime,
    tokens: PageTokens,
    forgotten: Callable[[str], bool],
) -> dict[str, Any]:
    """GET /exports: exports created in [dateStart, dateEnd] (default: the last 30 days), oldest
    first, optionally of one status; paged like getInvoices (a nextToken stands alone)."""
    params = Params(query, GET_EXPORTS_PARAMS)
    check_marketplace(params)
    next_token = params.single("nextToken")
    after = -1
    if next_token is not None:
        require_token_alone(query)
        payload = tokens.decode(next_token, "getInvoicesExports")
        start, end = parse_datetime(payload["w"][0]), parse_datetime(payload["w"][1])
        status, after = payload["s"], payload["k"]
        page_size = _page_size(params, payload["n"], MAX_EXPORTS_PAGE_SIZE)
    else:
        page_size = _page_size(params, MAX_EXPORTS_PAGE_SIZE, MAX_EXPORTS_PAGE_SIZE)
        status = params.choice("status", EXPORT_STATUSES)
        end = params.date_time("dateEnd") or now
        start = params.date_time("dateStart") or end - DEFAULT_EXPORTS_WINDOW
        if start > end:
            raise invalid(
                f"Invalid date range: dateStart {start.isoformat()} is after dateEnd "
                f"{end.isoformat()}."
            )
    found = registry.listing(
        start, end, status=status, after=after, limit=page_size + 1, hidden=forgotten
    )
    page = found[:page_size]
    body: dict[str, Any] = {"exports": [registry.to_api(export) for export in page]}
    if len(found) > page_size:
        body["nextToken"] = tokens.encode(
            {
                "op": "getInvoicesExports",
                "w": [start.isoformat(), end.isoformat()],
                "s": status,
                "n": page_size,
                "k": page[-1].sequence,
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
