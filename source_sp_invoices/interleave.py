"""Several message iterators read at the same time, one thread each, merged as they come.

The CDK's AbstractSource reads streams one after the other, but the streams of this connector
fall into groups whose operations have separate rate limits: getInvoices pages at one call every
ten seconds while getInvoicesDocument allows one call a minute. Reading the groups in threads
lets a sync take as long as its slowest group, not their sum. Each iterator keeps its own order
(a stream's records and states stay in sequence); a bounded queue keeps memory flat.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from airbyte_cdk.utils.traced_exception import AirbyteTracedException

T = TypeVar("T")
_END = object()
_PUT_TIMEOUT = 0.5  # how often a blocked producer checks whether the reader went away


def interleave(
    producers: Sequence[Callable[[], Iterator[T]]], max_queued: int = 256
) -> Iterator[T]:
    """Yield the items of every producer as they arrive; raise their errors once all ended."""
    items: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=max_queued)
    stopped = threading.Event()

    def put(entry: tuple[object, BaseException | None]) -> bool:
        while not stopped.is_set():
            try:
                items.put(entry, timeout=_PUT_TIMEOUT)
                return True
            except queue.Full:
                continue
        return False

    def produce(producer: Callable[[], Iterator[T]]) -> None:
        try:
            for item in producer():
                if not put((item, None)):
                    return  # the reader went away: stop reading
        except BaseException as error:  # handed to the reader, raised there
            put((_END, error))
            return
        put((_END, None))

    threads = [
        threading.Thread(target=produce, args=(producer,), name=f"read-{n}", daemon=True)
        for n, producer in enumerate(producers)
    ]
    for thread in threads:
        thread.start()
    errors: list[BaseException] = []
    running = len(threads)
    try:
        while running:
            item, error = items.get()
            if item is _END:
                running -= 1
                if error is not None:
                    errors.append(error)
                continue
            yield item  # type: ignore[misc]
    finally:
        stopped.set()
    if errors:
        raise _combined(errors)


def _combined(errors: list[BaseException]) -> BaseException:
    """One error for the caller: the only one, or the traced errors' messages together."""
    if len(errors) == 1:
        return errors[0]
    traced = [error for error in errors if isinstance(error, AirbyteTracedException)]
    if len(traced) != len(errors):
        return next(error for error in errors if not isinstance(error, AirbyteTracedException))
    return AirbyteTracedException(
        message=" ".join(error.message or str(error) for error in traced),
        internal_message=" ".join(error.internal_message or str(error) for error in traced),
        failure_type=traced[0].failure_type,
    )
