"""Text of an NF-e element → exact column value, and the errors that say what is wrong where.

Values are exact. A decimal of at most 15 significant digits becomes the float whose shortest
repr is the XML's value (a double holds any such decimal); one with more digits is refused
(NfeError) rather than rounded. Decimals that may exceed a double stay decimal strings as
written. The converters raise ValueError on invalid text; the spec reader turns it into an
NfeError naming the element and its line (`where`, `reason`).
"""

from __future__ import annotations

import re
from typing import Any

MAX_FLOAT_DIGITS = 15  # every decimal of up to 15 significant digits round-trips via a double
_DECIMAL = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*").fullmatch
# The match of an integer's text (blanks and a sign allowed, ASCII digits only), else None.
match_integer = re.compile(r"\s*[+-]?[0-9]+\s*").fullmatch


class NfeError(Exception):
    """The XML is not a readable NF-e; the message says what is wrong and where."""


def number(text: str) -> float:
    """A decimal as the float whose shortest repr is its value (at most 15 significant digits).

    A double holds any decimal of up to 15 significant digits so that repr() gives it back;
    a longer one (beyond the NF-e types of such fields) is refused instead of being rounded.
    """
    if _DECIMAL(text) is None:
        raise ValueError(f"{text!r} is not a decimal number")
    if len(text) > MAX_FLOAT_DIGITS:  # may hold more significant digits than a double
        digits = text.strip().lstrip("+-").replace(".", "").strip("0")
        if len(digits) > MAX_FLOAT_DIGITS:
            raise ValueError(
                f"{text!r} has {len(digits)} significant digits; at most "
                f"{MAX_FLOAT_DIGITS} fit a JSON number exactly"
            )
    return float(text)


def decimal_text(text: str) -> str:
    """A decimal kept as its text (checked, surrounding blanks removed)."""
    if _DECIMAL(text) is None:
        raise ValueError(f"{text!r} is not a decimal number")
    return text.strip()


def integer(text: str) -> int:
    """An integer (ASCII digits only)."""
    if match_integer(text) is None:
        raise ValueError(f"{text!r} is not an integer")
    return int(text)


def reason(error: ValueError, text: str) -> str:
    """The converters' messages; float()'s own message is replaced by a plain one."""
    message = str(error)
    if message.startswith("could not convert"):
        return f"{text!r} is not a decimal number"
    return message


def where(element: Any) -> str:
    """Name an element and its line for an error message."""
    tag = element.tag
    name = tag.rpartition("}")[2] if isinstance(tag, str) else str(tag)
    return f"<{name}> at line {element.sourceline}"
