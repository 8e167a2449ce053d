"""The emulator's data set: generated invoices plus the truth queries tests compare against.

The server answers getInvoices and snapshots createInvoicesExport with `Dataset.select`, and tests
ask `Dataset.invoices` / `Dataset.export_invoices`, which use the very same selection, so they
cannot disagree on filters or date bounds. Date bounds are INCLUSIVE on both ends:
`date_start <= invoice.date <= date_end`; an export's days [first, last] cover every invoice whose
UTC date falls on one of them (`day_bounds`).
"""

from __future__ import annotations

import hashlib
import threading
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from . import catalog
from .generator import DayCount, InvoiceGenerator, apply_status
from .models import Invoice
from .nfe_xml import UTF8
from .nfe_xml import render as render_nfe
from .parsing import parse_datetime

SORT_ORDERS = ("ASC", "DESC")
BY_DATE, BY_CREATION = "date", "creation"  # what date windows and paging look at
FILTER_DATES = (BY_DATE, BY_CREATION)
LATE_SHARE = 4  # one invoice in LATE_SHARE is created after its date...
LATE_CREATION = (timedelta(hours=1), timedelta(hours=36))  # ...by this much

_CreationIndex = tuple[list[Invoice], list[tuple[datetime, str]], list[datetime]]
"""The invoices in (creation time, id) order, their keys and their creation times."""


def creation_time(invoice_id: str, issued: datetime) -> datetime:
    """Return when an invoice was created in Amazon's system, for the "creation" reading.

    Mostly the moment of its `date`; for one invoice in four (fixed by its id) between 1 and 36
    hours later, millisecond precision, so many are created on a later UTC day than their date.
    """
    digest = hashlib.sha256(f"created/{invoice_id}".encode()).digest()
    if digest[0] % LATE_SHARE:
        return issued
    low, high = (int(bound.total_seconds() * 1000) for bound in LATE_CREATION)
    fraction = int.from_bytes(digest[1:9], "big") / 2**64
    return issued + timedelta(milliseconds=low + int((high - low) * fraction))


def attribute_options() -> dict[str, list[dict[str, str]]]:
    """Return the `invoicesAttributes` object of getInvoicesAttributes."""

    def options(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
        return [{"description": description, "value": value} for value, description in pairs]

    return {
        "invoiceStatusOptions": options(catalog.INVOICE_STATUS_OPTIONS),
        "invoiceTypeOptions": options(catalog.INVOICE_TYPE_OPTIONS),
        "transactionIdentifierNameOptions": options(catalog.TRANSACTION_IDENTIFIER_NAME_OPTIONS),
        "transactionTypeOptions": options(catalog.TRANSACTION_TYPE_OPTIONS),
    }


def allowed_values(attribute: str) -> frozenset[str]:
    """Return the values allowed for one attribute (e.g. "invoiceStatusOptions")."""
    return frozenset(option["value"] for option in attribute_options()[attribute])


@dataclass(frozen=True)
class InvoiceFilter:
    """The filters of getInvoices; None means "no filter". Date bounds are inclusive."""

    date_start: datetime | None = None
    date_end: datetime | None = None
    statuses: frozenset[str] | None = None
    invoice_type: str | None = None
    transaction_type: str | None = None
    series: str | None = None
    external_invoice_id: str | None = None
    transaction_identifier: tuple[str, str] | None = None  # (name, id)

    def matches(self, invoice: Invoice) -> bool:
        """Tell whether an invoice passes every filter except the date window."""
        if self.statuses is not None and invoice.status not in self.statuses:
            return False
        if self.invoice_type is not None and invoice.invoice_type != self.invoice_type:
            return False
        if self.transaction_type is not None and invoice.transaction_type != self.transaction_type:
            return False
        if self.series is not None and invoice.series != self.series:
            return False
        if (
            self.external_invoice_id is not None
            and invoice.external_invoice_id != self.external_invoice_id
        ):
            return False
        if self.transaction_identifier is not None:
            name, value = self.transaction_identifier
            if not any(t.name == name and t.id == value for t in invoice.transaction_ids):
                return False
        return True

    def to_json(self) -> dict[str, Any]:
        """Return the filter as JSON (page tokens carry the query of the call they continue)."""
        return {
            "dateStart": self.date_start.isoformat() if self.date_start else None,
            "dateEnd": self.date_end.isoformat() if self.date_end else None,
            "statuses": sorted(self.statuses) if self.statuses is not None else None,
            "invoiceType": self.invoice_type,
            "transactionType": self.transaction_type,
            "series": self.series,
            "externalInvoiceId": self.external_invoice_id,
            "transactionIdentifier": list(self.transaction_identifier)
            if self.transaction_identifier
            else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InvoiceFilter:
        """Rebuild a filter from `to_json` output."""
        identifier = data.get("transactionIdentifier")
        return cls(
            date_start=_as_datetime(data.get("dateStart")),
            date_end=_as_datetime(data.get("dateEnd")),
            statuses=frozenset(data["statuses"]) if data.get("statuses") is not None else None,
            invoice_type=data.get("invoiceType"),
            transaction_type=data.get("transactionType"),
            series=data.get("series"),
            external_invoice_id=data.get("externalInvoiceId"),
            transaction_identifier=(identifier[0], identifier[1]) if identifier else None,
        )


def day_bounds(first: date, last: date, zone: tzinfo = UTC) -> tuple[datetime, datetime]:
    """Return the inclusive UTC instants covering days first..last (an export's dateStart/End)
    of a zone (UTC by default: [first 00:00Z, last 23:59:59.999999Z])."""
    low = datetime.combine(first, time.min, zone).astimezone(UTC)
    return low, datetime.combine(last, time.max, zone).astimezone(UTC)


class Dataset:
    """A seeded, generated set of invoices of marketplace A2Q3Y263D00KWC (thread-safe)."""

    marketplace_id = catalog.MARKETPLACE_ID

    def __init__(
        self,
        invoices: Iterable[Invoice],
        *,
        generator: InvoiceGenerator,
        start: date,
        days: int,
    ) -> None:
        """Hold invoices in API order (date, then id); use `Dataset.generate` to build one."""
        self.seed = generator.seed
        self.start = start
        self.days = days
        self._generator = generator
        self._lock = threading.RLock()
        self._invoices = sorted(invoices, key=lambda i: i.sort_key)
        self._keys = [i.sort_key for i in self._invoices]
        self._dates = [i.date for i in self._invoices]
        self._by_id = {i.id: i for i in self._invoices}
        self._creation: _CreationIndex | None = None  # built on first use

    @classmethod
    def generate(
        cls,
        seed: int = 42,
        start: date = date(2024, 1, 1),
        days: int = 30,
        invoices_per_day: DayCount = (0, 40),
    ) -> Dataset:
        """Generate `days` days of invoices from `start` (UTC days); same seed, same data.

        `invoices_per_day` is a fixed count, an inclusive (low, high) range, or a function
        `(day, rng) -> count`; `generator.day_profile()` mixes quiet and busy days.
        """
        if days < 0:
            raise ValueError("days must not be negative")
        generator = InvoiceGenerator(seed)
        invoices: list[Invoice] = []
        for offset in range(days):
            invoices.extend(generator.day(start + timedelta(days=offset), invoices_per_day))
        return cls(invoices, generator=generator, start=start, days=days)

    def __len__(self) -> int:
        """Return how many invoices the data set holds."""
        return len(self._invoices)

    @property
    def end(self) -> date:
        """Return the first day after the generated range."""
        return self.start + timedelta(days=self.days)

    @property
    def attributes(self) -> dict[str, list[dict[str, str]]]:
        """Return the `invoicesAttributes` object getInvoicesAttributes serves."""
        return attribute_options()

    def select(
        self,
        query: InvoiceFilter,
        *,
        sort_order: str = "DESC",
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
        by: str = BY_DATE,
    ) -> list[Invoice]:
        """Return matching invoices in sort order, starting after a (date, id) key.

        This is the server's query. Bounds are inclusive; `after` is exclusive (keyset paging).
        `by="creation"` windows, orders and pages on the creation time instead of `date`
        (the invoice_filter_date reading); `after` is then a (creation time, id) key.
        """
        if sort_order not in SORT_ORDERS:
            raise ValueError(f"sort_order must be ASC or DESC, got {sort_order!r}")
        if by not in FILTER_DATES:
            raise ValueError(f"by must be one of {', '.join(FILTER_DATES)}, got {by!r}")
        with self._lock:
            if by == BY_CREATION:
                invoices, keys, moments = self._creation_index()
            else:
                invoices, keys, moments = self._invoices, self._keys, self._dates
            low = 0 if query.date_start is None else bisect_left(moments, query.date_start)
            high = len(moments) if query.date_end is None else bisect_right(moments, query.date_end)
            if after is not None and sort_order == "ASC":
                low = max(low, bisect_right(keys, after))
            elif after is not None:
                high = min(high, bisect_left(keys, after))
            indexes = range(low, high) if sort_order == "ASC" else range(high - 1, low - 1, -1)
            found: list[Invoice] = []
            for index in indexes:
                invoice = invoices[index]
                if query.matches(invoice):
                    found.append(invoice)
                    if limit is not None and len(found) >= limit:
                        break
            return found

    def render(self, invoices: Iterable[Invoice]) -> list[dict[str, Any]]:
        """Return the API JSON of invoices, consistently with concurrent status changes."""
        with self._lock:
            return [invoice.to_api() for invoice in invoices]

    def invoices(
        self,
        date_start: datetime | str | None = None,
        date_end: datetime | str | None = None,
        *,
        statuses: Iterable[str] | None = None,
        invoice_type: str | None = None,
        transaction_type: str | None = None,
        series: str | None = None,
        external_invoice_id: str | None = None,
        transaction_identifier: tuple[str, str] | None = None,
        sort_order: str = "DESC",
        by: str = BY_DATE,
    ) -> list[dict[str, Any]]:
        """Truth query: the API JSON of every invoice getInvoices would return, in one list.

        Bounds are inclusive (`date_start <= date <= date_end`); None means unbounded (unlike the
        API, whose missing dateEnd means now and missing dateStart means dateEnd - 24 h).
        Naive datetimes and strings without an offset are UTC. Default order is the API's: DESC.
        `by="creation"`: bounds and order look at `created_at` (the invoice_filter_date reading).
        """
        query = InvoiceFilter(
            date_start=_as_datetime(date_start),
            date_end=_as_datetime(date_end),
            statuses=frozenset(statuses) if statuses is not None else None,
            invoice_type=invoice_type,
            transaction_type=transaction_type,
            series=series,
            external_invoice_id=external_invoice_id,
            transaction_identifier=transaction_identifier,
        )
        return self.render(self.select(query, sort_order=sort_order, by=by))

    def export_invoices(
        self,
        date_start: date | str,
        date_end: date | str,
        *,
        statuses: Iterable[str] | None = None,
        invoice_type: str | None = None,
        transaction_type: str | None = None,
        series: str | None = None,
        external_invoice_id: str | None = None,
        transaction_identifier: tuple[str, str] | None = None,
        by: str = BY_DATE,
        zone: tzinfo = UTC,
    ) -> list[dict[str, Any]]:
        """Truth query of createInvoicesExport: invoices of UTC days date_start..date_end.

        Both days are included; the order is ascending (date, id), the order of the ZIP files.
        `by` and `zone` follow the invoice_filter_date and bare_date_zone readings.
        """
        first, last = _as_date(date_start), _as_date(date_end)
        low, high = day_bounds(first, last, zone)
        return self.invoices(
            low,
            high,
            statuses=statuses,
            invoice_type=invoice_type,
            transaction_type=transaction_type,
            series=series,
            external_invoice_id=external_invoice_id,
            transaction_identifier=transaction_identifier,
            sort_order="ASC",
            by=by,
        )

    def nfe_xml(self, invoice_id: str, encoding: str = UTF8) -> bytes:
        """Return an invoice's NF-e 4.00 nfeProc file as the export ZIPs hold it (KeyError)."""
        with self._lock:
            return render_nfe(self._by_id[invoice_id], encoding)

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        """Truth query: the API JSON of one invoice (KeyError if unknown)."""
        with self._lock:
            return self._by_id[invoice_id].to_api()

    def record(self, invoice_id: str) -> Invoice:
        """Return the full invoice model, NF-e included (KeyError if unknown)."""
        with self._lock:
            return self._by_id[invoice_id]

    def records(self) -> list[Invoice]:
        """Return every invoice model in ascending (date, id) order."""
        with self._lock:
            return list(self._invoices)

    def _creation_index(self) -> _CreationIndex:
        """Return the invoices in (creation time, id) order, their keys and creation times."""
        with self._lock:
            if self._creation is None:
                keyed = sorted(((creation_time(i.id, i.date), i.id), i) for i in self._invoices)
                self._creation = (
                    [invoice for _, invoice in keyed],
                    [key for key, _ in keyed],
                    [key[0] for key, _ in keyed],
                )
            return self._creation

    def created_at(self, invoice_id: str) -> datetime:
        """Return an invoice's creation time (UTC; KeyError if unknown).

        Under the invoice_filter_date="creation" reading, getInvoices' dateStart/dateEnd and
        createInvoicesExport's range look at this instead of the record's `date`; it equals
        `date` for three invoices in four and is 1 to 36 hours later for the rest.
        """
        with self._lock:
            return creation_time(invoice_id, self._by_id[invoice_id].date)

    def counts_by_day(self) -> dict[date, int]:
        """Return how many invoices each UTC day holds (days without invoices included)."""
        counts = Counter(moment.date() for moment in self._dates)
        every_day = (self.start + timedelta(days=n) for n in range(self.days))
        return {day: counts.get(day, 0) for day in every_day} | dict(counts)

    def set_status(
        self,
        invoice_id: str,
        status: str,
        *,
        error_code: str = "",
        gov_response: str = "",
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Change an invoice's status later (e.g. AUTHORIZED -> CANCELED); return its new JSON.

        The invoice keeps its date, so it stays in the same getInvoices window: the scenario a
        connector's lookback must catch. `at` is when a cancellation happened (default: a few
        hours after issuance).
        """
        if status not in allowed_values("invoiceStatusOptions"):
            raise ValueError(f"unknown invoice status {status!r}")
        with self._lock:
            invoice = self._by_id[invoice_id]
            apply_status(invoice, status, error_code=error_code, gov_response=gov_response, at=at)
            return invoice.to_api()

    def add_invoice(
        self,
        when: datetime | str,
        *,
        status: str | None = None,
        invoice_type: str | None = None,
    ) -> dict[str, Any]:
        """Add one generated invoice issued at an exact time (boundary tests); return its JSON."""
        moment = _as_datetime(when)
        assert moment is not None
        if status is not None and status not in allowed_values("invoiceStatusOptions"):
            raise ValueError(f"unknown invoice status {status!r}")
        with self._lock:
            invoice = self._generator.extra(moment, status=status, invoice_type=invoice_type)
            insort(self._invoices, invoice, key=lambda i: i.sort_key)
            insort(self._keys, invoice.sort_key)
            insort(self._dates, invoice.date)
            self._by_id[invoice.id] = invoice
            self._creation = None  # rebuilt on next use
            return invoice.to_api()


def _as_datetime(value: datetime | str | None) -> datetime | None:
    """Accept a datetime or ISO 8601 text; naive values are UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_datetime(value)
    return parse_datetime(value.isoformat())


def _as_date(value: date | str) -> date:
    """Accept a date or YYYY-MM-DD text."""
    if isinstance(value, datetime):
        raise TypeError("expected a date, not a datetime")
    return value if isinstance(value, date) else date.fromisoformat(value)
