"""Pre-signed URLs: which parts are credentials, and answers that carry one anywhere."""

from __future__ import annotations

import json

import requests
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets

from source_sp_invoices.http.presigned import hide_in_answer, secret_parts

# Fake credentials only.
SIGV4 = (
    "https://bucket.s3.amazonaws.com/doc.zip?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=ASIAFAKEPRESIGNED001%2F20240102%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20240102T030405Z&X-Amz-Expires=30"
    "&X-Amz-Security-Token=FAKEtoken%2Fwith%2Bplus%3D&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=0a1b2c3d4e5f60718293a4b5c6d7e8f9"
)


def answer(body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = body
    response.encoding = "utf-8"
    return response


def test_the_signature_session_token_and_credential_are_secret_as_written_and_decoded():
    assert secret_parts(SIGV4) == [
        "ASIAFAKEPRESIGNED001%2F20240102%2Fus-east-1%2Fs3%2Faws4_request",
        "ASIAFAKEPRESIGNED001/20240102/us-east-1/s3/aws4_request",
        "ASIAFAKEPRESIGNED001",
        "FAKEtoken%2Fwith%2Bplus%3D",
        "FAKEtoken/with+plus=",
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    ]


def test_a_sigv2_url_and_short_or_harmless_values():
    url = "https://b.s3.amazonaws.com/d.zip?AWSAccessKeyId=AKIAFAKESIGV2KEY000&Expires=1700000000&Signature=FAKEsig%2Bv2%3D"
    assert secret_parts(url) == ["AKIAFAKESIGV2KEY000", "FAKEsig%2Bv2%3D", "FAKEsig+v2="]
    assert secret_parts("https://b/d.zip?X-Amz-Signature=abc&X-Amz-Date=20240102T030405Z") == []
    assert secret_parts("https://b/d.zip") == []


def test_an_answer_quoting_a_url_anywhere_has_its_secrets_masked():
    signature = "f00dfeedcafe0123456789abcdef0123"
    url = SIGV4.replace("0a1b2c3d4e5f60718293a4b5c6d7e8f9", signature)
    quoted = json.dumps({"export": {"errorMessage": f"see {url}"}}).replace("/", "\\/")
    hide_in_answer(answer(quoted.encode()))  # JSON that escapes "/" (Java serializers may)
    assert filter_secrets(f"Receiving response {quoted}").count("****") == 3
    assert "X-Amz-Date=20240102T030405Z" in filter_secrets(quoted)  # what grants nothing stays

    xml = SIGV4.replace("&", "&amp;").replace("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "9" * 32)
    hide_in_answer(answer(f"<Error><Url>{xml}</Url></Error>".encode()))  # not JSON: the text
    assert "9" * 32 not in filter_secrets(xml)


def test_an_answer_without_a_url_registers_nothing_and_a_streamed_one_is_not_read():
    hide_in_answer(answer(b'{"credential": "none", "token": "Signature=0123456789abcdefgh"}'))
    assert filter_secrets("0123456789abcdefgh") == "0123456789abcdefgh"
    streamed = answer(b"")
    streamed._content = False  # not read yet: reading it would consume the stream
    hide_in_answer(streamed, stream=True)
    assert streamed._content is False  # the body was left for its reader
