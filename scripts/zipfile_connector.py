"""`source-sp-invoices` with the standard library's zipfile in place of the hand-written reader.

For scripts/measure_readers.py --connector: the export pipeline's `stream_entries` is replaced,
in this process only, by "wait until the download is complete, then read the file with
zipfile.ZipFile" (scripts.measure_readers.zipfile_entries: same entries, same size bound, same
errors). Nothing in the package is changed. Arguments are those of `source-sp-invoices`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure_readers  # noqa: E402

_announced = False


def whole_then_zipfile(
    source: Any, skip: frozenset[str] = frozenset(), max_entry_bytes: int | None = None
) -> Iterator[Any]:
    """Every entry, read by zipfile once the whole document is on disk."""
    global _announced
    if not _announced:
        # straight to fd 2: the CDK's print buffer sends sys.stderr to stdout
        os.write(2, b"zipfile_connector: documents read by zipfile after the download\n")
        _announced = True
    file = source.whole()  # waits for the end of the download (CorruptDocument if it broke)
    # The download's temp file is unbuffered; zipfile reads a buffered view of it.
    with os.fdopen(os.dup(file.fileno()), "rb") as buffered:
        buffered.seek(0)
        yield from measure_readers.zipfile_entries(buffered, skip, max_entry_bytes)


def main() -> None:
    measure_readers.use_code_root()
    pipeline = measure_readers.pipeline_module()
    assert hasattr(pipeline, "stream_entries"), pipeline
    pipeline.stream_entries = whole_then_zipfile
    from source_sp_invoices.run import run

    run()


if __name__ == "__main__":
    main()
