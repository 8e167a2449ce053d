"""NF-e 4.00 XML → header and item records: one header per invoice, one item per `det`.

Modules: convert (exact values), spec (field-spec language), fields (the tables), parser.
"""

from __future__ import annotations

from source_sp_invoices.nfe.convert import NfeError
from source_sp_invoices.nfe.fields import (
    HEADER_COLUMNS,
    INSTALLMENT_COLUMNS,
    ITEM_COLUMNS,
    PAYMENT_COLUMNS,
    VOLUME_COLUMNS,
)
from source_sp_invoices.nfe.parser import NfeParser, ParsedNfe
from source_sp_invoices.nfe.spec import NAMESPACE

__all__ = [
    "HEADER_COLUMNS",
    "INSTALLMENT_COLUMNS",
    "ITEM_COLUMNS",
    "NAMESPACE",
    "PAYMENT_COLUMNS",
    "VOLUME_COLUMNS",
    "NfeError",
    "NfeParser",
    "ParsedNfe",
]
