"""verify_records: a clean chain passes; every kind of tampering is named at the right place."""

from __future__ import annotations

import dataclasses
import json

import pytest
from paved_audit.domain.chain import GENESIS_HASH, canonicalize_value, chain_hash
from paved_audit.verify import ChainRecord, ErrorKind, verify_records

pytestmark = pytest.mark.unit


def _rechain(records: list[ChainRecord], start: int = 0) -> list[ChainRecord]:
    """Recompute prev_hash/record_hash from ``start`` on, as a forger who knows the scheme would."""
    out = list(records[:start])
    prev = out[-1].record_hash if out else GENESIS_HASH
    for rec in records[start:]:
        digest = chain_hash(prev, rec.record)
        out.append(dataclasses.replace(rec, prev_hash=prev, record_hash=digest))
        prev = digest
    return out


def _edit(record: bytes, **changes: object) -> bytes:
    document = json.loads(record)
    document["data"].update(changes)
    return canonicalize_value(document)


def test_clean_chain_verifies(chain: list[ChainRecord]) -> None:
    report = verify_records(chain, source="unit")
    assert report.ok, report.summary_lines()
    assert report.error is None
    assert (report.total_records, report.records_valid) == (7, 7)
    assert (report.first_sequence, report.last_sequence) == (0, 6)
    assert report.head_hash == chain[-1].record_hash
    lines = report.summary_lines()
    assert "Results found for sequence 0 to 6:" in lines
    assert "7/7 audit records valid" in lines
    assert f"Chain head: sequence 6, hash {chain[-1].record_hash}" in lines


def test_empty_chain_verifies() -> None:
    report = verify_records([])
    assert report.ok
    assert report.first_sequence is None
    assert "Results found: no audit records" in report.summary_lines()


def test_changed_byte_is_a_content_change(chain: list[ChainRecord]) -> None:
    tampered = list(chain)
    record = tampered[3].record.replace(b'"version":1', b'"version":2')
    assert record != tampered[3].record
    tampered[3] = dataclasses.replace(tampered[3], record=record)
    report = verify_records(tampered)
    assert report.error is not None
    assert report.error.kind is ErrorKind.CONTENT_CHANGED
    assert (report.error.sequence, report.error.position) == (3, 3)
    assert report.records_valid == 3
    assert report.head_hash == chain[2].record_hash
    assert any("Audit record 3 (test #3) INVALID: content_changed" in x
               for x in report.summary_lines())  # fmt: skip


def test_changed_hash_field_is_a_content_change(chain: list[ChainRecord]) -> None:
    tampered = list(chain)
    tampered[5] = dataclasses.replace(tampered[5], record_hash="f" * 64)
    report = verify_records(tampered)
    assert report.error is not None
    assert (report.error.kind, report.error.sequence) == (ErrorKind.CONTENT_CHANGED, 5)


def test_rewritten_and_rehashed_record_breaks_the_next_link(chain: list[ChainRecord]) -> None:
    # A forger changes record 2 and recomputes its own hash, but not the rest of the chain.
    forged = dataclasses.replace(chain[2], record=_edit(chain[2].record, to_state="approved"))
    forged = dataclasses.replace(forged, record_hash=chain_hash(forged.prev_hash, forged.record))
    tampered = [*chain[:2], forged, *chain[3:]]
    report = verify_records(tampered)
    assert report.error is not None
    assert report.error.kind is ErrorKind.LINK_BROKEN
    assert report.error.sequence == 3
    assert "rewritten or removed" in report.error.message


@pytest.mark.parametrize("deleted", [0, 3, 5])
def test_deleted_record_is_a_gap(chain: list[ChainRecord], deleted: int) -> None:
    tampered = [r for r in chain if r.sequence != deleted]
    report = verify_records(tampered)
    assert report.error is not None
    assert report.error.kind is ErrorKind.GAP
    assert report.error.sequence == deleted
    assert report.error.position == deleted
    assert f"sequence {deleted} missing before sequence {deleted + 1}" in report.error.message


def test_deleted_records_renumbered_and_relinked_are_caught_by_the_link(
    chain: list[ChainRecord],
) -> None:
    # Delete record 3 and renumber the rest without rehashing: the link from 4 is dangling.
    tampered = [*chain[:3], *(dataclasses.replace(r, sequence=r.sequence - 1) for r in chain[4:])]
    report = verify_records(tampered)
    assert report.error is not None
    assert (report.error.kind, report.error.sequence) == (ErrorKind.LINK_BROKEN, 3)


def test_duplicated_record_is_named(chain: list[ChainRecord]) -> None:
    tampered = [*chain[:3], chain[2], *chain[3:]]
    report = verify_records(tampered)
    assert report.error is not None
    assert report.error.kind is ErrorKind.DUPLICATE
    assert (report.error.sequence, report.error.position) == (2, 3)
    assert "first at position 2" in report.error.message


def test_inserted_record_with_a_taken_sequence_is_named(chain: list[ChainRecord]) -> None:
    # A forged record correctly linked to record 3, claiming sequence 4: the real 4 collides.
    forged_bytes = _edit(chain[4].record, status="failed")
    forged = ChainRecord(4, chain[3].record_hash, chain_hash(chain[3].record_hash, forged_bytes),
                         forged_bytes, "forged")  # fmt: skip
    report = verify_records([*chain[:4], forged, *chain[4:]])
    assert report.error is not None
    assert report.error.kind is ErrorKind.INSERTED
    # The forged record is named, not the genuine one after it (record 5 links to that).
    assert (report.error.sequence, report.error.position) == (4, 4)
    assert report.error.location == "forged"
    assert "nothing links to this one" in report.error.message


def test_replayed_event_appended_with_a_valid_hash_is_a_duplicate(
    chain: list[ChainRecord],
) -> None:
    # The forger appends a copy of record 1's event, perfectly chained at the tail.
    head = chain[-1]
    copy = ChainRecord(7, head.record_hash, chain_hash(head.record_hash, chain[1].record),
                       chain[1].record, "appended")  # fmt: skip
    report = verify_records([*chain, copy])
    assert report.error is not None
    assert report.error.kind is ErrorKind.DUPLICATE
    assert report.error.sequence == 7
    assert "already sealed at sequence 1" in report.error.message


def test_swapped_messages_are_reordered(chain: list[ChainRecord]) -> None:
    # As read from a topic: records 3 and 4 arrive in the wrong order.
    tampered = [*chain[:3], chain[4], chain[3], *chain[5:]]
    report = verify_records(tampered)
    assert report.error is not None
    assert report.error.kind is ErrorKind.REORDERED
    assert (report.error.sequence, report.error.position) == (4, 3)
    assert "comes before sequence 3" in report.error.message


def test_swapped_contents_under_kept_sequence_numbers_are_reordered(
    chain: list[ChainRecord],
) -> None:
    # As stored in a table ordered by sequence: rows 3 and 4 exchange everything but sequence.
    row3 = dataclasses.replace(chain[4], sequence=3)
    row4 = dataclasses.replace(chain[3], sequence=4)
    report = verify_records([*chain[:3], row3, row4, *chain[5:]])
    assert report.error is not None
    assert report.error.kind is ErrorKind.REORDERED
    assert report.error.sequence == 3
    assert "prev_hash links to the record at position 4" in report.error.message


def test_wrong_genesis_link_is_a_broken_link(chain: list[ChainRecord]) -> None:
    first = chain[0]
    forged = dataclasses.replace(
        first, prev_hash="1" * 64, record_hash=chain_hash("1" * 64, first.record)
    )
    tampered = [forged, *_rechain([forged, *chain[1:]], 1)[1:]]
    report = verify_records(tampered)
    assert report.error is not None
    assert (report.error.kind, report.error.sequence) == (ErrorKind.LINK_BROKEN, 0)
    assert "genesis" in report.error.message


def test_truncated_tail_is_named_against_an_expected_size(chain: list[ChainRecord]) -> None:
    assert verify_records(chain[:5]).ok  # nothing in a bare chain shows a cut tail
    report = verify_records(chain[:5], expect_count=7)
    assert report.error is not None
    assert report.error.kind is ErrorKind.TRUNCATED
    assert (report.error.sequence, report.error.position) == (5, 5)
    assert report.records_valid == 5


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"record": b'{"id": "x"}'}, "not in RFC 8785 canonical form"),
        ({"record": b'{"noid":1}'}, "no string 'id'"),
        ({"record": b"not json"}, "not an RFC 8785 JSON object"),
        ({"prev_hash": "XYZ"}, "prev_hash 'XYZ' is not 64 lowercase hex"),
        ({"record_hash": "A" * 64}, "record_hash"),
    ],
)
def test_malformed_records_are_named(
    chain: list[ChainRecord], change: dict[str, object], why: str
) -> None:
    tampered = list(chain)
    tampered[2] = dataclasses.replace(tampered[2], **change)  # type: ignore[arg-type]
    if "record" in change:
        tampered = _rechain(tampered, 2)  # the hash is right; the record itself is not
    report = verify_records(tampered)
    assert report.error is not None
    assert report.error.kind is ErrorKind.MALFORMED
    assert report.error.sequence == 2
    assert why in report.error.message


def test_verifies_from_a_midpoint(chain: list[ChainRecord]) -> None:
    report = verify_records(chain[3:], first_sequence=3, first_prev_hash=chain[2].record_hash)
    assert report.ok
    wrong = verify_records(chain[3:])
    assert wrong.error is not None
    assert (wrong.error.kind, wrong.error.sequence) == (ErrorKind.GAP, 0)
