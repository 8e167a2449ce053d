"""The connector's streams, one module per stream family."""

from source_sp_invoices.streams.attributes import InvoiceAttributes
from source_sp_invoices.streams.documents import InvoiceDocuments, InvoiceItems
from source_sp_invoices.streams.invoice_exports import InvoiceExports
from source_sp_invoices.streams.invoices import Invoices

__all__ = ["InvoiceAttributes", "InvoiceDocuments", "InvoiceExports", "InvoiceItems", "Invoices"]
