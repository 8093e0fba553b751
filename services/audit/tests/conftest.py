"""Helpers shared by the audit tests: sample lifecycle envelopes and chain builders."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from paved_audit.adapters.file_signer import FileSigner
from paved_audit.domain.chain import GENESIS_HASH, canonicalize, chain_hash
from paved_audit.domain.checkpoint import CheckpointBody, SignedCheckpoint
from paved_audit.domain.merkle import Frontier, leaf_hash
from paved_audit.ports import Signer
from paved_audit.verify import ChainRecord
from paved_schemas.envelope import Envelope
from paved_schemas.events import (
    EXAMPLE_DIGEST,
    EXAMPLE_MODEL_CARD,
    EXAMPLE_SIGNATURE,
    ApprovalGranted,
    DeploymentStatus,
    DeploymentStatusChanged,
    DeploymentTarget,
    ModelState,
    ModelVersionRegistered,
    ModelVersionStateChanged,
    ModelVersionValidated,
    RequestDeployment,
    RetireModelVersion,
    RiskTier,
)


def lifecycle_envelopes(model: str = "churn") -> list[Envelope[Any]]:
    """One envelope of several contract types, on several topics, one workflow."""
    first = Envelope.new(
        ModelVersionRegistered.model_validate(
            {
                "model_name": model,
                "version": 1,
                "artifact_uri": f"file:///artifacts/{model}/1/model.onnx",
                "artifact_digest": EXAMPLE_DIGEST,
                "framework": "onnx",
                "signature": EXAMPLE_SIGNATURE,
                "model_card": EXAMPLE_MODEL_CARD,
                "registered_by": "alice",
                "registered_by_name": "Alice Scientist",
                "request_id": f"req-{model}",
            }
        ),
        source="/paved/registry",
        actor="user:alice",
        actorname="Alice Scientist",
    )
    service: dict[str, Any] = {"actor": "service:test", "actorname": "Paved test", "cause": first}
    return [
        first,
        Envelope.new(
            ModelVersionStateChanged(
                model_name=model,
                version=1,
                from_state=ModelState.REGISTERED,
                to_state=ModelState.VALIDATING,
            ),
            source="/paved/registry",
            **service,
        ),
        Envelope.new(
            ModelVersionValidated.model_validate(
                {
                    "model_name": model,
                    "version": 1,
                    "artifact_digest": EXAMPLE_DIGEST,
                    "passed": True,
                    "checks": [{"name": "digest", "outcome": "passed", "duration_ms": 3}],
                    "evidence_uri": f"file:///evidence/{model}/1.json",
                    "evidence_digest": EXAMPLE_DIGEST,
                    "validator_version": "0.1.0",
                }
            ),
            source="/paved/validator",
            **service,
        ),
        Envelope.new(
            ApprovalGranted(
                model_name=model,
                version=1,
                artifact_digest=EXAMPLE_DIGEST,
                approval_id=f"apr-{model}",
                risk_tier=RiskTier.LOW,
                policy_version="2025-03-01",
                signatures=[],
                auto_approved=True,
            ),
            source="/paved/approver",
            **service,
        ),
        Envelope.new(
            RequestDeployment(
                deployment_id=f"{model}-local",
                model_name=model,
                version=1,
                artifact_digest=EXAMPLE_DIGEST,
                target=DeploymentTarget.LOCAL,
                requested_by="carol",
            ),
            source="/paved/cli",
            actor="user:carol",
            actorname="Carol Developer",
            cause=first,
        ),
        Envelope.new(
            DeploymentStatusChanged(
                deployment_id=f"{model}-local",
                model_name=model,
                version=1,
                artifact_digest=EXAMPLE_DIGEST,
                target=DeploymentTarget.LOCAL,
                status=DeploymentStatus.READY,
                revision=1,
                endpoint_url="http://127.0.0.1:1/v2/models/churn",
            ),
            source="/paved/deployer-local",
            **service,
        ),
        Envelope.new(
            RetireModelVersion(
                model_name=model, version=1, reason="superseded by v2", retired_by="alice"
            ),
            source="/paved/cli",
            actor="user:alice",
            actorname="Alice Scientist",
            cause=first,
        ),
    ]


def build_chain(raw_envelopes: list[bytes]) -> list[ChainRecord]:
    """A correct chain over the given envelope bytes, exactly as the audit service seals it."""
    records: list[ChainRecord] = []
    prev = GENESIS_HASH
    for sequence, raw in enumerate(raw_envelopes):
        canonical = canonicalize(raw)
        digest = chain_hash(prev, canonical)
        records.append(ChainRecord(sequence, prev, digest, canonical, f"test #{sequence}"))
        prev = digest
    return records


@pytest.fixture
def chain() -> list[ChainRecord]:
    """A clean chain of 7 records."""
    return build_chain([e.to_json_bytes() for e in lifecycle_envelopes()])


@pytest.fixture(scope="session")
def make_envelopes() -> Any:
    """``make_envelopes(model) -> list[Envelope]``: sample lifecycle envelopes."""
    return lifecycle_envelopes


@pytest.fixture
def make_chain() -> Any:
    """``make_chain(list_of_envelope_bytes) -> list[ChainRecord]``: a correct chain."""
    return build_chain


async def sign_checkpoints(
    records: Sequence[ChainRecord],
    sizes: Sequence[int],
    signer: Signer,
    *,
    origin: str = "test.audit",
    start_index: int = 0,
    previous: SignedCheckpoint | None = None,
) -> list[SignedCheckpoint]:
    """Checkpoints over ``records`` at ``sizes``, signed and chained as the service does."""
    out: list[SignedCheckpoint] = []
    frontier = Frontier()
    public = await signer.public_key()
    for n, size in enumerate(sizes):
        while frontier.size < size:
            frontier.append(leaf_hash(records[frontier.size].record))
        body = CheckpointBody(
            origin=origin,
            index=start_index + n,
            tree_size=size,
            root_hash=frontier.root().hex(),
            chain_head=records[size - 1].record_hash if size else GENESIS_HASH,
            previous_signature=(
                base64.b64encode(previous.signature).decode() if previous is not None else None
            ),
            issued_at=f"2025-03-14T09:{n:02d}:00.000Z",
            key_id=signer.key_id,
        )
        signed = body.canonical()
        cp = SignedCheckpoint(body, signed, await signer.sign(signed), public, f"cp#{body.index}")
        out.append(cp)
        previous = cp
    return out


@pytest.fixture
def signer(tmp_path: Path) -> FileSigner:
    """A real file-backed Ed25519 checkpoint signer in a temporary folder."""
    return FileSigner(tmp_path / "keys" / "checkpoint.pem", create_if_missing=True)


@pytest.fixture
def make_checkpoints() -> Any:
    """``await make_checkpoints(records, sizes, signer, ...)``: signed, chained checkpoints."""
    return sign_checkpoints
