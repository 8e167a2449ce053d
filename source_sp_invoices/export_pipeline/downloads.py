"""A document's bytes, readable while they are still arriving.

A download runs in a background thread into a temporary file at the network's speed, whatever
the speed of the destination, so the pre-signed connection never idles; the ZIP is read from the
same file as it grows. The download and the reading overlap instead of following each other, and
memory holds one chunk, not the document.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
from collections.abc import Iterable
from typing import IO, Protocol

from source_sp_invoices import settings
from source_sp_invoices.export_pipeline.zip_reader import CorruptDocument, GrowingZip


class DocumentSource(GrowingZip, Protocol):
    """A document ZIP as the pipeline holds it: readable while it grows, then closed."""

    @property
    def size(self) -> int:
        """Bytes received so far."""

    def close(self) -> None: ...


class BackgroundDownload:
    """A download written to a file by a thread and read from that file as it grows."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        # Closed by close(): the file outlives this call, read while the thread writes. It has
        # no name on disk, so it is gone once closed, even if the process is killed.
        self._file: IO[bytes] = tempfile.TemporaryFile(  # noqa: SIM115
            prefix="sp-invoices-", buffering=0
        )
        self._fd = self._file.fileno()
        self._written = 0
        self._done = False
        self._stop = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(
            target=self._download, args=(chunks,), name="document-download", daemon=True
        )
        self._thread.start()

    def _download(self, chunks: Iterable[bytes]) -> None:
        try:
            for chunk in chunks:
                if self._stop:
                    return
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self._fd, view) :]
                with self._changed:
                    self._written += len(chunk)
                    self._changed.notify_all()
        except BaseException as error:  # reported to the reader, which retries the document
            self._error = error
        finally:
            with self._changed:
                self._done = True
                self._changed.notify_all()
                if self._stop:  # the reader left first: the file is this thread's to close
                    self._file.close()

    def _wait_for(self, end: float) -> int:
        """Bytes written once `end` are, or once the download is over."""
        with self._changed:
            while self._written < end and not self._done:
                self._changed.wait(settings.REQUEST_TIMEOUT[1])
            return self._written

    def read_at(self, offset: int, size: int, at_least: int | None = None) -> bytes:
        needed = offset + (size if at_least is None else at_least)
        available = self._wait_for(needed)
        if available < needed and self._error is not None:
            self._fail()
        return os.pread(self._fd, max(0, min(size, available - offset)), offset)

    def whole(self) -> IO[bytes]:
        self._wait_for(math.inf)
        if self._error is not None:
            self._fail()
        self._file.seek(0)
        return self._file

    def _fail(self) -> None:
        error = self._error
        raise CorruptDocument(
            f"the download broke off after {self._written} bytes ({type(error).__name__})"
        ) from error

    @property
    def size(self) -> int:
        return self._written

    def close(self) -> None:
        """Stop the download; the file goes once the thread no longer writes to it."""
        with self._changed:
            self._stop = True
            if self._done:
                self._file.close()

    def __enter__(self) -> BackgroundDownload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
