"""scripts/airbyte_qa.py (make qa) lays the checkout out where Airbyte's QA checks look.

The checks themselves need airbyte-internal-ops, which only `make qa` installs; what is tested
here is the part that decides what they see: the monorepo layout, the metadata they read, and
the offline guard.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("airbyte_qa", ROOT / "scripts" / "airbyte_qa.py")
airbyte_qa = importlib.util.module_from_spec(_spec)
sys.modules["airbyte_qa"] = airbyte_qa  # its dataclass looks its module up there
_spec.loader.exec_module(airbyte_qa)  # type: ignore[union-attr]


def test_the_checkout_is_laid_out_as_the_monorepo_holds_a_connector(tmp_path):
    name = airbyte_qa.lay_out(ROOT, tmp_path, sl=300)
    assert name == "source-sp-invoices"
    code = tmp_path / "airbyte-integrations" / "connectors" / name
    for kept in ("setup.py", "icon.svg", "erd/source.dbml", "source_sp_invoices/spec.json"):
        assert (code / kept).read_bytes() == (ROOT / kept).read_bytes(), kept
    assert not (code / ".venv").exists()  # ignored files stay out, as in a clone
    # The user docs where Connector.documentation_file_path looks for them.
    doc = tmp_path / "docs" / "integrations" / "sources" / "sp-invoices.md"
    assert doc.read_text("utf-8") == (ROOT / "docs" / "sp-invoices.md").read_text("utf-8")
    data = yaml.safe_load((code / "metadata.yaml").read_text("utf-8"))["data"]
    assert data["documentationUrl"] == "https://docs.airbyte.com/integrations/sources/sp-invoices"
    assert data["ab_internal"]["sl"] == 300
    original = yaml.safe_load((ROOT / "metadata.yaml").read_text("utf-8"))["data"]
    assert {k: v for k, v in data.items() if k not in ("documentationUrl", "ab_internal")} == {
        k: v for k, v in original.items() if k not in ("documentationUrl", "ab_internal")
    }


def test_without_sl_the_metadata_keeps_its_own(tmp_path):
    name = airbyte_qa.lay_out(ROOT, tmp_path, sl=None)
    metadata = tmp_path / "airbyte-integrations" / "connectors" / name / "metadata.yaml"
    original = yaml.safe_load((ROOT / "metadata.yaml").read_text("utf-8"))["data"]
    assert (
        yaml.safe_load(metadata.read_text("utf-8"))["data"]["ab_internal"]
        == (original["ab_internal"])
    )


def test_offline_refuses_every_host_but_loopback_and_says_which():
    refused: list[str] = []
    with airbyte_qa.offline(refused):
        assert socket.getaddrinfo("127.0.0.1", 80)
        assert socket.getaddrinfo("localhost", 80)
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("registry.hub.docker.com", 443)
    assert refused == ["registry.hub.docker.com"]
    assert socket.getaddrinfo.__module__ == "socket"  # put back


def test_every_accepted_failure_says_why():
    assert all(reason.strip() for reason in airbyte_qa.ACCEPTED.values())
    assert set(airbyte_qa.ACCEPTED) == {
        "CheckConnectorUsesPoetry",
        "CheckConnectorLicenseMatchInPyproject",
        "CheckConnectorVersionMatchInPyproject",
        "CheckConnectorUsesPythonBaseImage",
    }
