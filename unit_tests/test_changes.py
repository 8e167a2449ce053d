"""Change detection: the slot grid, the sketch that tells which invoices changed, the records a
state keeps, and the `invoices` stream emitting only what changed since the last sync."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.state_builder import StateBuilder

from source_sp_invoices import SourceSpInvoices
from source_sp_invoices.changes.delivered import (
    SlotRecord,
    compare,
    read_slot_records,
    write_slot_records,
)
from source_sp_invoices.changes.sketch import CELLS, Sketch, element_of
from source_sp_invoices.changes.slots import (
    Slot,
    listing_windows,
    slot_of,
    slots_of_days,
    within_one_slot,
)
from source_sp_invoices.config import ConfigError
from source_sp_invoices.dates import parse_datetime
from unit_tests.conftest import API_URL
from unit_tests.test_streams import catalog, invoice, records_of, states_of


def at(text: str) -> datetime:
    return parse_datetime(text)


# The grid.


def test_a_day_has_two_slots_each_in_one_export_day_under_either_zone():
    early, rest = slots_of_days(date(2024, 7, 2), date(2024, 7, 2))
    assert (early.key, rest.key) == ("2024-07-02T00", "2024-07-02T03")
    assert (early.end, rest.end) == (at("2024-07-02T03:00:00Z"), at("2024-07-03T00:00:00Z"))
    # 00:00-03:00Z is the UTC day's, and the Brazilian day before's (UTC-3).
    assert early.export_days == (date(2024, 7, 1), date(2024, 7, 2))
    assert rest.export_days == (date(2024, 7, 2),)
    assert slot_of(at("2024-07-02T02:59:59Z")) == early
    assert slot_of(at("2024-07-02T03:00:00Z")) == rest
    assert Slot.from_key("2024-07-02T03") == rest


@pytest.mark.parametrize("key", ["2024-07-02T01", "2024-07-02", "2024-7-2T00", "yesterday"])
def test_a_slot_key_that_is_not_the_start_of_a_slot_is_refused(key):
    with pytest.raises(ValueError):
        Slot.from_key(key)


def test_listing_windows_cover_the_range_and_lie_in_one_slot_where_aligned():
    begin, end = at("2024-01-01T05:00:00Z"), at("2024-01-20T15:30:00Z")
    aligned = [
        (at("2024-01-16T00:00:00Z"), end),
        (at("2024-01-03T00:00:00Z"), at("2024-01-04T00:00:00Z")),
    ]
    cut = at("2024-01-18T10:00:00Z")
    windows = list(listing_windows(begin, end, timedelta(days=7), aligned, [cut]))
    assert windows[0][0] == begin and windows[-1][1] == end
    assert all(a < b and b == c for (a, b), (c, _) in zip(windows, windows[1:], strict=False))
    for low, high in aligned:
        inside = [w for w in windows if low <= w[0] and w[1] <= high]
        assert inside and all(within_one_slot(*w) for w in inside)
        assert sum((b - a for a, b in inside), timedelta()) == high - low
    assert any(w[1] == cut for w in windows)
    assert all(b - a <= timedelta(days=7) for a, b in windows)


# The sketch.


def test_a_sketch_is_a_fixed_size_whatever_the_invoices():
    small = Sketch.of([1, 2, 3]).encode()
    large = Sketch.of(random.Random(1).getrandbits(48) for _ in range(100_000)).encode()
    assert len(small) == len(large) == 4 * CELLS * 10 // 3  # base64 of 10 bytes a cell
    assert Sketch.decode(large) == Sketch.decode(large)
    assert Sketch().encode() == "" and Sketch.decode("") == Sketch()  # a quiet slot: nothing


@pytest.mark.parametrize("seed", range(200))
def test_a_sketch_tells_exactly_which_invoices_are_new_or_changed_or_that_it_cannot_tell(seed):
    rng = random.Random(seed)
    before = [rng.getrandbits(48) for _ in range(rng.randint(0, 400))]
    now = list(before)
    changed = rng.randint(0, min(len(now), 12))
    for index in rng.sample(range(len(now)), changed):
        now[index] = rng.getrandbits(48)  # a status changed: another fingerprint
    gone = rng.randint(0, 2) if len(now) > 20 else 0
    del now[:gone]
    added = [rng.getrandbits(48) for _ in range(rng.randint(0, 10))]
    now += added
    truth = set(now) - set(before)
    told = Sketch.of(before).new_since(now, len(before))
    assert told is None or told == truth  # never a wrong answer
    if len(truth) + changed + gone <= 4:
        assert told == truth  # a few differences are always told


def test_a_sketch_says_when_it_cannot_tell():
    before = list(range(1000, 1300))
    assert Sketch.of(before).new_since(list(range(2000, 2300)), 300) is None


def test_an_element_is_any_change_of_any_field_of_the_record():
    record = invoice(1, "2024-01-02T10:00:00Z")
    assert element_of(record) == element_of(dict(reversed(record.items())))
    for field, value in [("status", "CANCELED"), ("errorCode", "204"), ("govResponse", "x")]:
        assert element_of({**record, field: value}) != element_of(record)


# The records a state keeps.


def test_slot_records_survive_the_state_and_compare():
    elements = [element_of(invoice(n, "2024-01-02T10:00:00Z")) for n in range(50)]
    records = {Slot.from_key("2024-01-02T03"): SlotRecord.of(elements, at("2024-01-02T12:00:00Z"))}
    saved = write_slot_records(records)
    assert set(saved["2024-01-02T03"]) == {"invoices", "sketch", "until"}
    read_back = read_slot_records("invoices", {"delivered": saved}, "delivered")
    record = read_back[Slot.from_key("2024-01-02T03")]
    assert record.same(records[Slot.from_key("2024-01-02T03")])
    assert not compare(record, elements).changed
    changed = element_of(invoice(7, "2024-01-02T10:00:00Z", status="CANCELED"))
    comparison = compare(record, [*elements[:7], changed, *elements[8:]])
    assert comparison.changed and comparison.new == {changed}
    assert compare(None, elements).new is None  # nothing known: all of it counts as changed


@pytest.mark.parametrize(
    "saved",
    [
        [],
        {"2024-01-02T01": {"invoices": 1, "sketch": Sketch().encode()}},
        {"2024-01-02T00": {"invoices": -1, "sketch": Sketch().encode()}},
        {"2024-01-02T00": {"invoices": 1, "sketch": "not base64!"}},
        {"2024-01-02T00": {"invoices": 1, "sketch": "AAAA"}},
        {"2024-01-02T00": {"invoices": 1, "sketch": Sketch().encode(), "until": "soon"}},
        {"2024-01-02T00": {"invoices": 1, "sketch": Sketch().encode(), "extra": 1}},
    ],
)
def test_a_slot_record_that_cannot_be_read_is_a_config_error_naming_the_key(saved):
    with pytest.raises(ConfigError) as error:
        read_slot_records("invoices", {"delivered": saved}, "delivered")
    assert "The saved state of stream `invoices` has delivered=" in error.value.message
    assert "remove delivered from it" in error.value.message


# The `invoices` stream against a seller whose invoices change between syncs.


class Seller:
    """getInvoices over a list of invoices filtered on `date`, both bounds included."""

    def __init__(self, invoices: list[dict[str, Any]]) -> None:
        self.invoices = invoices
        self.calls = 0

    def answer(self, request, context) -> dict[str, Any]:
        self.calls += 1
        start = at(request.qs["datestart"][0].upper())
        end = at(request.qs["dateend"][0].upper())
        listed = [i for i in self.invoices if start <= at(i["date"]) <= end]
        return {"invoices": sorted(listed, key=lambda i: (i["date"], i["id"]))}


def busy_days(first: date, days: int, per_day: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    invoices = []
    for day in range(days):
        for _ in range(per_day):
            moment = datetime.combine(first + timedelta(days=day), datetime.min.time(), UTC)
            moment += timedelta(seconds=rng.randrange(86_400))
            invoices.append(invoice(len(invoices), moment.strftime("%Y-%m-%dT%H:%M:%SZ")))
    return invoices


def sync(config, seller_state: dict[str, Any] | None):
    state = None
    if seller_state is not None:
        state = StateBuilder().with_stream_state("invoices", seller_state).build()
    output = read(SourceSpInvoices(), config, catalog("invoices", SyncMode.incremental), state)
    assert not output.errors, output.errors
    return records_of(output, "invoices"), states_of(output)[-1] if states_of(output) else None


def test_an_incremental_sync_emits_only_new_and_changed_invoices(lwa, requests_mock, config):
    seller = Seller(busy_days(date(2024, 1, 1), days=14, per_day=60, seed=1))
    requests_mock.get(f"{API_URL}/invoices", json=seller.answer)
    records, state = sync(config, None)
    assert len(records) == len(seller.invoices) == 840
    # Nothing changed: the lookback days are listed again, nothing is emitted.
    again, state = sync(config, state)
    assert again == []
    # A late invoice at 01:30 on a lookback day, a cancellation on another.
    late = invoice(9001, "2024-01-13T01:30:00Z")
    seller.invoices.append(late)
    canceled = next(i for i in seller.invoices if i["date"].startswith("2024-01-12"))
    canceled["status"] = "CANCELED"
    changed, state = sync(config, state)
    assert sorted(r["id"] for r in changed) == sorted([late["id"], canceled["id"]])
    assert next(r for r in changed if r["id"] == canceled["id"])["status"] == "CANCELED"
    quiet, state = sync(config, state)
    assert quiet == []
    assert len(str(state)) < 6000  # a few KB, whatever the invoices


def test_an_hourly_schedule_emits_each_invoice_once(lwa, requests_mock, config):
    """The last slot is listed up to the end of each sync; the next lists the rest as new."""
    seller = Seller(busy_days(date(2024, 1, 1), days=15, per_day=80, seed=2))
    requests_mock.get(f"{API_URL}/invoices", json=seller.answer)
    end = at("2024-01-14T00:00:00Z")
    emitted: list[str] = []
    state = None
    for _ in range(30):  # a day and a quarter of hourly syncs
        config["replication_end_date"] = end.strftime("%Y-%m-%dT%H:%M:%SZ")
        records, state = sync(config, state)
        emitted += [r["id"] for r in records]
        end += timedelta(hours=1)
    listed = [i["id"] for i in seller.invoices if at(i["date"]) <= end - timedelta(hours=1)]
    assert sorted(emitted) == sorted(listed)  # each once: none again, none missing


def test_a_sync_that_cannot_tell_which_changed_emits_the_whole_slot(lwa, requests_mock, config):
    seller = Seller(busy_days(date(2024, 1, 1), days=14, per_day=60, seed=3))
    requests_mock.get(f"{API_URL}/invoices", json=seller.answer)
    _, state = sync(config, None)
    day = [i for i in seller.invoices if "2024-01-13T03" <= i["date"] < "2024-01-14"]
    for record in day[:40]:
        record["status"] = "CANCELED"
    changed, _ = sync(config, state)
    assert {r["id"] for r in changed} == {r["id"] for r in day}  # more, never less


def test_every_day_emits_the_whole_lookback_as_before(lwa, requests_mock, config):
    config.update(lookback_exports="every_day")
    seller = Seller(busy_days(date(2024, 1, 1), days=14, per_day=60, seed=4))
    requests_mock.get(f"{API_URL}/invoices", json=seller.answer)
    _, state = sync(config, None)
    assert "delivered" not in state
    again, _ = sync(config, state)
    assert {r["id"] for r in again} == {
        i["id"] for i in seller.invoices if i["date"] >= "2024-01-12"
    }


def test_a_state_0_5_0_wrote_is_read_on_and_the_lookback_emitted_once(lwa, requests_mock, config):
    seller = Seller(busy_days(date(2024, 1, 1), days=14, per_day=60, seed=5))
    requests_mock.get(f"{API_URL}/invoices", json=seller.answer)
    first, state = sync(config, {"date": "2024-01-15T00:00:00Z"})  # as 0.5.0 left it
    assert {r["id"] for r in first} == {
        i["id"] for i in seller.invoices if i["date"] >= "2024-01-12"
    }
    assert "delivered" in state
    second, _ = sync(config, state)
    assert second == []
