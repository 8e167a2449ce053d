"""The shared SP-API stream: base URL, authentication, timeouts, errors and 429 waits."""

from __future__ import annotations

from abc import ABC
from collections.abc import Mapping
from typing import Any

import requests
from airbyte_cdk.sources.streams.http import HttpStream
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorHandler
from requests.auth import AuthBase

from source_sp_invoices import settings
from source_sp_invoices.config import Config
from source_sp_invoices.errors import SpApiErrorHandler, amazon_error
from source_sp_invoices.json_schemas import stream_schema
from source_sp_invoices.rate_limits import RateLimitBackoff, RateLimits, SpApiBudget


class SpApiStream(HttpStream, ABC):
    """Everything the Invoices API streams share; each subclass names its path and records."""

    def __init__(
        self,
        config: Config,
        authenticator: AuthBase,
        rate_limits: RateLimits,
        budget: SpApiBudget | None = None,
        max_retries: int = settings.MAX_RETRIES,
    ) -> None:
        # get_error_handler() and get_backoff_strategy() run inside HttpStream.__init__.
        self.config = config
        self._rate_limits = rate_limits
        self._max_retries = max_retries
        self._budget = budget or SpApiBudget(rate_limits)
        super().__init__(authenticator=authenticator, api_budget=self._budget)

    def get_json_schema(self) -> Mapping[str, Any]:
        return stream_schema(self.name)

    @property
    def url_base(self) -> str:
        return f"{self.config.api_endpoint}/{settings.API_VERSION_PATH}/"

    def request_kwargs(self, *args: Any, **kwargs: Any) -> Mapping[str, Any]:
        return {"timeout": settings.REQUEST_TIMEOUT}

    def get_error_handler(self) -> ErrorHandler | None:
        return SpApiErrorHandler(self.logger, self._max_retries)

    def get_backoff_strategy(self) -> BackoffStrategy | None:
        return RateLimitBackoff(self._rate_limits)

    def get_error_display_message(self, exception: BaseException) -> str | None:
        if isinstance(exception, requests.HTTPError) and exception.response is not None:
            return amazon_error(exception.response)
        return super().get_error_display_message(exception)
