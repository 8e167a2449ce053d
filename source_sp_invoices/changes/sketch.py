"""A fixed-size record of a set of invoices that tells, later, which invoices are new or changed.

Each invoice as getInvoices lists it becomes an element: a 48-bit fingerprint of its id and
every field (status, errorCode, govResponse...), so that any change of the record is another
element. A slot's elements are kept as an invertible Bloom lookup table (Goodrich and
Mitzenmacher, 2011): CELLS cells, each holding how many elements fell in it, the XOR of their
fingerprints and the XOR of a check of each. Subtracting the table of what was delivered from the
table of what is listed now leaves only the elements that differ, which are peeled off one pure
cell at a time: the new and changed invoices, and the versions they replaced.

The size is fixed whatever the number of invoices (CELLS * 10 bytes: 480 characters of base64 in
the state, none for a slot without invoices), which is what lets the state grow with the days
looked back at, not with the invoices.
Up to a dozen or so differences are told with high probability; more, and the table says it
cannot tell (None), never a wrong answer: its caller then treats every invoice of the slot as
changed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Collection, Iterable, Mapping
from typing import Any

CELLS = 36  # three hash functions over three sub-tables of 12 cells
_PER_TABLE = CELLS // 3
_KEY_BITS = 48
_KEY_MASK = (1 << _KEY_BITS) - 1
_MASK64 = (1 << 64) - 1
_CELL = struct.Struct(">hHI")  # count (mod 2^16), check, then the key's low 32 bits
_KEY_HIGH = struct.Struct(">H")  # the key's high 16 bits
_CELL_BYTES = _CELL.size + _KEY_HIGH.size
_ENCODED_BYTES = CELLS * _CELL_BYTES


def element_of(record: Mapping[str, Any]) -> int:
    """An invoice record's fingerprint: any change of any field gives another one."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=6).digest()
    return int.from_bytes(digest, "big")


def _mix(value: int) -> int:
    """SplitMix64's finaliser: a well-spread 64-bit function of a key."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def _cells(key: int) -> tuple[int, int, int]:
    """The three cells of a key, one in each sub-table (so never the same cell twice)."""
    return (
        _mix(key ^ 0x1111) % _PER_TABLE,
        _PER_TABLE + _mix(key ^ 0x2222) % _PER_TABLE,
        2 * _PER_TABLE + _mix(key ^ 0x3333) % _PER_TABLE,
    )


def _check(key: int) -> int:
    return _mix(key ^ 0xC0FFEE) & 0xFFFF


def _signed16(value: int) -> int:
    """A count kept modulo 2^16, read as the small signed difference it stands for."""
    value &= 0xFFFF
    return value - 0x10000 if value >= 0x8000 else value


class Sketch:
    """The invertible Bloom lookup table of a set of elements (see the module's docstring)."""

    __slots__ = ("_counts", "_keys", "_checks")

    def __init__(self) -> None:
        self._counts = [0] * CELLS
        self._keys = [0] * CELLS
        self._checks = [0] * CELLS

    @classmethod
    def of(cls, elements: Iterable[int]) -> Sketch:
        sketch = cls()
        sketch.add(elements)
        return sketch

    def add(self, elements: Iterable[int]) -> None:
        """Insert elements (a table holds a multiset: insert each once)."""
        counts, keys, checks = self._counts, self._keys, self._checks
        for element in elements:
            key = element & _KEY_MASK
            check = _check(key)
            for cell in _cells(key):
                counts[cell] = (counts[cell] + 1) & 0xFFFF
                keys[cell] ^= key
                checks[cell] ^= check

    def copy(self) -> Sketch:
        twin = Sketch()
        twin._counts, twin._keys, twin._checks = (
            list(self._counts),
            list(self._keys),
            list(self._checks),
        )
        return twin

    def encode(self) -> str:
        """The table as base64 text, for the state ("" for an empty one: a quiet slot)."""
        if not any(self._counts) and not any(self._keys) and not any(self._checks):
            return ""
        data = bytearray()
        for count, key, check in zip(self._counts, self._keys, self._checks, strict=True):
            data += _KEY_HIGH.pack(key >> 32)
            data += _CELL.pack(_signed16(count), check, key & 0xFFFFFFFF)
        return base64.b64encode(bytes(data)).decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Sketch:
        """A table from its text (ValueError when the text is not one)."""
        if text == "":
            return cls()
        data = base64.b64decode(text.encode("ascii"), validate=True)
        if len(data) != _ENCODED_BYTES:
            raise ValueError(len(data))  # not the size of a sketch
        sketch = cls()
        for cell in range(CELLS):
            offset = cell * _CELL_BYTES
            (high,) = _KEY_HIGH.unpack_from(data, offset)
            count, check, low = _CELL.unpack_from(data, offset + _KEY_HIGH.size)
            sketch._counts[cell] = count & 0xFFFF
            sketch._keys[cell] = (high << 32) | low
            sketch._checks[cell] = check
        return sketch

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sketch):
            return NotImplemented
        return (self._counts, self._keys, self._checks) == (
            other._counts,
            other._keys,
            other._checks,
        )

    def __hash__(self) -> int:  # pragma: no cover - mutable; defined with __eq__ for clarity
        raise TypeError("a Sketch is mutable")

    def new_since(self, current: Collection[int], delivered_size: int) -> set[int] | None:
        """The elements of `current` this table (of `delivered_size` elements) does not hold:
        the invoices new or changed since it was taken. None when the difference is too large
        to peel, or does not add up: then nothing can be said of which ones changed."""
        keys = {element & _KEY_MASK for element in current}
        now = Sketch.of(keys)
        counts = [_signed16(a - b) for a, b in zip(now._counts, self._counts, strict=True)]
        xors = [a ^ b for a, b in zip(now._keys, self._keys, strict=True)]
        checks = [a ^ b for a, b in zip(now._checks, self._checks, strict=True)]
        added: set[int] = set()
        removed: set[int] = set()
        pure = [cell for cell in range(CELLS) if counts[cell] in (1, -1)]
        while pure:
            cell = pure.pop()
            count, key = counts[cell], xors[cell]
            if count not in (1, -1) or checks[cell] != _check(key):
                continue
            (added if count == 1 else removed).add(key)
            check = _check(key)
            for other in _cells(key):
                counts[other] -= count
                xors[other] ^= key
                checks[other] ^= check
                if counts[other] in (1, -1):
                    pure.append(other)
        if any(counts) or any(xors) or any(checks):
            return None  # more differences than the table can tell apart
        if not added <= keys or len(keys) - delivered_size != len(added) - len(removed):
            return None  # a peel that does not add up: never guess
        return {element for element in current if element & _KEY_MASK in added}
