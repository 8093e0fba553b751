"""Inspector bundles verify offline with the public key alone; any change is caught."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from paved_audit.adapters.file_signer import FileSigner
from paved_audit.domain.merkle import ProofError, leaf_hash
from paved_audit.export import belongs_to, build_bundle, render_html, verify_bundle
from paved_audit.proofs import (
    consistency_document,
    covering_checkpoint,
    inclusion_document,
    verify_proof_document,
)
from paved_audit.verify import ChainRecord

pytestmark = pytest.mark.unit


@pytest.fixture
def trail(make_envelopes: Any, make_chain: Any) -> list[ChainRecord]:
    raws = [e.to_json_bytes() for m in ("alpha", "beta") for e in make_envelopes(m)]
    chain: list[ChainRecord] = make_chain(raws)
    return chain


async def _bundle(
    trail: list[ChainRecord], signer: FileSigner, make_checkpoints: Any, *, signed: bool
) -> dict[str, Any]:
    [cp] = await make_checkpoints(trail, [len(trail)], signer)
    records = [(r.sequence, r.record) for r in trail if belongs_to(r.record, "beta", 1)]
    leaves = [leaf_hash(r.record) for r in trail]
    bundle: dict[str, Any] = await build_bundle(
        records, leaves, cp, model="beta", version=1, signer=signer if signed else None
    )
    return bundle


async def test_a_bundle_verifies_offline_and_any_change_is_caught(
    trail: list[ChainRecord], signer: FileSigner, make_checkpoints: Any, tmp_path: Path
) -> None:
    bundle = await _bundle(trail, signer, make_checkpoints, signed=True)
    # Offline: through JSON text, with nothing but the public key.
    loaded = json.loads(json.dumps(bundle))
    key = await signer.public_key()
    report = verify_bundle(loaded, key)
    assert report.ok, report.problems
    assert report.records == 7
    assert report.bundle_signed
    assert [e["sequence"] for e in loaded["records"]] == list(range(7, 14))

    changed = copy.deepcopy(loaded)
    changed["records"][2]["record"] = changed["records"][2]["record"].replace("beta", "betb")
    problems = verify_bundle(changed, key).problems
    assert any("record 9: inclusion proof of leaf 9" in p for p in problems), problems
    assert any("not about beta version 1" in p for p in problems)
    assert "bundle_signature does not verify: the bundle was changed" in problems

    dropped = copy.deepcopy(loaded)
    del dropped["records"][0]
    assert verify_bundle(dropped, key).problems == [
        "bundle_signature does not verify: the bundle was changed"
    ]

    other = await FileSigner(tmp_path / "other.pem", create_if_missing=True).public_key()
    assert not verify_bundle(loaded, other).ok


async def test_an_unsigned_bundle_still_binds_every_record_to_the_signed_checkpoint(
    trail: list[ChainRecord], signer: FileSigner, make_checkpoints: Any
) -> None:
    bundle = await _bundle(trail, signer, make_checkpoints, signed=False)
    key = await signer.public_key()
    assert verify_bundle(bundle, key).ok
    bundle["records"][0]["inclusion_proof"][0] = "00" * 32
    report = verify_bundle(bundle, key)
    assert not report.ok
    assert report.problems[0].startswith("record 7: inclusion proof of leaf 7 in size 14 gives")


async def test_html_report_shows_who_did_what(
    trail: list[ChainRecord], signer: FileSigner, make_checkpoints: Any
) -> None:
    bundle = await _bundle(trail, signer, make_checkpoints, signed=True)
    page = render_html(bundle, verify_bundle(bundle, await signer.public_key()))
    assert "Audit report: beta version 1" in page
    assert "Alice Scientist" in page
    assert "Carol Developer" in page
    assert "dev.paved.approval.granted.v1" in page
    assert "risk tier: low" in page
    assert "Integrity: <strong>verified</strong>" in page


async def test_proof_documents_verify_offline_and_refuse_tampering(
    trail: list[ChainRecord], signer: FileSigner, make_checkpoints: Any
) -> None:
    cps = await make_checkpoints(trail, [6, 14], signer)
    leaves = [leaf_hash(r.record) for r in trail]
    key = await signer.public_key()
    inclusion = inclusion_document(leaves, trail[3].record, 3, covering_checkpoint(cps, 3, 6))
    assert "record 3 is included in signed checkpoint #0" in verify_proof_document(
        json.loads(json.dumps(inclusion)), key
    )
    consistency = consistency_document(leaves, cps[0], cps[1])
    assert "#1 (size 14) extends #0 (size 6)" in verify_proof_document(consistency, key)
    bad = {**inclusion, "sequence": 2}
    with pytest.raises(ProofError, match="inclusion proof of leaf 2 in size 6 gives root"):
        verify_proof_document(bad, key)
    with pytest.raises(ProofError, match="more than the path is long"):
        verify_proof_document({**inclusion, "sequence": 4}, key)
    bad = {**consistency, "proof": consistency["proof"][:-1]}
    with pytest.raises(ProofError, match="too few"):
        verify_proof_document(bad, key)
    with pytest.raises(ProofError, match="not covered by checkpoint #0"):
        covering_checkpoint(cps, 6, 6)
