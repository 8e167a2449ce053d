"""metadata.yaml against Airbyte's own schema, and against the files it must agree with.

The schema is ConnectorMetadataDefinitionV0 from airbyte-connector-models: the pydantic model
Airbyte generates from the metadata schema of its registry. (The JSON Schema file shipped beside
it cannot be used as is: its nested $ids leave some $refs unresolvable.)

The memory declared per job type (resourceRequirements.jobSpecific) is held to the peaks that
`make bench` part (i) measured and wrote to scripts/resources.json, plus the stated margin.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from airbyte_connector_models.metadata.v0.connector_metadata_definition_v0 import (
    ConnectorMetadataDefinitionV0,
)
from pydantic import ValidationError

from integration_tests.packaging import (
    REPO,
    dockerfile,
    load_metadata,
    setup_name,
    setup_version,
)
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
    assert data.supports_file_transfer is True  # invoice_documents delivers the XML files


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


# --- resourceRequirements against the measured peaks --------------------------------------------

# What `make bench` part (i) measured (scripts/bench.py writes it): peak RSS and temporary disk of
# check, discover and a read of all five streams against the largest document of bench.
MEASURED_RESOURCES = REPO / "scripts" / "resources.json"
# The margin metadata.yaml states: each declared memory request is at least the measured peak
# times 1 + MEMORY_MARGIN (a limit at least its request).
MEMORY_MARGIN = 0.5
# The job type of Airbyte's model each measured command runs as.
JOB_TYPES = {"check": "check_connection", "discover": "discover_schema", "read": "sync"}
# Kubernetes quantity suffixes of memory (binary and decimal).
QUANTITY = re.compile(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?")
SUFFIXES = {
    None: 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


def quantity_bytes(quantity: str) -> float:
    """Bytes of a Kubernetes memory quantity: `512Mi`, `1Gi`, `500M`, `1.5G`, `268435456`."""
    match = QUANTITY.fullmatch(str(quantity).strip())
    if match is None:
        raise ValueError(f"not a Kubernetes memory quantity: {quantity!r}")
    return float(match.group(1)) * SUFFIXES[match.group(2)]


def measured_resources() -> dict[str, Any]:
    return json.loads(MEASURED_RESOURCES.read_text())


def memory_shortfalls(metadata: dict[str, Any], measured: dict[str, Any]) -> list[str]:
    """Every job type whose declared memory misses the measured peak plus the margin."""
    job_specific = (metadata["data"].get("resourceRequirements") or {}).get("jobSpecific") or []
    declared = {entry["jobType"]: entry["resourceRequirements"] for entry in job_specific}
    problems = []
    for command, job_type in JOB_TYPES.items():
        requirements = declared.get(job_type)
        if requirements is None:
            problems.append(f"{job_type}: no resourceRequirements declared")
            continue
        if "memory_request" not in requirements or "memory_limit" not in requirements:
            problems.append(f"{job_type}: memory_request and memory_limit are both needed")
            continue
        peak = measured[command]["peak_rss_mib"] * 2**20
        needed = peak * (1 + MEMORY_MARGIN)
        request = quantity_bytes(requirements["memory_request"])
        limit = quantity_bytes(requirements["memory_limit"])
        if request < needed:
            problems.append(
                f"{job_type}: memory_request {requirements['memory_request']} "
                f"({request / 2**20:.0f} MiB) < measured {command} peak "
                f"{peak / 2**20:.1f} MiB x {1 + MEMORY_MARGIN:g} = {needed / 2**20:.0f} MiB"
            )
        if limit < request:
            problems.append(
                f"{job_type}: memory_limit {requirements['memory_limit']} < memory_request "
                f"{requirements['memory_request']}"
            )
    return problems


@pytest.mark.parametrize(
    ("quantity", "size"),
    [
        ("512Mi", 512 * 2**20),
        ("1Gi", 2**30),
        ("1.5Gi", 1.5 * 2**30),
        ("500M", 500 * 10**6),
        ("64Ki", 64 * 2**10),
        ("268435456", 268435456),
    ],
)
def test_kubernetes_quantities(quantity: str, size: float) -> None:
    assert quantity_bytes(quantity) == size


@pytest.mark.parametrize("quantity", ["512 MB", "1GB", "Mi", "-1Gi", "1mi", ""])
def test_kubernetes_quantities_refuse_other_forms(quantity: str) -> None:
    with pytest.raises(ValueError):
        quantity_bytes(quantity)


def test_measurements_are_of_the_largest_document_of_bench() -> None:
    """The figures the declarations rest on: the 50,000-invoice document, all five streams."""
    measured = measured_resources()
    assert measured["invoices"] >= 50_000
    assert measured["largest_document_mib"] >= 200, measured["largest_document_mib"]
    assert set(measured["streams"]) == {
        "invoice_attributes",
        "invoices",
        "invoice_exports",
        "invoice_documents",
        "invoice_items",
    }
    assert measured["runs"] >= 3
    for command in JOB_TYPES:
        assert measured[command]["peak_rss_mib"] > 0, command


def test_declared_memory_covers_the_measured_peaks_with_the_margin() -> None:
    metadata = load_metadata()
    requirements = validated(metadata).data.resource_requirements
    assert requirements is not None and requirements.job_specific
    assert {entry.job_type.value for entry in requirements.job_specific} >= set(JOB_TYPES.values())
    problems = memory_shortfalls(metadata, measured_resources())
    assert not problems, "metadata.yaml declares too little memory:\n" + "\n".join(problems)


def test_the_memory_check_bites() -> None:
    """A request under the measured peak plus the margin, or a limit under its request, fails."""
    measured = measured_resources()
    for command, job_type in JOB_TYPES.items():
        peak = measured[command]["peak_rss_mib"]
        for field, value in (
            ("memory_request", f"{int(peak * (1 + MEMORY_MARGIN)) - 1}Mi"),
            ("memory_limit", f"{int(peak * (1 + MEMORY_MARGIN)) - 1}Mi"),
        ):
            lowered = copy.deepcopy(load_metadata())
            for entry in lowered["data"]["resourceRequirements"]["jobSpecific"]:
                if entry["jobType"] == job_type:
                    entry["resourceRequirements"][field] = value
            problems = memory_shortfalls(lowered, measured)
            assert any(p.startswith(f"{job_type}: {field}") for p in problems), (job_type, field)
