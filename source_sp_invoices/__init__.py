"""Airbyte source for the Amazon SP-API Invoices API (Brazilian FBA NF-e invoices)."""

from source_sp_invoices.source import SourceSpInvoices

__all__ = ["SourceSpInvoices"]
