"""Verify the audit hash chain, from the database or from the audit topic alone.

``verify_records`` recomputes the chain over records in the order given and names
the first bad record with a distinct ``ErrorKind``; ``verify_database`` and
``verify_topic`` read the two copies of the chain and verify them. Everything
returns data (a ``VerifyReport``); nothing prints.

A chain verifies when, in order, every record has sequence ``first_sequence + i``,
``prev_hash`` equal to the previous ``record_hash`` (``GENESIS_HASH`` for sequence
0), ``record_hash == sha256(bytes.fromhex(prev_hash) + record)``, a record that is
canonical RFC 8785 JSON of an object with a string ``id``, and an ``id`` sealed once.
A truncated tail is only visible against an expected size (``expect_count``); signed
checkpoints (a later issue) will supply one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from paved_schemas import topics
from paved_schemas.envelope import ContractError, parse_envelope_as
from paved_schemas.events import AuditRecordSealed
from paved_shared.db import Pool

from paved_audit.domain.chain import (
    GENESIS_HASH,
    CanonicalizationError,
    canonicalize_value,
    chain_hash,
    is_hex_sha256,
    parse_json_object,
)

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
    REORDERED = "reordered"
    """Records out of order: a later sequence comes first, or prev_hash links to another record."""
    LINK_BROKEN = "link_broken"
    """prev_hash matches no record: the previous record was rewritten and re-hashed, or removed."""
    TRUNCATED = "truncated"
    """Fewer records than expected: the tail was cut off."""


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
        lines.extend(self.notes)
        return lines


def _shape_problem(rec: ChainRecord) -> tuple[str | None, str | None]:
    """(problem, event id) of one record on its own; problem None when well formed."""
    problem: str | None = None
    event_id: str | None = None
    if not is_hex_sha256(rec.prev_hash):
        problem = f"prev_hash {rec.prev_hash!r} is not 64 lowercase hex digits"
    elif not is_hex_sha256(rec.record_hash):
        problem = f"record_hash {rec.record_hash!r} is not 64 lowercase hex digits"
    elif rec.sequence < 0:
        problem = f"sequence {rec.sequence} is negative"
    else:
        try:
            document = parse_json_object(rec.record)
            canonical = canonicalize_value(document)
        except CanonicalizationError as exc:
            return f"record is not an RFC 8785 JSON object: {exc}", None
        found = document.get("id")
        if not isinstance(found, str) or not found:
            problem = "record has no string 'id'"
        else:
            event_id = found
            if canonical != rec.record:
                problem = "record is valid JSON but not in RFC 8785 canonical form"
    return problem, event_id


class _ChainWalk:
    """State of one verification pass; ``check`` returns the error of one record or None."""

    def __init__(
        self, items: Sequence[ChainRecord], first_sequence: int, first_prev_hash: str
    ) -> None:
        self.items = items
        self.expected_sequence = first_sequence
        self.expected_prev = first_prev_hash
        self.seen_ids: dict[str, int] = {}
        # Lookahead for classification: where each sequence and each hash occurs.
        self.positions_of_sequence: dict[int, list[int]] = {}
        self.position_of_hash: dict[str, int] = {}
        for i, rec in enumerate(items):
            self.positions_of_sequence.setdefault(rec.sequence, []).append(i)
            self.position_of_hash.setdefault(rec.record_hash, i)

    def error(self, kind: ErrorKind, sequence: int | None, i: int, message: str) -> VerifyError:
        location = self.items[i].location if i < len(self.items) else ""
        return VerifyError(kind, sequence, i, message, location)

    def check(self, i: int, rec: ChainRecord) -> VerifyError | None:
        problem, event_id = _shape_problem(rec)
        if problem is not None or event_id is None:
            return self.error(ErrorKind.MALFORMED, rec.sequence, i, problem or "no id")
        recomputed = chain_hash(rec.prev_hash, rec.record)
        if recomputed != rec.record_hash:
            return self.error(
                ErrorKind.CONTENT_CHANGED,
                rec.sequence,
                i,
                f"sha256(prev_hash + record) is {recomputed}, the record says "
                f"{rec.record_hash}: its content was changed",
            )
        error = self.check_sequence(i, rec) or self.check_id(i, rec, event_id)
        if error is None:
            error = self.check_link(i, rec)
        if error is None:
            self.seen_ids[event_id] = rec.sequence
            self.expected_sequence += 1
            self.expected_prev = rec.record_hash
        return error

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
) -> VerifyReport:
    """Recompute the chain over ``records`` in the order given; name the first bad record.

    ``first_sequence``/``first_prev_hash`` start verification mid-chain (defaults: the
    genesis). ``expect_count``, when known from elsewhere, turns a short chain into a
    ``TRUNCATED`` error. Checks per record, first failure wins: shape (``MALFORMED``),
    hash (``CONTENT_CHANGED``), sequence (``GAP``/``REORDERED``/``DUPLICATE``), event id
    (``DUPLICATE``), link to the previous record (``REORDERED``/``LINK_BROKEN``).
    Verification stops at the first bad record: nothing after it can be trusted.
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
    return VerifyReport(
        source=source,
        total_records=len(items),
        records_valid=valid,
        first_sequence=items[0].sequence if items else None,
        last_sequence=last.sequence if last is not None else None,
        head_hash=last.record_hash if last is not None else None,
        error=error,
    )


# -- sources ---------------------------------------------------------------------------


async def read_database_records(pool: Pool, *, schema: str | None = None) -> list[ChainRecord]:
    """Every record of the chain table, ordered by sequence.

    ``schema`` names the audit schema; by default the pool's search path finds it
    (``create_pool(dsn, schema="audit")``).
    """
    table = "audit_records"
    if schema is not None:
        from paved_shared.db import check_identifier

        table = f'"{check_identifier(schema)}".audit_records'
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT sequence, prev_hash, record_hash, record FROM {table} ORDER BY sequence"  # noqa: S608 - checked identifier
        )
    return [
        ChainRecord(
            sequence=int(r["sequence"]),
            prev_hash=str(r["prev_hash"]),
            record_hash=str(r["record_hash"]),
            record=bytes(r["record"]),
            location=f"{table} sequence {r['sequence']}",
        )
        for r in rows
    ]


async def verify_database(
    pool: Pool, *, schema: str | None = None, expect_count: int | None = None
) -> VerifyReport:
    """Verify the chain stored in PostgreSQL (see ``read_database_records``)."""
    records = await read_database_records(pool, schema=schema)
    where = f"database schema {schema}" if schema else "database"
    return verify_records(records, source=where, expect_count=expect_count)


@dataclass(frozen=True)
class TopicRead:
    """What ``read_topic_records`` found on the audit topic."""

    records: list[ChainRecord]
    redelivered: int
    """Exact copies of an already-read AuditRecordSealed (same envelope id and content)."""
    unreadable: tuple[int, str] | None
    """(offset, reason) of the first message that is not an AuditRecordSealed; reading stops."""
    end_offset: int


async def read_topic_records(
    bootstrap: str, topic: str = topics.AUDIT, *, timeout_s: float = 60.0
) -> TopicRead:
    """Read ``topic`` (one partition) from offset 0 to its end offset at the time of the call.

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
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        return await _read_until(consumer, tp, end, timeout_s)
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topic: str) -> set[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    found = [t for t in described if t.get("topic") == topic and t.get("error_code") == 0]
    if not found:
        raise ValueError(f"audit topic {topic!r} does not exist on {bootstrap}")
    return {int(p["partition"]) for p in found[0]["partitions"]}


async def _read_until(
    consumer: AIOKafkaConsumer, tp: TopicPartition, end: int, timeout_s: float
) -> TopicRead:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    records: list[ChainRecord] = []
    kept: dict[str, ChainRecord] = {}
    redelivered = 0
    unreadable: tuple[int, str] | None = None
    while await consumer.position(tp) < end and unreadable is None:
        if loop.time() > deadline:
            raise TimeoutError(
                f"read {tp.topic} to offset {await consumer.position(tp)} of {end} "
                f"in {timeout_s}s; retry with a longer timeout"
            )
        batch = await consumer.getmany(tp, timeout_ms=500)
        for message in batch.get(tp, []):
            if message.offset >= end:
                break
            try:
                env = parse_envelope_as(message.value or b"", AuditRecordSealed)
            except ContractError as exc:
                unreadable = (message.offset, str(exc))
                break
            sealed: AuditRecordSealed = env.data
            rec = ChainRecord(
                sequence=sealed.sequence,
                prev_hash=sealed.prev_hash,
                record_hash=sealed.record_hash,
                record=sealed.record.encode(),
                location=f"{tp.topic}:{tp.partition}@{message.offset}",
            )
            # The outbox relay publishes at least once: a re-publish after a crash is the
            # same envelope (same id) with the same content; anything else is verified.
            previous = kept.get(env.id)
            if previous is not None and _same(previous, rec):
                redelivered += 1
                continue
            kept.setdefault(env.id, rec)
            records.append(rec)
    return TopicRead(
        records=records, redelivered=redelivered, unreadable=unreadable, end_offset=end
    )


def _same(a: ChainRecord, b: ChainRecord) -> bool:
    return (a.sequence, a.prev_hash, a.record_hash, a.record) == (
        b.sequence,
        b.prev_hash,
        b.record_hash,
        b.record,
    )


async def verify_topic(
    bootstrap: str,
    topic: str = topics.AUDIT,
    *,
    timeout_s: float = 60.0,
    expect_count: int | None = None,
) -> VerifyReport:
    """Verify the chain from the audit topic alone (offset 0 to the current end offset)."""
    read = await read_topic_records(bootstrap, topic, timeout_s=timeout_s)
    source = f"topic {topic} (offsets 0..{read.end_offset})"
    report = verify_records(read.records, source=source, expect_count=expect_count)
    if report.ok and read.unreadable is not None:
        offset, reason = read.unreadable
        report = replace(
            report,
            total_records=report.total_records + 1,
            error=VerifyError(
                ErrorKind.MALFORMED,
                None,
                len(read.records),
                f"message is not an AuditRecordSealed: {reason}",
                f"{topic}:0@{offset}",
            ),
        )
    return replace(report, redelivered=read.redelivered)
