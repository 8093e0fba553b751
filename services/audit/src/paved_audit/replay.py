"""Rebuild the audit store from the audit topic alone, into an empty schema, and compare
the rebuilt trail with the last signed checkpoint, byte for byte.

- From the start (default): every record and checkpoint from offset 0.
- ``since``: from the last checkpoint published before that time; the store starts at
  that checkpoint (its signed chain head and frontier are the anchor) instead of at 0.
- ``model``: the whole trail is still replayed (the signed root covers every record),
  and the model's records are listed, each provably inside the signed tree.

The topic is verified in memory first; only the verified prefix is written, and the
store's own triggers re-check every link while it is written. The root is then
recomputed from the store (``sha256(0x00 || record)`` in PostgreSQL, folded here) and
compared with the signed root.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib import resources

from paved_schemas import topics
from paved_schemas.events import AuditCheckpointSigned
from paved_shared.db import Connection, Pool, create_pool, load_migrations, migrate

from paved_audit.domain.checkpoint import SignedCheckpoint
from paved_audit.domain.merkle import Frontier, leaf_hash
from paved_audit.export import belongs_to
from paved_audit.verify import (
    TopicRead,
    VerifyReport,
    checkpoint_from_event,
    read_topic_records,
    topic_offset_for_time,
    verify_database,
    verify_records,
    verify_topic_read,
)


class ReplayError(RuntimeError):
    """The replay cannot start (store not empty, no anchor checkpoint); says why."""


@dataclass
class ReplayReport:
    """What a replay rebuilt and whether it matches the last signed checkpoint."""

    schema: str
    topic_report: VerifyReport
    store_report: VerifyReport | None = None
    records_written: int = 0
    checkpoints_written: int = 0
    first_sequence: int = 0
    checkpoint: SignedCheckpoint | None = None
    recomputed_root: str | None = None
    model: str | None = None
    model_sequences: list[int] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        """True when the rebuilt store reproduces the signed root exactly."""
        return (
            self.checkpoint is not None
            and self.recomputed_root is not None
            and bytes.fromhex(self.recomputed_root) == bytes.fromhex(self.checkpoint.body.root_hash)
        )

    @property
    def ok(self) -> bool:
        store_ok = self.store_report is not None and self.store_report.ok
        return self.topic_report.ok and store_ok and self.matches

    def summary_lines(self) -> list[str]:
        lines = [*self.topic_report.summary_lines()]
        lines.append(
            f"Replayed into empty schema {self.schema}: {self.records_written} records "
            f"(from sequence {self.first_sequence}), {self.checkpoints_written} checkpoints"
        )
        if self.store_report is not None and not self.store_report.ok:
            lines.extend(f"store: {x}" for x in self.store_report.summary_lines())
        if self.checkpoint is None:
            lines.append("No signed checkpoint to compare with")
        else:
            b = self.checkpoint.body
            verdict = "MATCHES" if self.matches else "DOES NOT MATCH"
            lines.append(
                f"Rebuilt root at size {b.tree_size}: {self.recomputed_root} {verdict} the "
                f"root signed in checkpoint #{b.index}: {b.root_hash}"
            )
        if self.model is not None:
            lines.append(
                f"Model {self.model}: {len(self.model_sequences)} records "
                f"(sequences {', '.join(map(str, self.model_sequences[:20]))}"
                f"{', ...' if len(self.model_sequences) > 20 else ''})"
            )
        return lines


async def prepare_empty_store(pool: Pool, schema: str) -> None:
    """Create the audit tables in ``schema``; ``ReplayError`` when they already hold rows."""
    migrations = load_migrations("paved_audit", resources.files("paved_audit") / "migrations")
    await migrate(pool, schema, migrations)
    async with pool.acquire() as conn:
        records = await conn.fetchval(f'SELECT count(*) FROM "{schema}".audit_records')  # noqa: S608 - checked by create_pool
        checkpoints = await conn.fetchval(f'SELECT count(*) FROM "{schema}".audit_checkpoints')  # noqa: S608
    if records or checkpoints:
        raise ReplayError(
            f"schema {schema!r} already holds {records} audit records and {checkpoints} "
            "checkpoints; replay needs an empty store (pick a new --schema)"
        )


async def _anchor_offset(bootstrap: str, topic: str, since: datetime) -> int:
    """Offset of the last checkpoint published before ``since`` (ReplayError if none)."""
    target = await topic_offset_for_time(bootstrap, topic, int(since.timestamp() * 1000))
    window = 2048
    while True:
        start = max(0, target - window)
        read = await read_topic_records(bootstrap, topic, start_offset=start, keep_sealed=True)
        before = [
            (int(c.location.rsplit("@", 1)[1]), c) for c in read.checkpoints
            if int(c.location.rsplit("@", 1)[1]) < max(target, 1)
        ]  # fmt: skip
        if before:
            return before[-1][0]
        if start == 0:
            raise ReplayError(
                f"no checkpoint was published on {topic} before {since.isoformat()}; "
                "replay from the start instead"
            )
        window *= 4


async def replay_topic(
    bootstrap: str,
    dsn: str,
    schema: str,
    *,
    topic: str = topics.AUDIT,
    since: datetime | None = None,
    model: str | None = None,
    public_key: bytes | None = None,
    timeout_s: float = 600.0,
) -> ReplayReport:
    """Rebuild ``schema`` from ``topic`` and compare it with the last signed checkpoint."""
    pool = await create_pool(dsn, schema=schema, min_size=1, max_size=2)
    try:
        await prepare_empty_store(pool, schema)
        start = 0 if since is None else await _anchor_offset(bootstrap, topic, since)
        read = await read_topic_records(
            bootstrap, topic, timeout_s=timeout_s, keep_sealed=True, start_offset=start
        )
        return await _rebuild(pool, schema, topic, read, model=model, public_key=public_key)
    finally:
        await pool.close()


async def _rebuild(
    pool: Pool,
    schema: str,
    topic: str,
    read: TopicRead,
    *,
    model: str | None,
    public_key: bytes | None,
) -> ReplayReport:
    anchor = read.checkpoint_events[0] if read.start_offset and read.checkpoint_events else None
    first = anchor.tree_size if anchor is not None else 0
    if anchor is not None:
        # Records sealed before the anchor may sit after it on the topic (outbox order
        # is the sealing order, so this is rare): keep those from the anchor on.
        keep = [i for i, r in enumerate(read.records) if r.sequence >= first]
        read.records[:] = [read.records[i] for i in keep]
        read.sealed[:] = [read.sealed[i] for i in keep]
    report = ReplayReport(
        schema=schema, topic_report=_verify(read, topic, first, anchor, public_key)
    )
    tr = report.topic_report
    valid = read.sealed[: tr.records_valid]
    good = read.checkpoint_events[: tr.checkpoints_valid]
    async with pool.acquire() as conn, conn.transaction():
        frontier = Frontier.from_hex(first, anchor.frontier) if anchor is not None else Frontier()
        cps = list(good)
        if anchor is not None:
            await _insert_checkpoint(conn, anchor, frontier)
            cps = cps[1:]
        rows = []
        for s in valid:
            rows.append((
                s.sequence, s.event_id, s.event_type, s.subject, s.event_time, s.source_topic,
                s.source_partition, s.source_offset, s.record.encode(), s.prev_hash,
                s.record_hash, s.sealed_at,
            ))  # fmt: skip
        for i in range(0, len(rows), 5000):
            await conn.copy_records_to_table(
                "audit_records",
                records=rows[i : i + 5000],
                columns=[
                    "sequence", "event_id", "event_type", "subject", "event_time",
                    "source_topic", "source_partition", "source_offset", "record",
                    "prev_hash", "record_hash", "sealed_at",
                ],
                schema_name=schema,
            )  # fmt: skip
        position = 0
        for cp in cps:
            while frontier.size + first < cp.tree_size:
                frontier.append(leaf_hash(valid[position].record.encode()))
                position += 1
            await _insert_checkpoint(conn, cp, frontier)
    report.records_written = len(valid)
    report.checkpoints_written = len(good)
    report.first_sequence = first
    report.store_report = await verify_database(pool, schema=schema, public_key=public_key)
    report.checkpoint = report.store_report.latest_checkpoint
    if report.checkpoint is not None:
        report.recomputed_root = await _root_from_store(pool, schema, report.checkpoint, anchor)
    if model is not None:
        report.model = model
        report.model_sequences = [
            s.sequence for s in valid if belongs_to(s.record.encode(), model, None)
        ]
    return report


def _verify(
    read: TopicRead,
    topic: str,
    first: int,
    anchor: AuditCheckpointSigned | None,
    public_key: bytes | None,
) -> VerifyReport:
    if anchor is None:
        return verify_topic_read(read, topic, public_key=public_key)
    cp = read.checkpoints[0]
    report = verify_records(
        read.records,
        source=f"topic {topic} (offsets {read.start_offset}..{read.end_offset}, "
        f"anchored at checkpoint #{cp.body.index})",
        first_sequence=first,
        first_prev_hash=cp.body.chain_head,
        checkpoints=read.checkpoints,
        public_key=public_key,
        start_frontier=Frontier.from_hex(anchor.tree_size, anchor.frontier),
    )
    return replace(report, redelivered=read.redelivered)


async def _insert_checkpoint(
    conn: Connection, event: AuditCheckpointSigned, frontier: Frontier
) -> None:
    cp = checkpoint_from_event(event)
    await conn.execute(
        "INSERT INTO audit_checkpoints (checkpoint_index, tree_size, root_hash, chain_head, "
        "key_id, signed_body, signature, public_key, frontier, issued_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        cp.body.index, cp.body.tree_size, cp.body.root_hash, cp.body.chain_head, cp.body.key_id,
        cp.signed_body, cp.signature, cp.public_key, frontier.to_hex(), event.issued_at,
    )  # fmt: skip


async def _root_from_store(
    pool: Pool, schema: str, cp: SignedCheckpoint, anchor: AuditCheckpointSigned | None
) -> str:
    """Root at ``cp``'s size, from the leaves PostgreSQL hashes over the stored records."""
    size = cp.body.tree_size
    if anchor is not None:
        frontier = Frontier.from_hex(anchor.tree_size, anchor.frontier)
    else:
        frontier = Frontier()
    async with pool.acquire() as conn, conn.transaction():
        async for row in conn.cursor(
            f"SELECT sha256('\\x00'::bytea || record) AS leaf FROM \"{schema}\".audit_records "  # noqa: S608 - checked by create_pool
            "WHERE sequence >= $1 AND sequence < $2 ORDER BY sequence",
            frontier.size,
            size,
            prefetch=5000,
        ):
            frontier.append(bytes(row["leaf"]))
    return frontier.root().hex()
