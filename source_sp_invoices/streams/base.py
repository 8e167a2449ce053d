"""The shared SP-API stream: base URL, authentication, timeouts, errors and 429 waits."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, MutableMapping
from typing import Any

import requests
from airbyte_cdk.sources.message import InMemoryMessageRepository
from airbyte_cdk.sources.streams.http import HttpStream
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorHandler
from requests.auth import AuthBase

from source_sp_invoices import settings
from source_sp_invoices.config import Config, ConfigError
from source_sp_invoices.errors import SpApiErrorHandler, SpApiHttpClient, amazon_error, json_body
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
        self._schema: Mapping[str, Any] | None = None
        super().__init__(authenticator=authenticator, api_budget=self._budget)
        # The client HttpStream builds, but with Amazon's words when 429 retries run out.
        self._http_client = SpApiHttpClient(
            name=self.name,
            logger=self.logger,
            error_handler=self.get_error_handler(),
            api_budget=self._budget,
            authenticator=authenticator,
            use_cache=self.use_cache,
            backoff_strategy=self.get_backoff_strategy(),
            message_repository=InMemoryMessageRepository(),
        )

    def get_json_schema(self) -> Mapping[str, Any]:
        # The CDK asks for it with every record it converts: build it once per stream.
        if self._schema is None:
            self._schema = stream_schema(self.name)
        return self._schema

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


class IncrementalSpApiStream(SpApiStream, ABC):
    """A stream whose state is its own dict, checked when Airbyte hands it over.

    The CDK's CheckpointMixin reads `state` after every slice; a state that cannot be read is
    refused with a message rather than silently replaced by the start date.
    """

    state_checkpoint_interval = None  # state is saved per slice (window), never mid-page
    state_keys: tuple[str, ...] = ()  # every key this version writes in the stream's state

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._state: MutableMapping[str, Any] = {}
        super().__init__(*args, **kwargs)

    @property
    def state(self) -> MutableMapping[str, Any]:
        return self._state

    @state.setter
    def state(self, value: MutableMapping[str, Any]) -> None:
        self._state = dict(value or {})
        unknown = sorted(set(self._state) - set(self.state_keys))
        if unknown:
            # Another version's (or a hand-edited) state: using what is left of it could
            # restart from the start date or skip days, so it is refused, saying why.
            raise ConfigError(
                f"The saved state of stream `{self.name}` has the key(s) {', '.join(unknown)}, "
                f"which this version of the connector does not write (it writes "
                f"{', '.join(self.state_keys)}): it comes from another version or was edited. "
                "Fix the state or reset the stream; it is not replaced by the start date silently."
            )
        self.check_state(self._state)

    def check_state(self, state: Mapping[str, Any]) -> None:
        """Raise ConfigError (naming the key) if a saved state cannot be used."""


class PagedSpApiStream(IncrementalSpApiStream, ABC):
    """Paging by nextToken: later pages send only the marketplace and the token, because
    Amazon refuses a nextToken sent with the original filters."""

    @abstractmethod
    def first_page_params(self, stream_slice: Mapping[str, Any]) -> MutableMapping[str, Any]:
        """The query of the first page of a slice."""

    def request_params(
        self,
        stream_state: Mapping[str, Any] | None,
        stream_slice: Mapping[str, Any] | None = None,
        next_page_token: Mapping[str, Any] | None = None,
    ) -> MutableMapping[str, Any]:
        if next_page_token:
            return {"marketplaceId": self.config.marketplace_id, **next_page_token}
        assert stream_slice is not None
        return {"marketplaceId": self.config.marketplace_id, **self.first_page_params(stream_slice)}

    def next_page_token(self, response: requests.Response) -> Mapping[str, Any] | None:
        token = json_body(response).get("nextToken")
        return {"nextToken": token} if token else None
