"""The tamper matrix: each kind of tampering with records or checkpoints gives its own
error, naming the first bad record (or checkpoint). Real Ed25519 keys, no mocks."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from paved_audit.adapters.file_signer import FileSigner
from paved_audit.domain.chain import canonicalize_value, chain_hash
from paved_audit.domain.checkpoint import SignedCheckpoint
from paved_audit.verify import ChainRecord, ErrorKind, VerifyReport, verify_records
from paved_schemas.envelope import Envelope
from paved_schemas.events import DeadLetterRecorded

pytestmark = pytest.mark.unit

SIZES = (5, 10, 15)


def _dead_letter() -> bytes:
    original = b'{"id":"lost-1","type":"dev.paved.model.version.registered.v1","data":{}}'
    env = Envelope.new(
        DeadLetterRecorded(
            reason="data.artifact_digest: String should match pattern (got 'md5:abc')",
            error_type="ContractError",
            source_topic="paved.model.events.v1",
            source_partition=2,
            source_offset=41,
            consumer_group="paved-approver",
            original_value=base64.b64encode(original).decode(),
        ),
        source="/paved/approver",
        actor="service:approver",
        actorname="Paved approver",
    )
    return env.to_json_bytes()


@pytest.fixture
def trail(make_envelopes: Any, make_chain: Any) -> list[ChainRecord]:
    """15 records: two workflows and one gap record (sequence 7)."""
    raws = [e.to_json_bytes() for e in make_envelopes("alpha")]
    raws.append(_dead_letter())
    raws += [e.to_json_bytes() for e in make_envelopes("beta")]
    chain: list[ChainRecord] = make_chain(raws)
    assert len(chain) == 15
    return chain


@pytest.fixture
async def checkpoints(
    trail: list[ChainRecord], signer: FileSigner, make_checkpoints: Any
) -> list[SignedCheckpoint]:
    cps: list[SignedCheckpoint] = await make_checkpoints(trail, SIZES, signer)
    return cps


def _rechain(records: list[ChainRecord], start: int) -> list[ChainRecord]:
    out = list(records[:start])
    prev = out[-1].record_hash
    for rec in records[start:]:
        digest = chain_hash(prev, rec.record)
        out.append(dataclasses.replace(rec, prev_hash=prev, record_hash=digest))
        prev = digest
    return out


def _edit(record: bytes, **changes: object) -> bytes:
    document = json.loads(record)
    document["data"].update(changes)
    return canonicalize_value(document)


async def _key(signer: FileSigner) -> bytes:
    return await signer.public_key()


async def test_clean_trail_verifies_with_pinned_key_and_reports_the_gap(
    trail: list[ChainRecord], checkpoints: list[SignedCheckpoint], signer: FileSigner
) -> None:
    report = verify_records(trail, checkpoints=checkpoints, public_key=await _key(signer))
    assert report.ok, report.summary_lines()
    assert (report.checkpoints_total, report.checkpoints_valid) == (3, 3)
    assert report.latest_checkpoint is checkpoints[-1]
    assert report.key_pinned
    [gap] = report.gaps
    assert (gap.sequence, gap.source_topic, gap.source_offset) == (7, "paved.model.events.v1", 41)
    lines = report.summary_lines()
    assert f"3/3 signed checkpoints valid (key {signer.key_id}, pinned)" in lines
    assert any(x.startswith("Latest signed checkpoint #2: size 15, root ") for x in lines)
    assert any(x.startswith("Gaps: 1 dead-lettered message(s)") and "paved-approver" in x
               for x in lines)  # fmt: skip


async def test_unpinned_key_is_said_and_records_after_the_last_checkpoint_are_counted(
    trail: list[ChainRecord], checkpoints: list[SignedCheckpoint]
) -> None:
    report = verify_records(trail, checkpoints=checkpoints[:2])
    assert report.ok
    assert not report.key_pinned
    lines = report.summary_lines()
    assert any("NOT pinned" in x for x in lines)
    assert "5 record(s) after it, not yet covered by a checkpoint" in lines


def _changed_byte(t: list[ChainRecord], cps: list[SignedCheckpoint]) -> tuple[Any, ...]:
    t = list(t)
    t[8] = dataclasses.replace(t[8], record=t[8].record.replace(b'"version":1', b'"version":7'))
    return t, cps


def _deleted(t: list[ChainRecord], cps: list[SignedCheckpoint]) -> tuple[Any, ...]:
    return [r for r in t if r.sequence != 8], cps


def _inserted(t: list[ChainRecord], cps: list[SignedCheckpoint]) -> tuple[Any, ...]:
    forged_bytes = _edit(t[8].record, to_state="approved")
    forged = ChainRecord(8, t[7].record_hash, chain_hash(t[7].record_hash, forged_bytes),
                         forged_bytes, "forged")  # fmt: skip
    return [*t[:8], forged, *t[8:]], cps


def _swapped(t: list[ChainRecord], cps: list[SignedCheckpoint]) -> tuple[Any, ...]:
    return [*t[:8], t[9], t[8], *t[10:]], cps


def _truncated(t: list[ChainRecord], cps: list[SignedCheckpoint]) -> tuple[Any, ...]:
    return t[:12], cps


def _forged_signature(t: list[ChainRecord], cps: list[SignedCheckpoint]) -> tuple[Any, ...]:
    bad = bytes([cps[1].signature[0] ^ 1]) + cps[1].signature[1:]
    return t, [cps[0], dataclasses.replace(cps[1], signature=bad), cps[2]]


MATRIX = {
    "changed byte": (_changed_byte, ErrorKind.CONTENT_CHANGED, 8, None),
    "deleted record": (_deleted, ErrorKind.GAP, 8, None),
    "inserted record": (_inserted, ErrorKind.INSERTED, 8, None),
    "swapped records": (_swapped, ErrorKind.REORDERED, 9, None),
    "truncated tail": (_truncated, ErrorKind.TRUNCATED, 12, 2),
    "forged checkpoint signature": (_forged_signature, ErrorKind.CHECKPOINT_SIGNATURE, 9, 1),
}


@pytest.mark.parametrize("case", MATRIX, ids=list(MATRIX))
async def test_tamper_matrix(
    case: str,
    trail: list[ChainRecord],
    checkpoints: list[SignedCheckpoint],
    signer: FileSigner,
) -> None:
    tamper, kind, sequence, checkpoint = MATRIX[case]
    records, cps = tamper(trail, checkpoints)
    report = verify_records(records, checkpoints=cps, public_key=await _key(signer))
    _assert_named(report, kind, sequence, checkpoint)


def _assert_named(
    report: VerifyReport, kind: ErrorKind, sequence: int | None, checkpoint: int | None
) -> None:
    assert report.error is not None, report.summary_lines()
    assert report.error.kind is kind, report.summary_lines()
    assert report.error.sequence == sequence
    assert report.error.checkpoint == checkpoint
    seq = "?" if sequence is None else str(sequence)
    assert any(x.startswith(f"Audit record {seq} (") and f"INVALID: {kind.value}" in x
               for x in report.summary_lines()), report.summary_lines()  # fmt: skip


async def test_forked_checkpoint_is_named(
    trail: list[ChainRecord],
    checkpoints: list[SignedCheckpoint],
    signer: FileSigner,
    make_checkpoints: Any,
) -> None:
    # The key holder signs a second history of size 10 (record 8 rewritten, re-chained)
    # and publishes its checkpoint after the genuine ones: two roots for one size.
    other = _rechain([*trail[:8], dataclasses.replace(trail[8], record=_edit(
        trail[8].record, to_state="approved")), *trail[9:]], 8)  # fmt: skip
    [fork] = await make_checkpoints(other, [10], signer, start_index=3, previous=checkpoints[-1])
    fork = dataclasses.replace(fork, location="fork")
    report = verify_records(trail, checkpoints=[*checkpoints, fork], public_key=await _key(signer))
    _assert_named(report, ErrorKind.CHECKPOINT_FORK, 9, 3)
    assert "#1 (cp#1) and #3 both sign size 10" in report.error.message  # type: ignore[union-attr]


async def test_the_tamper_matrix_kinds_are_all_distinct() -> None:
    kinds = [kind for _, kind, _, _ in MATRIX.values()] + [ErrorKind.CHECKPOINT_FORK]
    assert len(kinds) == len(set(kinds)) == 7


async def test_records_rewritten_and_rechained_do_not_match_the_signed_root(
    trail: list[ChainRecord], checkpoints: list[SignedCheckpoint], signer: FileSigner
) -> None:
    # A forger without the key rewrites record 8 and re-chains everything after it:
    # the chain verifies, the signed checkpoint covering it does not.
    forged = _rechain([*trail[:8], dataclasses.replace(trail[8], record=_edit(
        trail[8].record, status="failed", to_state="retired")), *trail[9:]], 8)  # fmt: skip
    assert verify_records(forged).ok
    report = verify_records(forged, checkpoints=checkpoints, public_key=await _key(signer))
    _assert_named(report, ErrorKind.CHECKPOINT_MISMATCH, 5, 1)
    assert "records 5..9 do not match signed checkpoint #1" in report.error.message  # type: ignore[union-attr]


async def test_a_removed_checkpoint_breaks_the_checkpoint_chain(
    trail: list[ChainRecord], checkpoints: list[SignedCheckpoint], signer: FileSigner
) -> None:
    report = verify_records(
        trail, checkpoints=[checkpoints[0], checkpoints[2]], public_key=await _key(signer)
    )
    _assert_named(report, ErrorKind.CHECKPOINT_BROKEN, 14, 2)
    assert "checkpoints are missing" in report.error.message  # type: ignore[union-attr]


async def test_checkpoints_signed_by_another_key_are_refused(
    trail: list[ChainRecord], signer: FileSigner, make_checkpoints: Any, tmp_path: Path
) -> None:
    mallory = FileSigner(tmp_path / "mallory.pem", create_if_missing=True)
    cps = await make_checkpoints(trail, SIZES, mallory)
    report = verify_records(trail, checkpoints=cps, public_key=await _key(signer))
    _assert_named(report, ErrorKind.CHECKPOINT_SIGNATURE, 4, 0)
    assert f"names key {mallory.key_id}, the trusted key is {signer.key_id}" in (
        report.error.message  # type: ignore[union-attr]
    )


async def test_a_tail_cut_with_its_checkpoints_is_caught_by_a_saved_witness(
    trail: list[ChainRecord], checkpoints: list[SignedCheckpoint], signer: FileSigner
) -> None:
    key = await _key(signer)
    # Records 10.. and checkpoint #2 removed together: consistent on its own ...
    assert verify_records(trail[:10], checkpoints=checkpoints[:2], public_key=key).ok
    # ... but not against the checkpoint the auditor saved last time.
    report = verify_records(
        trail[:10], checkpoints=checkpoints[:2], public_key=key, witness=checkpoints[2]
    )
    _assert_named(report, ErrorKind.TRUNCATED, 10, 2)
    assert "the tail from sequence 10 was removed" in report.error.message  # type: ignore[union-attr]


async def test_a_declared_kind_that_contradicts_the_record_is_malformed(
    trail: list[ChainRecord],
) -> None:
    tampered = list(trail)
    tampered[7] = dataclasses.replace(tampered[7], kind="event")  # it is a gap
    report = verify_records(tampered)
    assert report.error is not None
    assert (report.error.kind, report.error.sequence) == (ErrorKind.MALFORMED, 7)
    assert "declared kind 'event'" in report.error.message
