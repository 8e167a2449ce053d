"""Reading Amazon's answers: the JSON body (decoded once), Amazon's own words for a failure, and
which operation and host an answer or a network failure belongs to."""

from __future__ import annotations

import weakref
from typing import Any
from urllib.parse import urlsplit

import requests

from source_sp_invoices.http.rate_limits import operation_of


def amazon_error(response: requests.Response) -> str:
    """Amazon's own words for a failed request: code, message, details and request id."""
    parts = []
    try:
        errors = json_body(response).get("errors") or []
    except (ValueError, AttributeError):
        errors = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            text = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
            if error.get("details"):
                text += f" ({error['details']})"
            parts.append(text)
    if not parts:
        parts.append(response.text[:300] or response.reason or "no body")
    request_id = response.headers.get("x-amzn-RequestId", "unknown")
    return f"{'; '.join(parts)} [HTTP {response.status_code}, x-amzn-RequestId {request_id}]"


def operation_name(response: requests.Response) -> str:
    """The SP-API operation a response answers, for messages ("SP-API" if unknown)."""
    request = response.request
    found = operation_of(request.method or "", request.url or "") if request else None
    return found or "SP-API"


def host_of(error: requests.RequestException) -> str:
    """The host a failed request was sent to, for messages that say where the network failed."""
    url = getattr(error.request, "url", None) or ""
    return host_and_port(url) or "the SP-API endpoint"


def host_and_port(url: str) -> str:
    """A URL's host and port for a message: never a user name or password it may carry."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address, bracketed as in a URL
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if host and port else host


def json_body(response: requests.Response) -> Any:
    """The decoded JSON body, decoded once per response (the error handler, the records and
    the next page token all read it); ValueError if it is not JSON."""
    body = _decoded.get(response, _UNSET)
    if body is _UNSET:
        body = response.json()
        _decoded[response] = body
    return body


# Bodies decoded so far, forgotten with their response (kept beside it, not inside it).
_decoded: weakref.WeakKeyDictionary[requests.Response, Any] = weakref.WeakKeyDictionary()
_UNSET = object()


def is_json(response: requests.Response) -> bool:
    try:
        json_body(response)
    except ValueError:
        return False
    return True
