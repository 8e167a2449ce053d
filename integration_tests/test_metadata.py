"""metadata.yaml against Airbyte's own schema, and against the files it must agree with.

The schema is ConnectorMetadataDefinitionV0 from airbyte-connector-models: the pydantic model
Airbyte generates from the metadata schema of its registry. (The JSON Schema file shipped beside
it cannot be used as is: its nested $ids leave some $refs unresolvable.)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from airbyte_connector_models.metadata.v0.connector_metadata_definition_v0 import (
    ConnectorMetadataDefinitionV0,
)
from pydantic import ValidationError

from integration_tests.packaging import dockerfile, load_metadata, setup_name, setup_version
from source_sp_invoices import settings

# A pre-signed export URL's host, as in the API model's example of invoicesDocumentUrl.
S3_DOCUMENT_HOST = "invoicesdocumentbucket.s3.eu-east-1.amazonaws.com"


def validated(document: dict[str, Any]) -> ConnectorMetadataDefinitionV0:
    """The metadata as Airbyte's model reads it; a failure shows the model's own message."""
    try:
        return ConnectorMetadataDefinitionV0.model_validate(document)
    except ValidationError as error:
        pytest.fail(f"metadata.yaml does not match ConnectorMetadataDefinitionV0:\n{error}")


def host_allowed(host: str, patterns: list[str]) -> bool:
    """Whether Airbyte's allowedHosts admit a host: exact names, or `*.` for any subdomains."""
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


def test_metadata_matches_airbytes_model() -> None:
    metadata = validated(load_metadata())
    data = metadata.data
    assert metadata.metadata_spec_version == "1.0"
    assert data.connector_type.value == "source"
    assert data.connector_subtype.value == "api"
    assert data.docker_repository == "airbyte/source-sp-invoices"
    assert {"language:python", "cdk:python"} <= set(data.tags or [])
    assert data.support_level is not None and data.ab_internal is not None
    assert data.registry_overrides is not None and data.registry_overrides.oss is not None
    assert str(data.documentation_url).endswith("/docs/sp-invoices.md")
    suites = {option.suite.value for option in data.connector_test_suites_options or []}
    assert {"unitTests", "integrationTests"} <= suites


def test_the_model_rejects_what_the_registry_would_reject() -> None:
    """The validation bites: a typo'd key and an unknown release stage both fail."""
    broken = load_metadata()
    broken["data"]["releaseStage"] = "gamma"
    broken["data"]["dockerImageTags"] = broken["data"].pop("dockerImageTag")
    with pytest.raises(ValidationError) as caught:
        ConnectorMetadataDefinitionV0.model_validate(broken)
    message = str(caught.value)
    assert "releaseStage" in message and "dockerImageTag" in message


def test_one_version_everywhere() -> None:
    """setup.py's VERSION, the image tag of metadata.yaml and the Dockerfile label agree."""
    versions = {
        "setup.py VERSION": setup_version(),
        "metadata.yaml dockerImageTag": load_metadata()["data"]["dockerImageTag"],
        "Dockerfile io.airbyte.version": dockerfile().labels.get("io.airbyte.version"),
    }
    assert len(set(versions.values())) == 1, f"versions differ: {versions}"


def test_base_image_is_pinned_by_digest() -> None:
    base_image = load_metadata()["data"]["connectorBuildOptions"]["baseImage"]
    name, _, digest = base_image.partition("@sha256:")
    assert name.startswith("docker.io/airbyte/python-connector-base:"), base_image
    assert len(digest) == 64 and all(c in "0123456789abcdef" for c in digest), base_image


def test_pypi_name_is_the_distribution_name() -> None:
    pypi = load_metadata()["data"]["remoteRegistries"]["pypi"]
    assert pypi["packageName"] == setup_name()


def test_allowed_hosts_cover_every_host_the_connector_calls() -> None:
    hosts = load_metadata()["data"]["allowedHosts"]["hosts"]
    called = {urlsplit(settings.LWA_TOKEN_URL).hostname} | {
        urlsplit(url).hostname
        for environments in settings.ENDPOINTS.values()
        for url in environments.values()
    }
    missing = sorted(h for h in called | {S3_DOCUMENT_HOST} if not host_allowed(h, hosts))
    assert not missing, f"allowedHosts leaves out {missing}"
    # Nothing beyond them: each entry is a host of settings.py, or the S3 domain of the ZIPs.
    unused = sorted(set(hosts) - called - {"*.amazonaws.com"})
    assert not unused, f"allowedHosts names hosts the connector never calls: {unused}"


@pytest.mark.parametrize(
    "host", ["example.com", "amazon.com", "api.amazon.com.attacker.test", "127.0.0.1", "localhost"]
)
def test_allowed_hosts_refuse_other_hosts(host: str) -> None:
    assert not host_allowed(host, load_metadata()["data"]["allowedHosts"]["hosts"])
