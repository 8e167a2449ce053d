"""The console script `source-sp-invoices`: the Airbyte protocol on stdin/stdout."""

import sys

from airbyte_cdk.entrypoint import launch

from source_sp_invoices.source import SourceSpInvoices


def run() -> None:
    launch(SourceSpInvoices(), sys.argv[1:])
