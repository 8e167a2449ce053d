"""The JSON schema of each stream, as shipped in schemas/.

invoice_documents carries the NF-e header columns, which live in their own file
(nfe_header_properties.json) so that the parser's columns are described once.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def _load(name: str) -> dict[str, Any]:
    text = resources.files("source_sp_invoices").joinpath(f"schemas/{name}.json").read_text("utf-8")
    return json.loads(text)


def stream_schema(stream: str) -> dict[str, Any]:
    """A fresh copy of the stream's schema, the NF-e header merged into invoice_documents."""
    schema = json.loads(json.dumps(_load(stream)))
    if stream == "invoice_documents":
        schema["properties"].update(_load("nfe_header_properties"))
    return schema
