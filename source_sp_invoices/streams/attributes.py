"""invoice_attributes: the options of each invoice attribute (getInvoicesAttributes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import requests

from source_sp_invoices.http.responses import json_body
from source_sp_invoices.streams.base import SpApiStream


class InvoiceAttributes(SpApiStream):
    """One record per option: attribute (the filter it applies to), value and description."""

    name = "invoice_attributes"
    primary_key = ["attribute", "value"]

    def path(self, **kwargs: Any) -> str:
        return "attributes"

    def request_params(self, *args: Any, **kwargs: Any) -> MutableMapping[str, Any]:
        return {"marketplaceId": self.config.marketplace_id}

    def next_page_token(self, response: requests.Response) -> Mapping[str, Any] | None:
        return None

    def parse_response(
        self, response: requests.Response, **kwargs: Any
    ) -> Iterable[Mapping[str, Any]]:
        attributes = json_body(response).get("invoicesAttributes") or {}
        for key, options in attributes.items():
            # "invoiceStatusOptions" -> "invoiceStatus": the name of the matching filter
            attribute = key[: -len("Options")] if key.endswith("Options") else key
            for option in options or []:
                yield {
                    "attribute": attribute,
                    "value": option.get("value"),
                    "description": option.get("description"),
                }
