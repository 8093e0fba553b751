"""The committed AsyncAPI documents are generated from the services' faststream apps."""

from __future__ import annotations

import json

import pytest
from paved_cli.asyncapi import OUT_DIR, SERVICES, documents
from paved_schemas import topics

pytestmark = pytest.mark.unit


def test_committed_documents_are_current() -> None:
    for name, text in documents().items():
        path = OUT_DIR / f"{name}.json"
        assert path.exists(), f"missing {path}; run make asyncapi"
        assert path.read_text() == text, f"{path} is stale; run make asyncapi"


def test_documents_describe_what_each_service_consumes_and_emits() -> None:
    docs = {name: json.loads(text) for name, text in documents().items()}
    assert set(docs) == set(SERVICES)
    addresses = {
        name: {c["address"] for c in doc["channels"].values()} for name, doc in docs.items()
    }
    assert topics.REGISTRATION_REQUESTS in addresses["registry"]
    assert topics.MODEL_EVENTS in addresses["validator"]
    assert topics.VALIDATION_EVENTS in addresses["validator"]
    assert topics.APPROVAL_EVENTS in addresses["approver"]
    assert topics.DEPLOYMENT_STATUS in addresses["deployer-local"]
    assert topics.AUDIT in addresses["audit"]
    # Payloads are the contract's envelopes, not untyped bytes.
    registry_schemas = docs["registry"]["components"]["schemas"]
    assert any("ModelVersionRegistered" in key for key in registry_schemas)
