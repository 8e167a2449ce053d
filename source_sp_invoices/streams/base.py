"""The shared SP-API stream: base URL, authentication, timeouts, errors and 429 waits."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.message import InMemoryMessageRepository
from airbyte_cdk.sources.streams.http import HttpStream
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy
from airbyte_cdk.utils.traced_exception import AirbyteTracedException
from requests.auth import AuthBase

from source_sp_invoices import settings
from source_sp_invoices.config import Config, ConfigError
from source_sp_invoices.http.errors import SpApiErrorHandler, SpApiHttpClient
from source_sp_invoices.http.rate_limits import RateLimitBackoff, RateLimits, SpApiBudget
from source_sp_invoices.http.responses import amazon_error, json_body, operation_name
from source_sp_invoices.json_schemas import stream_schema


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
        self.rate_limits = rate_limits
        self._max_retries = max_retries
        self.budget = budget or SpApiBudget(rate_limits)
        self._schema: Mapping[str, Any] | None = None
        super().__init__(authenticator=authenticator, api_budget=self.budget)
        # The client HttpStream builds, but with Amazon's words when 429 retries run out.
        self._http_client = SpApiHttpClient(
            name=self.name,
            logger=self.logger,
            error_handler=self.get_error_handler(),
            api_budget=self.budget,
            authenticator=authenticator,
            use_cache=self.use_cache,
            backoff_strategy=self.get_backoff_strategy(),
            message_repository=InMemoryMessageRepository(),
            stop_sync_on_rate_limit=config.stop_sync_on_rate_limit,
        )

    @property
    def http_client(self) -> SpApiHttpClient:
        """The CDK client this stream sends its requests with (retries, errors, budget)."""
        return self._http_client

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

    def get_error_handler(self) -> SpApiErrorHandler:
        return SpApiErrorHandler(self.logger, self._max_retries)

    def get_backoff_strategy(self) -> BackoffStrategy | None:
        return RateLimitBackoff(self.rate_limits)

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
    state_keys: tuple[str, ...] = ()  # every key this version reads in the stream's state

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
                f"which this version of the connector does not read (it reads "
                f"{', '.join(self.state_keys)}): it comes from another version or was edited. "
                "Fix the state or reset the stream; it is not replaced by the start date silently."
            )
        self.check_state(self._state)

    def check_state(self, state: Mapping[str, Any]) -> None:
        """Raise ConfigError (naming the key) if a saved state cannot be used."""


class PagedSpApiStream(IncrementalSpApiStream, ABC):
    """Paging by nextToken, under either reading of the model.

    The model's nextToken parameter says: "call the operation with this token and include the
    same arguments as the call that produced the token"; its own sandbox example answers 400
    with "Specifying nextToken with any other parameters will cause the request to fail."
    Later pages start with the token alone (and the marketplace); a 400 on a later page (the
    error handler lets it through) switches to the first page's arguments with the token, and
    that page is asked again. The reading that works is kept for the rest of the sync, and a
    later page refused under both fails quoting Amazon. Never more than one switch.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token_with_arguments = False  # the reading in use for later pages
        self._switched = False

    @abstractmethod
    def first_page_params(self, stream_slice: Mapping[str, Any]) -> MutableMapping[str, Any]:
        """The query of the first page of a slice."""

    def request_params(
        self,
        stream_state: Mapping[str, Any] | None,
        stream_slice: Mapping[str, Any] | None = None,
        next_page_token: Mapping[str, Any] | None = None,
    ) -> MutableMapping[str, Any]:
        assert stream_slice is not None
        marketplace = {"marketplaceId": self.config.marketplace_id}
        first = {**marketplace, **self.first_page_params(stream_slice)}
        if not next_page_token:
            return first
        if self._token_with_arguments:
            return {**first, **next_page_token}
        return {**marketplace, **next_page_token}

    def next_page_token(self, response: requests.Response) -> Mapping[str, Any] | None:
        if response.status_code == 400:  # a later page refused: see the class docstring
            return self._other_reading(response)
        token = json_body(response).get("nextToken")
        return {"nextToken": token} if token else None

    def _other_reading(self, response: requests.Response) -> Mapping[str, Any]:
        operation = operation_name(response)
        sent = parse_qs(urlsplit(response.request.url or "").query).get("nextToken")
        if self._switched or not sent:
            raise AirbyteTracedException(
                message=f"Amazon rejected a later page of {operation} sent with nextToken both "
                f"alone and with the first page's arguments: {amazon_error(response)}",
                failure_type=FailureType.system_error,
            )
        self._switched = True
        self._token_with_arguments = not self._token_with_arguments
        now = "with the first page's arguments" if self._token_with_arguments else "alone"
        self.logger.info(
            f"{operation} refused a later page ({amazon_error(response)}): sending nextToken "
            f"{now} from now on, as the other reading of the API model says."
        )
        return {"nextToken": sent[0]}

    def parse_response(self, response: requests.Response, **kwargs: Any) -> Iterable[Mapping]:
        """The records of a page; none from a refused later page (it is asked again)."""
        if response.status_code == 400:
            return []
        return self.records_of(json_body(response))

    @abstractmethod
    def records_of(self, body: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        """The records of one page's JSON body."""
