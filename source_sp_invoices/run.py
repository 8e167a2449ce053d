"""The console script `source-sp-invoices`: the Airbyte protocol on stdin/stdout."""

from __future__ import annotations

import sys
from typing import Any

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import PRINT_BUFFER
from airbyte_cdk.models import ConnectorSpecification
from airbyte_cdk.sources.utils.schema_helpers import split_config

from source_sp_invoices.config import ConfigError, parse_config
from source_sp_invoices.source import SourceSpInvoices


class SpInvoicesEntrypoint(AirbyteEntrypoint):
    """The CDK's entrypoint, with the connector's own config check for `check`.

    The CDK checks a config against the spec before `check` with messages that name neither
    the field nor the form ("'XX' is not one of [...]"); parse_config names both, so `check`,
    `discover` and `read` give the same message for the same bad value.
    """

    @staticmethod
    def validate_connection(source_spec: ConnectorSpecification, config: Any) -> None:
        connector_config, _ = split_config(config)
        parse_config(connector_config)


def run(argv: list[str] | None = None) -> None:
    """Run one command. A config the user must fix ends in one error message naming the field,
    without the traceback the CDK's uncaught-exception hook would log first."""
    entrypoint = SpInvoicesEntrypoint(SourceSpInvoices())
    arguments = entrypoint.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        with PRINT_BUFFER:
            for message in entrypoint.run(arguments):
                print(f"{message}\n", end="")
    except ConfigError as error:
        # A fresh exception, never raised: its trace carries the message, not where it was found.
        ConfigError(error.message or str(error)).emit_message()
        sys.exit(1)
