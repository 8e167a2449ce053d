"""Pre-signed URLs are credentials: whoever holds one's query string can download the document
until it expires. Their secret parts join the CDK's secret filter, which masks them in every
log line, error message and stack trace the connector prints, before anything can print them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import requests
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets, filter_secrets

# The query parameters that authorize a download: S3's SigV4 signature, session token and
# credential (its access key id and scope), and their SigV2 counterparts. The rest (algorithm,
# date, expiry, signed headers) grant nothing and stay readable.
SECRET_PARAMETERS = frozenset(
    {
        "x-amz-signature",
        "x-amz-security-token",
        "x-amz-credential",
        "signature",
        "awsaccesskeyid",
    }
)
_SHORTEST = 8  # a shorter value would mask common words and numbers, not a credential
# Answers that may carry one: the rest are not parsed a second time.
_HINT = re.compile(rb"signature|security-token|credential", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s\"'<>\\]+")


def secret_parts(url: str) -> list[str]:
    """The secret values of a URL's query string, as written there and decoded (a message may
    quote either), and a credential's access key id alone."""
    parts = []
    for pair in urlsplit(url).query.replace("&amp;", "&").split("&"):  # XML escapes "&"
        name, _, value = pair.partition("=")
        name = unquote_plus(name).lower()
        if name not in SECRET_PARAMETERS:
            continue
        decoded = unquote_plus(value)
        parts += [value, decoded]
        if name == "x-amz-credential":
            parts.append(decoded.split("/")[0])
    return [part for part in dict.fromkeys(parts) if len(part) >= _SHORTEST]


def hide(url: str) -> None:
    """Add a pre-signed URL's secret parts to the CDK's secret filter (once each).

    The filter replaces each secret in every log line and error the connector prints (never in
    records); a year of documents adds a few thousand (a signature each, and the credential and
    token Amazon's URLs share). Measured with 5,000 secrets: about 0.8 ms a log line, 90 ms a
    100 KB --debug line, against a minute per document. Whether a part is there already is asked
    of the filter itself, not of a set of ours: the CDK's entrypoint replaces its list at each
    run, and a part must be added again then."""
    for part in secret_parts(url):
        if filter_secrets(part) != "****":  # not masked whole yet
            add_to_secrets(part)


def hide_in_answer(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A requests response hook: hide every pre-signed URL an answer's body carries, wherever
    it is in the JSON (or in the text, when it is not JSON)."""
    if kwargs.get("stream") or not _HINT.search(response.content or b""):
        return  # a streamed body is not read here, and the CDK does not log it either
    text = response.text
    try:
        strings = list(_strings(json.loads(text)))
    except ValueError:
        strings = [text]
    for string in strings:
        for url in _URL.findall(string):
            hide(url)


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document: keys and values, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
