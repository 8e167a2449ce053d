"""The document streams' comparison of the days looked back at: which days are exported again,
which invoices emitted again, the zone of export days learnt from the exports, and the slot
records the state keeps (taken before the exports, settled once they are read)."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

import pytest

from source_sp_invoices.changes.delivered import SlotRecord
from source_sp_invoices.changes.sketch import element_of
from source_sp_invoices.changes.slots import Slot, slots_of_days
from source_sp_invoices.config import ConfigError
from source_sp_invoices.dates import format_datetime, parse_datetime
from source_sp_invoices.export_pipeline.changed_days import (
    BRAZIL_DAYS,
    UTC_DAYS,
    ChangedDays,
    merged,
    read_records,
)
from source_sp_invoices.export_pipeline.invoice_counts import InvoiceCounts
from source_sp_invoices.export_pipeline.windows import Window
from unit_tests.test_streams import invoice

logger = logging.getLogger("test")
D = date(2024, 1, 8)  # the first of the three days looked back at; 2024-01-10 was delivered last


def day(n: int) -> date:
    return D + timedelta(days=n)


class Seller:
    """Invoices by slot, listed into InvoiceCounts as getInvoices would list them."""

    def __init__(self) -> None:
        self.by_slot: dict[Slot, list[dict]] = {
            slot: [
                invoice(n * 100 + i, format_datetime(slot.start + timedelta(minutes=5 + i)))
                for i in range(3)
            ]
            for n, slot in enumerate(slots_of_days(day(-1), day(4)))
        }

    def records(self, slot: Slot) -> dict[int, str]:
        return {element_of(r): r["id"] for r in self.by_slot[slot]}

    def delivered(self) -> dict[Slot, SlotRecord]:
        return {slot: SlotRecord.of(self.records(slot).keys()) for slot in self.by_slot}

    def counts(self, slots=None) -> InvoiceCounts:
        counts = InvoiceCounts()
        for slot in slots if slots is not None else self.by_slot:
            counts.slot_listed(slot.start, slot.end, self.records(slot))
        counts.finish()
        return counts

    def ids(self, slot: Slot) -> set[str]:
        return {r["id"] for r in self.by_slot[slot]}


def changes(seller: Seller, counts: InvoiceCounts, zone=None, pending=None, last=None):
    return ChangedDays(
        enabled=True,
        first=D,
        delivered_through=day(2),
        last=last or day(2),
        lookback_days=3,
        delivered=seller.delivered(),
        pending=pending or {},
        zone=zone,
        counts=counts,
        logger=logger,
        label="invoice_documents",
    )


def early(n: int) -> Slot:
    return Slot(
        datetime.combine(day(n), datetime.min.time()).replace(
            tzinfo=parse_datetime("2024-01-01T00:00:00Z").tzinfo
        )
    )


def rest(n: int) -> Slot:
    return Slot(early(n).end)


def test_nothing_changed_nothing_is_exported_and_every_invoice_is_known_unchanged():
    seller = Seller()
    compared = changes(seller, seller.counts())
    compared.decide([])
    assert compared.skip == {day(0), day(1), day(2)}
    # The first slot of the day after the last: Brazil's reading puts it in the last day, UTC's
    # in the next, never delivered: its invoices are not known unchanged.
    assert seller.ids(early(3)) & compared.unchanged == set()
    assert seller.ids(rest(1)) <= compared.unchanged


def test_a_change_late_in_a_day_exports_that_day_and_emits_only_the_changed_invoice():
    seller = Seller()
    before = seller.delivered()
    seller.by_slot[rest(1)][0]["status"] = "CANCELED"
    compared = changes(seller, seller.counts())
    compared._delivered = before
    compared.decide([])
    assert compared.skip == {day(0), day(2)}
    changed = seller.by_slot[rest(1)][0]["id"]
    assert changed not in compared.unchanged
    assert seller.ids(rest(1)) - {changed} <= compared.unchanged


@pytest.mark.parametrize(
    ("zone", "exported"),
    [(None, {day(0), day(1)}), (UTC_DAYS, {day(1)}), (BRAZIL_DAYS, {day(0)})],
)
def test_a_change_in_the_first_three_hours_exports_the_days_of_either_zone_until_one_is_known(
    zone, exported
):
    seller = Seller()
    before = seller.delivered()
    seller.by_slot[early(1)].append(
        invoice(999, format_datetime(early(1).start + timedelta(hours=1)))
    )
    compared = changes(seller, seller.counts(), zone=zone)
    compared._delivered = before
    compared.decide([])
    assert {day(0), day(1), day(2)} - compared.skip == exported


def test_a_slot_that_could_not_be_listed_exports_its_days_and_emits_all():
    seller = Seller()
    listed = [slot for slot in seller.by_slot if slot != rest(2)]
    compared = changes(seller, seller.counts(listed))
    compared.decide([])
    assert day(2) not in compared.skip
    assert not seller.ids(rest(2)) & compared.unchanged


def test_days_with_an_export_in_flight_are_read_on_whatever_the_comparison():
    seller = Seller()
    compared = changes(seller, seller.counts())
    compared.decide([Window(day(1), day(1))])
    assert compared.skip == {day(0), day(2)}


def test_what_is_kept_is_the_listing_before_the_export_and_settles_once_read():
    seller = Seller()
    before = seller.delivered()
    seller.by_slot[rest(1)][0]["status"] = "CANCELED"
    counts = seller.counts()
    compared = changes(seller, counts)
    compared._delivered = before
    compared.decide([])
    compared.export_created(Window(day(1), day(1)))
    # Killed before the window is read: the listing is pending, the old record still delivered.
    state = compared.state(resume=day(1), through=day(2))
    assert state["pending"][rest(1).key] != state["delivered"][rest(1).key]
    assert state["delivered"][rest(1).key] == before[rest(1)].to_state()
    # Read: the pending listing is what was delivered.
    state = compared.state(resume=None, through=day(2))
    assert rest(1).key not in state.get("pending", {})
    assert (
        state["delivered"][rest(1).key] == SlotRecord.of(seller.records(rest(1)).keys()).to_state()
    )


def test_a_slot_listed_only_after_its_export_was_created_is_not_kept():
    seller = Seller()
    counts = InvoiceCounts()
    compared = changes(seller, counts, last=day(4))
    compared._delivered = {}
    compared.export_created(Window(day(3), day(4)))  # nothing listed yet
    for slot in seller.by_slot:
        counts.slot_listed(slot.start, slot.end, seller.records(slot))
    state = compared.state(resume=None, through=day(4))
    assert rest(4).key not in state.get("delivered", {})  # the next sync compares it as unknown


def test_the_zone_is_learnt_from_invoices_at_the_edges_and_forgotten_on_a_contradiction():
    seller = Seller()
    counts = seller.counts()
    compared = changes(seller, counts)
    window = Window(day(1), day(1))
    compared.window_read(window, seller.ids(early(1)) | seller.ids(rest(1)))  # UTC's day
    assert compared.zone == UTC_DAYS
    compared.window_read(window, seller.ids(early(2)) | seller.ids(rest(1)))  # Brazil's day
    assert compared.zone is None
    assert compared.state(None, day(2)).get("exportDayZone") is None


def test_an_invoice_on_the_boundary_of_two_slots_says_nothing_of_the_zone():
    seller = Seller()
    # Two invoices at 03:00:00, listed in both slots (getInvoices' bounds are inclusive), in
    # the export of the day under either zone: not a vote for UTC's.
    boundary = [invoice(777 + n, format_datetime(rest(1).start)) for n in range(2)]
    seller.by_slot[early(1)] += boundary
    seller.by_slot[rest(1)] += boundary
    compared = changes(seller, seller.counts())
    ids = {invoice["id"] for invoice in boundary}
    compared.window_read(Window(day(1), day(1)), ids | seller.ids(rest(1)))
    assert compared.zone is None


def test_a_zone_that_is_not_one_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError) as error:
        read_records("invoice_items", {"exportDayZone": "Europe/Lisbon"})
    assert "has exportDayZone='Europe/Lisbon'" in error.value.message


def test_records_the_streams_do_not_agree_on_are_not_known():
    seller = Seller()
    a, b = seller.delivered(), seller.delivered()
    b[rest(1)] = SlotRecord.of([1, 2, 3])
    assert rest(1) not in merged([a, b]) and rest(2) in merged([a, b])
