"""Independent groups of streams read at the same time, merged without losing order or errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices.interleave import interleave


def test_every_item_arrives_once_and_each_producer_keeps_its_order():
    merged = list(interleave([lambda: iter(range(500)), lambda: iter(range(1000, 1300))]))
    assert sorted(merged) == [*range(500), *range(1000, 1300)]
    assert [n for n in merged if n < 1000] == list(range(500))
    assert [n for n in merged if n >= 1000] == list(range(1000, 1300))


def test_the_producers_run_at_the_same_time():
    second_started = threading.Event()

    def first() -> Iterator[str]:
        yield "first begins"
        # Read one after the other, the second could not start before the first ended.
        yield "saw the second" if second_started.wait(10) else "alone"

    def second() -> Iterator[str]:
        second_started.set()
        yield "second"

    assert "saw the second" in list(interleave([first, second], max_queued=1))


def test_an_error_is_raised_once_the_other_producers_finished():
    def failing() -> Iterator[int]:
        yield 1
        raise AirbyteTracedException(message="documents failed")

    merged: list[int] = []
    with pytest.raises(AirbyteTracedException, match="documents failed"):
        for item in interleave([failing, lambda: iter(range(10, 20))]):
            merged.append(item)
    assert sorted(merged) == [1, *range(10, 20)]  # nothing of the healthy group is lost


def test_errors_of_several_producers_are_reported_together():
    def failing(name: str):  # type: ignore[no-untyped-def]
        def produce() -> Iterator[int]:
            raise AirbyteTracedException(
                message=f"{name} failed.", failure_type=FailureType.config_error
            )
            yield 0

        return produce

    with pytest.raises(AirbyteTracedException) as caught:
        list(interleave([failing("invoices"), failing("documents")]))
    assert caught.value.message in (
        "invoices failed. documents failed.",
        "documents failed. invoices failed.",
    )
    assert caught.value.failure_type == FailureType.config_error


def test_producers_stop_when_the_reader_goes_away():
    produced: list[int] = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    merged = interleave([endless], max_queued=2)
    assert next(merged) == 0
    merged.close()
    threads = [t for t in threading.enumerate() if t.name.startswith("read-")]
    for thread in threads:
        thread.join(5)
    assert not any(t.is_alive() for t in threads)
    assert len(produced) < 10  # it stopped instead of filling memory
