"""Verify the audit hash chain, from the database or from the audit topic alone.

``verify_records`` recomputes the chain over records in the order given and names
the first bad record with a distinct ``ErrorKind``; ``verify_database`` and
``verify_topic`` read the two copies of the chain and verify them. Everything
returns data (a ``VerifyReport``); nothing prints.

A chain verifies when, in order, every record has sequence ``first_sequence + i``,
``prev_hash`` equal to the previous ``record_hash`` (``GENESIS_HASH`` for sequence
0), ``record_hash == sha256(bytes.fromhex(prev_hash) + record)``, a record that is
canonical RFC 8785 JSON of an object with a string ``id``, and an ``id`` sealed once.
Signed checkpoints (``AuditCheckpointSigned``) then bind the chain to an RFC 6962
Merkle root: each one must verify with the trusted Ed25519 key, embed the previous
checkpoint's signature, never disagree with another checkpoint of the same size
(a fork), cover no more records than exist (a truncated tail) and match the root and
chain head recomputed over the records.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from paved_schemas import topics
from paved_schemas.envelope import ContractError, parse_envelope
from paved_schemas.events import (
    AuditCheckpointSigned,
    AuditRecordKind,
    AuditRecordSealed,
    DeadLetterRecorded,
)
from paved_shared.db import Pool, check_identifier
from paved_shared.kafka import kafka_auth

from paved_audit.domain.chain import (
    GENESIS_HASH,
    CanonicalizationError,
    canonicalize_value,
    chain_hash,
    is_hex_sha256,
    parse_json_object,
)
from paved_audit.domain.checkpoint import (
    CheckpointBody,
    CheckpointError,
    SignedCheckpoint,
    key_id_of,
)
from paved_audit.domain.merkle import Frontier, leaf_hash

__all__ = [
    "ChainRecord",
    "ErrorKind",
    "VerifyError",
    "VerifyReport",
    "read_database_records",
    "read_topic_records",
    "verify_database",
    "verify_records",
    "verify_topic",
]


class ErrorKind(StrEnum):
    """What is wrong with the first bad record."""

    MALFORMED = "malformed"
    """Not a well-formed record: bad hex, not canonical RFC 8785 JSON, no ``id``, unreadable."""
    CONTENT_CHANGED = "content_changed"
    """Hash mismatch: the record (or its prev_hash) is not what ``record_hash`` sealed."""
    GAP = "gap"
    """Sequence numbers are missing and appear nowhere: records were deleted."""
    DUPLICATE = "duplicate"
    """A sequence or an event id appears a second time: a record was duplicated or inserted."""
    INSERTED = "inserted"
    """A record claims a sequence that another record holds, and nothing links to it."""
    REORDERED = "reordered"
    """Records out of order: a later sequence comes first, or prev_hash links to another record."""
    LINK_BROKEN = "link_broken"
    """prev_hash matches no record: the previous record was rewritten and re-hashed, or removed."""
    TRUNCATED = "truncated"
    """Fewer records than expected: the tail was cut off."""
    CHECKPOINT_SIGNATURE = "checkpoint_signature"
    """A checkpoint's signature does not verify with the trusted key (forged or re-keyed)."""
    CHECKPOINT_FORK = "checkpoint_fork"
    """Two signed checkpoints of one size with different roots: the log was forked."""
    CHECKPOINT_BROKEN = "checkpoint_chain_broken"
    """A checkpoint does not extend the previous one (index, embedded signature, size)."""
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    """The records do not hash to a signed checkpoint's root or chain head."""


@dataclass(frozen=True)
class ChainRecord:
    """One record of the chain, as stored in the database or carried by AuditRecordSealed."""

    sequence: int
    prev_hash: str
    record_hash: str
    record: bytes
    """Canonical JSON (RFC 8785) of the audited envelope, exactly as hashed."""
    location: str = ""
    """Where the record was read (e.g. ``paved.audit.v1:0@17``), for messages; not verified."""
    kind: str | None = None
    """The kind the source declares (``event``/``gap``); checked against the record."""


@dataclass(frozen=True)
class Gap:
    """A gap record: a message some consumer could not process, sealed as a dead letter."""

    sequence: int
    source_topic: str
    source_partition: int
    source_offset: int
    consumer_group: str
    reason: str
    original_event_type: str | None

    def describe(self) -> str:
        what = self.original_event_type or "unreadable message"
        return (
            f"sequence {self.sequence}: {what} at {self.source_topic}:{self.source_partition}"
            f"@{self.source_offset}, given up by {self.consumer_group}: {self.reason[:160]}"
        )


@dataclass(frozen=True)
class VerifyError:
    """The first bad record.

    ``sequence`` is where the chain first goes wrong: for ``GAP`` the first missing
    sequence, for ``TRUNCATED`` the first absent one, otherwise the offending record's
    own sequence (None when a message could not be read at all). ``position`` is the
    0-based index of the offending record in the input (for ``TRUNCATED``: its length).
    """

    kind: ErrorKind
    sequence: int | None
    position: int
    message: str
    location: str = ""
    checkpoint: int | None = None
    """Index of the checkpoint at fault, for the checkpoint kinds."""


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of a verification; ``ok`` when the whole input chains correctly."""

    source: str
    total_records: int
    records_valid: int
    first_sequence: int | None
    last_sequence: int | None
    """Sequence of the last valid record (before the first error)."""
    head_hash: str | None
    """record_hash of the last valid record; GENESIS-linked chain head when ok."""
    error: VerifyError | None = None
    redelivered: int = 0
    """Exact copies collapsed before verification (a relay re-publish after a crash)."""
    notes: tuple[str, ...] = field(default=())
    checkpoints_total: int = 0
    checkpoints_valid: int = 0
    latest_checkpoint: SignedCheckpoint | None = None
    """The last checkpoint that verified (signature, chain and root)."""
    key_id: str | None = None
    key_pinned: bool = False
    """True when signatures were checked against a key given by the verifier."""
    gaps: tuple[Gap, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no record is bad."""
        return self.error is None

    def summary_lines(self) -> list[str]:
        """CloudTrail-style result lines (``aws cloudtrail validate-logs``) for people."""
        lines = [f"Validating audit records in {self.source}"]
        if self.first_sequence is None:
            lines.append("Results found: no audit records")
        else:
            last = self.last_sequence if self.last_sequence is not None else self.first_sequence
            lines.append(f"Results found for sequence {self.first_sequence} to {last}:")
        lines.append(f"{self.records_valid}/{self.total_records} audit records valid")
        if self.error is not None:
            where = f" ({self.error.location})" if self.error.location else ""
            seq = "?" if self.error.sequence is None else str(self.error.sequence)
            lines.append(
                f"Audit record {seq}{where} INVALID: {self.error.kind.value}: {self.error.message}"
            )
            lines.append(
                f"{self.total_records - self.records_valid}/{self.total_records} "
                "audit records not verified (the first bad record and everything after it)"
            )
        elif self.head_hash is not None:
            lines.append(f"Chain head: sequence {self.last_sequence}, hash {self.head_hash}")
        if self.redelivered:
            lines.append(f"{self.redelivered} exact redelivered copies ignored")
        lines.extend(self._checkpoint_lines())
        if self.gaps:
            lines.append(
                f"Gaps: {len(self.gaps)} dead-lettered message(s) sealed as gap records "
                f"(first: {self.gaps[0].describe()})"
            )
        lines.extend(self.notes)
        return lines

    def _checkpoint_lines(self) -> list[str]:
        if not self.checkpoints_total:
            return ["No signed checkpoint: a truncated tail cannot be told from a short trail"]
        trust = "pinned" if self.key_pinned else "NOT pinned: taken from the trail itself"
        lines = [
            f"{self.checkpoints_valid}/{self.checkpoints_total} signed checkpoints valid "
            f"(key {self.key_id}, {trust})"
        ]
        cp = self.latest_checkpoint
        if cp is not None:
            b = cp.body
            lines.append(
                f"Latest signed checkpoint #{b.index}: size {b.tree_size}, "
                f"root {b.root_hash}, issued {b.issued_at}"
            )
            if self.error is None and self.last_sequence is not None:
                after = self.last_sequence + 1 - b.tree_size
                if after > 0:
                    lines.append(f"{after} record(s) after it, not yet covered by a checkpoint")
        return lines


def _shape_problem(rec: ChainRecord) -> tuple[str | None, dict[str, Any] | None]:
    """(problem, parsed record) of one record on its own; problem None when well formed."""
    if not is_hex_sha256(rec.prev_hash):
        return f"prev_hash {rec.prev_hash!r} is not 64 lowercase hex digits", None
    if not is_hex_sha256(rec.record_hash):
        return f"record_hash {rec.record_hash!r} is not 64 lowercase hex digits", None
    if rec.sequence < 0:
        return f"sequence {rec.sequence} is negative", None
    try:
        document = parse_json_object(rec.record)
        canonical = canonicalize_value(document)
    except CanonicalizationError as exc:
        return f"record is not an RFC 8785 JSON object: {exc}", None
    return _document_problem(rec, document, canonical), document


def _document_problem(rec: ChainRecord, document: dict[str, Any], canonical: bytes) -> str | None:
    found = document.get("id")
    if not isinstance(found, str) or not found:
        return "record has no string 'id'"
    if canonical != rec.record:
        return "record is valid JSON but not in RFC 8785 canonical form"
    kind = record_kind(document)
    if rec.kind is not None and rec.kind != kind:
        return (
            f"declared kind {rec.kind!r}, but the record (type {document.get('type')!r}) "
            f"is a {kind!r} record"
        )
    return None


def record_kind(document: dict[str, Any]) -> str:
    """``gap`` for a sealed ``DeadLetterRecorded``, else ``event`` (derived, so verifiable)."""
    gap = document.get("type") == DeadLetterRecorded.TYPE
    return str(AuditRecordKind.GAP if gap else AuditRecordKind.EVENT)


def _gap(sequence: int, document: dict[str, Any]) -> Gap:
    data = document.get("data")
    d: dict[str, Any] = data if isinstance(data, dict) else {}
    return Gap(
        sequence=sequence,
        source_topic=str(d.get("source_topic", "?")),
        source_partition=int(d.get("source_partition", -1)),
        source_offset=int(d.get("source_offset", -1)),
        consumer_group=str(d.get("consumer_group", "?")),
        reason=str(d.get("reason", "")),
        original_event_type=d.get("original_event_type"),
    )


class _ChainWalk:
    """State of one verification pass; ``check`` returns the error of one record or None."""

    def __init__(
        self, items: Sequence[ChainRecord], first_sequence: int, first_prev_hash: str
    ) -> None:
        self.items = items
        self.expected_sequence = first_sequence
        self.expected_prev = first_prev_hash
        self.seen_ids: dict[str, int] = {}
        self.gaps: list[Gap] = []
        # Lookahead for classification: where each sequence and each hash occurs, and
        # which hashes some record links to.
        self.positions_of_sequence: dict[int, list[int]] = {}
        self.position_of_hash: dict[str, int] = {}
        self.linked: set[str] = set()
        for i, rec in enumerate(items):
            self.positions_of_sequence.setdefault(rec.sequence, []).append(i)
            self.position_of_hash.setdefault(rec.record_hash, i)
            self.linked.add(rec.prev_hash)

    def error(self, kind: ErrorKind, sequence: int | None, i: int, message: str) -> VerifyError:
        location = self.items[i].location if i < len(self.items) else ""
        return VerifyError(kind, sequence, i, message, location)

    def check(self, i: int, rec: ChainRecord) -> VerifyError | None:
        problem, document = _shape_problem(rec)
        if problem is not None or document is None:
            return self.error(ErrorKind.MALFORMED, rec.sequence, i, problem or "no id")
        event_id = str(document["id"])
        recomputed = chain_hash(rec.prev_hash, rec.record)
        if recomputed != rec.record_hash:
            return self.error(
                ErrorKind.CONTENT_CHANGED,
                rec.sequence,
                i,
                f"sha256(prev_hash + record) is {recomputed}, the record says "
                f"{rec.record_hash}: its content was changed",
            )
        error = (
            self.check_inserted(i, rec)
            or self.check_sequence(i, rec)
            or self.check_id(i, rec, event_id)
        )
        if error is None:
            error = self.check_link(i, rec)
        if error is None:
            self.seen_ids[event_id] = rec.sequence
            self.expected_sequence += 1
            self.expected_prev = rec.record_hash
            if record_kind(document) == AuditRecordKind.GAP.value:
                self.gaps.append(_gap(rec.sequence, document))
        return error

    def check_inserted(self, i: int, rec: ChainRecord) -> VerifyError | None:
        """A record whose sequence another record holds, when only the other is linked to."""
        twins = [
            p for p in self.positions_of_sequence[rec.sequence]
            if p != i and self.items[p].record_hash != rec.record_hash
        ]  # fmt: skip
        if not twins or rec.record_hash in self.linked:
            return None
        genuine = [p for p in twins if self.items[p].record_hash in self.linked]
        if not genuine:
            return None
        return self.error(
            ErrorKind.INSERTED,
            rec.sequence,
            i,
            f"sequence {rec.sequence} is also held by the record at position {genuine[0]}, "
            "which the next record links to; nothing links to this one: it was inserted",
        )

    def check_sequence(self, i: int, rec: ChainRecord) -> VerifyError | None:
        expected = self.expected_sequence
        if rec.sequence == expected:
            return None
        earlier = [p for p in self.positions_of_sequence[rec.sequence] if p < i]
        if earlier:
            return self.error(
                ErrorKind.DUPLICATE,
                rec.sequence,
                i,
                f"sequence {rec.sequence} appears again (first at position {earlier[0]}): "
                "a record was duplicated or inserted",
            )
        if rec.sequence < expected:
            return self.error(
                ErrorKind.REORDERED,
                rec.sequence,
                i,
                f"sequence {rec.sequence} comes after sequence {expected - 1}: "
                "records are out of order",
            )
        later = [
            s
            for s in range(expected, rec.sequence)
            if any(p > i for p in self.positions_of_sequence.get(s, ()))
        ]
        if later:
            return self.error(
                ErrorKind.REORDERED,
                rec.sequence,
                i,
                f"sequence {rec.sequence} comes before sequence {later[0]}: "
                "records are out of order",
            )
        missing = (
            str(expected) if rec.sequence == expected + 1 else f"{expected}..{rec.sequence - 1}"
        )
        return self.error(
            ErrorKind.GAP,
            expected,
            i,
            f"sequence {missing} missing before sequence {rec.sequence}: records were deleted",
        )

    def check_id(self, i: int, rec: ChainRecord, event_id: str) -> VerifyError | None:
        if event_id not in self.seen_ids:
            return None
        return self.error(
            ErrorKind.DUPLICATE,
            rec.sequence,
            i,
            f"event id {event_id!r} was already sealed at sequence {self.seen_ids[event_id]}: "
            "a record was duplicated or inserted",
        )

    def check_link(self, i: int, rec: ChainRecord) -> VerifyError | None:
        if rec.prev_hash == self.expected_prev:
            return None
        linked = self.position_of_hash.get(rec.prev_hash)
        if linked is not None and linked != i:
            return self.error(
                ErrorKind.REORDERED,
                rec.sequence,
                i,
                f"prev_hash links to the record at position {linked} "
                f"(sequence {self.items[linked].sequence}), not to the previous record: "
                "records were reordered",
            )
        previous = "the genesis hash" if i == 0 else f"sequence {self.expected_sequence - 1}'s hash"
        return self.error(
            ErrorKind.LINK_BROKEN,
            rec.sequence,
            i,
            f"prev_hash {rec.prev_hash} is not {previous} {self.expected_prev}: the previous "
            "record was rewritten or removed",
        )


def verify_records(
    records: Iterable[ChainRecord],
    *,
    source: str = "records",
    first_sequence: int = 0,
    first_prev_hash: str = GENESIS_HASH,
    expect_count: int | None = None,
    checkpoints: Sequence[SignedCheckpoint] = (),
    public_key: bytes | None = None,
    witness: SignedCheckpoint | None = None,
    start_frontier: Frontier | None = None,
) -> VerifyReport:
    """Recompute the chain over ``records`` in the order given; name the first bad record.

    ``first_sequence``/``first_prev_hash`` start verification mid-chain (defaults: the
    genesis). ``expect_count``, when known from elsewhere, turns a short chain into a
    ``TRUNCATED`` error. Checks per record, first failure wins: shape (``MALFORMED``),
    hash (``CONTENT_CHANGED``), sequence (``INSERTED``/``GAP``/``REORDERED``/``DUPLICATE``),
    event id (``DUPLICATE``), link to the previous record (``REORDERED``/``LINK_BROKEN``).
    Verification stops at the first bad record: nothing after it can be trusted.

    Then ``checkpoints`` (in the order read) are checked against ``public_key`` (the
    trusted key; None: the key the first checkpoint carries, reported as not pinned):
    signatures, forks, their own chain, truncation, roots. ``witness`` is a checkpoint
    the verifier saved earlier; the trail must still contain what it signed.
    ``start_frontier`` (the anchor checkpoint's, when starting mid-chain) lets roots be
    recomputed from ``first_sequence`` on.
    """
    items: Sequence[ChainRecord] = list(records)
    walk = _ChainWalk(items, first_sequence, first_prev_hash)
    error: VerifyError | None = None
    valid = 0
    for i, rec in enumerate(items):
        error = walk.check(i, rec)
        if error is not None:
            break
        valid += 1
    if error is None and expect_count is not None and len(items) < expect_count:
        error = walk.error(
            ErrorKind.TRUNCATED,
            walk.expected_sequence,
            len(items),
            f"{len(items)} records where {expect_count} were expected: the tail from "
            f"sequence {walk.expected_sequence} is missing",
        )
    last = items[valid - 1] if valid else None
    report = VerifyReport(
        source=source,
        total_records=len(items),
        records_valid=valid,
        first_sequence=items[0].sequence if items else None,
        last_sequence=last.sequence if last is not None else None,
        head_hash=last.record_hash if last is not None else None,
        error=error,
        gaps=tuple(walk.gaps),
    )
    all_checkpoints = [*checkpoints, *([witness] if witness is not None else [])]
    if not all_checkpoints:
        return report
    trusted = public_key if public_key is not None else all_checkpoints[0].public_key
    check = _CheckpointWalk(
        items[:valid], first_sequence, trusted, checkpoints, witness, chain_error=error,
        first_prev_hash=first_prev_hash, start_frontier=start_frontier,
    )  # fmt: skip
    cp_error = check.run()
    return replace(
        report,
        error=error or cp_error,
        checkpoints_total=len(checkpoints),
        checkpoints_valid=check.valid,
        latest_checkpoint=check.latest,
        key_id=key_id_of(trusted) if len(trusted) == 32 else None,
        key_pinned=public_key is not None,
    )


class _CheckpointWalk:
    """Checks checkpoints against the verified records; ``run`` returns the first error."""

    def __init__(
        self,
        records: Sequence[ChainRecord],
        first_sequence: int,
        trusted: bytes,
        checkpoints: Sequence[SignedCheckpoint],
        witness: SignedCheckpoint | None,
        *,
        chain_error: VerifyError | None,
        first_prev_hash: str = GENESIS_HASH,
        start_frontier: Frontier | None = None,
    ) -> None:
        self.records = records
        self.first_sequence = first_sequence
        self.first_prev_hash = first_prev_hash
        self.trusted = trusted
        self.checkpoints = checkpoints
        self.witness = witness
        self.chain_error = chain_error
        self.valid = 0
        self.latest: SignedCheckpoint | None = None
        # Leaves 0..first_sequence-1 are known only through a replay anchor's frontier.
        self.frontier: Frontier | None = (
            start_frontier.copy() if start_frontier is not None
            else Frontier() if first_sequence == 0 else None
        )  # fmt: skip

    @staticmethod
    def error(kind: ErrorKind, sequence: int | None, cp: SignedCheckpoint, j: int,
              message: str) -> VerifyError:  # fmt: skip
        return VerifyError(kind, sequence, j, message, cp.location, checkpoint=cp.body.index)

    def run(self) -> VerifyError | None:
        for j, cp in enumerate(self.checkpoints):
            try:
                cp.verify(self.trusted)
            except CheckpointError as exc:
                last = cp.body.tree_size - 1 if cp.body.tree_size else None
                return self.error(ErrorKind.CHECKPOINT_SIGNATURE, last, cp, j, str(exc))
        fork = self._fork()
        if fork is not None or self.chain_error is not None:
            return fork
        previous: SignedCheckpoint | None = None
        for j, cp in enumerate(self.checkpoints):
            problem = self._extends(previous, cp, j) or self._matches(previous, cp, j)
            if problem is not None:
                return problem
            previous = cp
            self.valid += 1
            self.latest = cp
        return self._witness()

    def _fork(self) -> VerifyError | None:
        roots: dict[int, SignedCheckpoint] = {}
        for j, cp in enumerate(self.checkpoints):
            seen = roots.setdefault(cp.body.tree_size, cp)
            if seen.body.root_hash != cp.body.root_hash:
                return self.error(
                    ErrorKind.CHECKPOINT_FORK,
                    cp.body.tree_size - 1,
                    cp,
                    j,
                    f"checkpoints #{seen.body.index} ({seen.location or 'earlier'}) and "
                    f"#{cp.body.index} both sign size {cp.body.tree_size}, with roots "
                    f"{seen.body.root_hash} and {cp.body.root_hash}: the log was forked",
                )
        return None

    def _extends(
        self, previous: SignedCheckpoint | None, cp: SignedCheckpoint, j: int
    ) -> VerifyError | None:
        b = cp.body
        if previous is None:
            if b.index != 0 and self.first_sequence == 0:
                return self.error(
                    ErrorKind.CHECKPOINT_BROKEN, None, cp, j,
                    f"the first checkpoint has index {b.index}: checkpoints 0..{b.index - 1} "
                    "are missing",
                )  # fmt: skip
            return None
        p = previous.body
        if b.index != p.index + 1:
            why = "missing" if b.index > p.index + 1 else "out of order or repeated"
            return self.error(
                ErrorKind.CHECKPOINT_BROKEN, b.tree_size - 1, cp, j,
                f"checkpoint #{b.index} follows #{p.index}: checkpoints are {why}",
            )  # fmt: skip
        if b.previous_signature != previous.signature_b64:
            return self.error(
                ErrorKind.CHECKPOINT_BROKEN, b.tree_size - 1, cp, j,
                f"checkpoint #{b.index} does not embed the signature of checkpoint #{p.index}",
            )  # fmt: skip
        if b.tree_size <= p.tree_size:
            return self.error(
                ErrorKind.CHECKPOINT_BROKEN, b.tree_size - 1, cp, j,
                f"checkpoint #{b.index} has size {b.tree_size}, not more than #{p.index}'s "
                f"{p.tree_size}",
            )  # fmt: skip
        return None

    def _root_at(self, size: int) -> bytes | None:
        """Root over records 0..size-1; None when it cannot be known (mid-chain, no frontier)."""
        if self.frontier is None:
            return None
        while self.frontier.size < size:
            self.frontier.append(
                leaf_hash(self.records[self.frontier.size - self.first_sequence].record)
            )
        return self.frontier.root()

    def _head_at(self, size: int) -> str:
        if size == self.first_sequence:
            return self.first_prev_hash
        return self.records[size - 1 - self.first_sequence].record_hash

    def _matches(
        self, previous: SignedCheckpoint | None, cp: SignedCheckpoint, j: int
    ) -> VerifyError | None:
        b = cp.body
        have = self.first_sequence + len(self.records)
        if b.tree_size > have:
            return self.error(
                ErrorKind.TRUNCATED, have, cp, j,
                f"signed checkpoint #{b.index} covers {b.tree_size} records, the trail has "
                f"{have}: the tail from sequence {have} is missing",
            )  # fmt: skip
        if b.tree_size < self.first_sequence:
            return None  # before a replay anchor: signature and chain checked only
        since = previous.body.tree_size if previous is not None else 0
        computed = self._root_at(b.tree_size)
        root = b.root_hash if computed is None else computed.hex()
        head = self._head_at(b.tree_size)
        if root != b.root_hash or head != b.chain_head:
            what = "root" if root != b.root_hash else "chain head"
            got, signed = (root, b.root_hash) if what == "root" else (head, b.chain_head)
            return self.error(
                ErrorKind.CHECKPOINT_MISMATCH, since, cp, j,
                f"records {since}..{b.tree_size - 1} do not match signed checkpoint "
                f"#{b.index}: recomputed {what} {got}, signed {signed} (records were "
                "rewritten and re-chained, or inserted or removed)",
            )  # fmt: skip
        return None

    def _witness(self) -> VerifyError | None:
        w = self.witness
        if w is None:
            return None
        j = len(self.checkpoints)
        try:
            w.verify(self.trusted)
        except CheckpointError as exc:
            return self.error(ErrorKind.CHECKPOINT_SIGNATURE, None, w, j, f"witness: {exc}")
        b = w.body
        have = self.first_sequence + len(self.records)
        if b.tree_size > have:
            return self.error(
                ErrorKind.TRUNCATED, have, w, j,
                f"the saved checkpoint #{b.index} signed {b.tree_size} records, the trail now "
                f"has {have}: the tail from sequence {have} was removed",
            )  # fmt: skip
        now = self._root_at(b.tree_size) if b.tree_size >= self.first_sequence else None
        if now is not None and now.hex() != b.root_hash:
            return self.error(
                ErrorKind.CHECKPOINT_FORK, b.tree_size - 1, w, j,
                f"the saved checkpoint #{b.index} signed root {b.root_hash} for size "
                f"{b.tree_size}; the trail now gives {now.hex()}: its history was rewritten",
            )  # fmt: skip
        return None


# -- sources ---------------------------------------------------------------------------


def _table(schema: str | None, name: str) -> str:
    return name if schema is None else f'"{check_identifier(schema)}".{name}'


async def read_database_records(pool: Pool, *, schema: str | None = None) -> list[ChainRecord]:
    """Every record of the chain table, ordered by sequence.

    ``schema`` names the audit schema; by default the pool's search path finds it
    (``create_pool(dsn, schema="audit")``).
    """
    table = _table(schema, "audit_records")
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT sequence, prev_hash, record_hash, record, kind FROM {table} ORDER BY sequence"  # noqa: S608 - checked identifier
        )
    return [
        ChainRecord(
            sequence=int(r["sequence"]),
            prev_hash=str(r["prev_hash"]),
            record_hash=str(r["record_hash"]),
            record=bytes(r["record"]),
            location=f"{table} sequence {r['sequence']}",
            kind=str(r["kind"]),
        )
        for r in rows
    ]


async def read_database_checkpoints(
    pool: Pool, *, schema: str | None = None
) -> list[SignedCheckpoint]:
    """Every stored checkpoint, by index; a stored body that does not parse is an error."""
    table = _table(schema, "audit_checkpoints")
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT checkpoint_index, signed_body, signature, public_key FROM {table} "  # noqa: S608 - checked identifier
            "ORDER BY checkpoint_index"
        )
    return [
        SignedCheckpoint(
            CheckpointBody.parse(bytes(r["signed_body"])),
            bytes(r["signed_body"]),
            bytes(r["signature"]),
            bytes(r["public_key"]),
            f"{table} checkpoint {r['checkpoint_index']}",
        )
        for r in rows
    ]


async def verify_database(
    pool: Pool,
    *,
    schema: str | None = None,
    expect_count: int | None = None,
    public_key: bytes | None = None,
    witness: SignedCheckpoint | None = None,
) -> VerifyReport:
    """Verify the chain and checkpoints stored in PostgreSQL (see ``read_database_records``)."""
    records = await read_database_records(pool, schema=schema)
    checkpoints = await read_database_checkpoints(pool, schema=schema)
    where = f"database schema {schema}" if schema else "database"
    first = records[0].sequence if records else 0
    anchor = _anchor(checkpoints, first)
    frontier = None
    if anchor is not None:
        async with pool.acquire() as conn:
            peaks = await conn.fetchval(
                f"SELECT frontier FROM {_table(schema, 'audit_checkpoints')} "  # noqa: S608 - checked identifier
                "WHERE checkpoint_index = $1",
                anchor.body.index,
            )
        frontier = Frontier.from_hex(anchor.body.tree_size, peaks)
    return verify_records(
        records,
        source=where,
        expect_count=expect_count,
        checkpoints=checkpoints,
        public_key=public_key,
        witness=witness,
        first_sequence=first,
        first_prev_hash=anchor.body.chain_head if anchor is not None else GENESIS_HASH,
        start_frontier=frontier,
    )


def _anchor(checkpoints: Sequence[SignedCheckpoint], first: int) -> SignedCheckpoint | None:
    """The checkpoint a trail starting at sequence ``first`` (> 0) was replayed from."""
    if first == 0:
        return None
    return next((c for c in checkpoints if c.body.tree_size == first), None)


@dataclass(frozen=True)
class TopicRead:
    """What ``read_topic_records`` found on the audit topic."""

    records: list[ChainRecord]
    redelivered: int
    """Exact copies of an already-read message (same envelope id and content)."""
    unreadable: tuple[int, str] | None
    """(offset, reason) of the first message that is neither record nor checkpoint."""
    end_offset: int
    checkpoints: list[SignedCheckpoint] = field(default_factory=list)
    sealed: list[AuditRecordSealed] = field(default_factory=list)
    """The AuditRecordSealed events themselves (``keep_sealed=True``), parallel to records."""
    checkpoint_events: list[AuditCheckpointSigned] = field(default_factory=list)
    start_offset: int = 0


async def read_topic_records(
    bootstrap: str,
    topic: str = topics.AUDIT,
    *,
    timeout_s: float = 60.0,
    keep_sealed: bool = False,
    start_offset: int = 0,
) -> TopicRead:
    """Read ``topic`` (one partition) from ``start_offset`` to its end offset at call time.

    Raises ``ValueError`` for a topic that does not exist or has more than one partition,
    ``TimeoutError`` when the end is not reached within ``timeout_s``.
    """
    partitions = await _partitions(bootstrap, topic)
    if partitions != {0}:
        raise ValueError(
            f"audit topic {topic!r} has partitions {sorted(partitions)}; "
            "the chain needs exactly one (partition 0)"
        )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **kafka_auth().aiokafka(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        if start_offset:
            consumer.seek(tp, start_offset)
        else:
            await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        reader = _TopicReader(tp, keep_sealed)
        read = await reader.read_until(consumer, end, timeout_s)
        return replace(read, start_offset=start_offset)
    finally:
        await consumer.stop()


async def topic_offset_for_time(bootstrap: str, topic: str, when_ms: int) -> int:
    """First offset of ``topic`` partition 0 with a timestamp >= ``when_ms`` (else the end)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, **kafka_auth().aiokafka(), enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        found = await consumer.offsets_for_times({tp: when_ms})
        hit = found.get(tp)
        if hit is not None:
            return int(hit.offset)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topic: str) -> set[int]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, **kafka_auth().aiokafka(), request_timeout_ms=10_000
    )
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    found = [t for t in described if t.get("topic") == topic and t.get("error_code") == 0]
    if not found:
        raise ValueError(f"audit topic {topic!r} does not exist on {bootstrap}")
    return {int(p["partition"]) for p in found[0]["partitions"]}


class _TopicReader:
    """Turns audit-topic messages into chain records and checkpoints, collapsing re-publishes."""

    def __init__(self, tp: TopicPartition, keep_sealed: bool) -> None:
        self.tp = tp
        self.keep_sealed = keep_sealed
        self.records: list[ChainRecord] = []
        self.sealed: list[AuditRecordSealed] = []
        self.checkpoints: list[SignedCheckpoint] = []
        self.checkpoint_events: list[AuditCheckpointSigned] = []
        self.kept: dict[str, bytes] = {}
        self.redelivered = 0
        self.unreadable: tuple[int, str] | None = None

    async def read_until(self, consumer: AIOKafkaConsumer, end: int, timeout_s: float) -> TopicRead:
        tp = self.tp
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while await consumer.position(tp) < end and self.unreadable is None:
            if loop.time() > deadline:
                raise TimeoutError(
                    f"read {tp.topic} to offset {await consumer.position(tp)} of {end} "
                    f"in {timeout_s}s; retry with a longer timeout"
                )
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=5000)
            for message in batch.get(tp, []):
                if message.offset >= end:
                    break
                if not self.take(message.offset, message.value or b""):
                    break
        return TopicRead(
            records=self.records,
            redelivered=self.redelivered,
            unreadable=self.unreadable,
            end_offset=end,
            checkpoints=self.checkpoints,
            sealed=self.sealed,
            checkpoint_events=self.checkpoint_events,
        )

    def take(self, offset: int, value: bytes) -> bool:
        """Take one message; False (and ``unreadable`` set) when reading must stop."""
        location = f"{self.tp.topic}:{self.tp.partition}@{offset}"
        try:
            env = parse_envelope(value)
        except ContractError as exc:
            self.unreadable = (offset, str(exc))
            return False
        # The outbox relay publishes at least once: a re-publish after a crash is the
        # same envelope (same id), byte for byte; anything else is verified.
        digest = hashlib.sha256(value).digest()
        previous = self.kept.get(env.id)
        if previous is not None and previous == digest:
            self.redelivered += 1
            return True
        self.kept.setdefault(env.id, digest)
        if isinstance(env.data, AuditRecordSealed):
            sealed: AuditRecordSealed = env.data
            self.records.append(
                ChainRecord(
                    sequence=sealed.sequence,
                    prev_hash=sealed.prev_hash,
                    record_hash=sealed.record_hash,
                    record=sealed.record.encode(),
                    location=location,
                    kind=str(sealed.kind),
                )
            )
            if self.keep_sealed:
                self.sealed.append(sealed)
        elif isinstance(env.data, AuditCheckpointSigned):
            try:
                self.checkpoints.append(checkpoint_from_event(env.data, location))
            except CheckpointError as exc:
                self.unreadable = (offset, f"checkpoint {env.data.checkpoint_index}: {exc}")
                return False
            if self.keep_sealed:
                self.checkpoint_events.append(env.data)
        else:
            self.unreadable = (offset, f"{env.type} does not belong on the audit topic")
            return False
        return True


def checkpoint_from_event(event: AuditCheckpointSigned, location: str = "") -> SignedCheckpoint:
    """The signed checkpoint an event carries; ``CheckpointError`` when its copies disagree."""
    body = CheckpointBody.parse(event.signed_body)
    copies = {
        "checkpoint_index": (event.checkpoint_index, body.index),
        "tree_size": (event.tree_size, body.tree_size),
        "root_hash": (event.root_hash, body.root_hash),
        "chain_head": (event.chain_head, body.chain_head),
        "key_id": (event.key_id, body.key_id),
        "origin": (event.origin, body.origin),
    }
    for name, (outside, signed) in copies.items():
        if outside != signed:
            raise CheckpointError(f"{name} {outside!r} differs from the signed {signed!r}")
    if event.frontier:
        frontier = Frontier.from_hex(body.tree_size, event.frontier)
        if frontier.root().hex() != body.root_hash:
            raise CheckpointError("its frontier does not fold into the signed root")
    return SignedCheckpoint(
        body,
        event.signed_body.encode(),
        base64.b64decode(event.signature),
        base64.b64decode(event.public_key),
        location,
    )


async def verify_topic(
    bootstrap: str,
    topic: str = topics.AUDIT,
    *,
    timeout_s: float = 60.0,
    expect_count: int | None = None,
    public_key: bytes | None = None,
    witness: SignedCheckpoint | None = None,
) -> VerifyReport:
    """Verify the chain and checkpoints from the audit topic alone (offset 0 to its end)."""
    read = await read_topic_records(bootstrap, topic, timeout_s=timeout_s)
    return verify_topic_read(
        read, topic, expect_count=expect_count, public_key=public_key, witness=witness
    )


def verify_topic_read(
    read: TopicRead,
    topic: str,
    *,
    expect_count: int | None = None,
    public_key: bytes | None = None,
    witness: SignedCheckpoint | None = None,
) -> VerifyReport:
    """``verify_topic`` on what ``read_topic_records`` returned."""
    source = f"topic {topic} (offsets {read.start_offset}..{read.end_offset})"
    report = verify_records(
        read.records,
        source=source,
        expect_count=expect_count,
        checkpoints=read.checkpoints,
        public_key=public_key,
        witness=witness,
    )
    if report.ok and read.unreadable is not None:
        offset, reason = read.unreadable
        report = replace(
            report,
            total_records=report.total_records + 1,
            error=VerifyError(
                ErrorKind.MALFORMED,
                None,
                len(read.records),
                f"message is not a valid audit record or checkpoint: {reason}",
                f"{topic}:0@{offset}",
            ),
        )
    return replace(report, redelivered=read.redelivered)
