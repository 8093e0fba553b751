"""Read queries over the audit tables (the API's data access). Nothing here writes."""

from __future__ import annotations

import json
from typing import Any

from paved_shared.db import Connection

from paved_audit.domain.checkpoint import CheckpointBody, SignedCheckpoint
from paved_audit.export import belongs_to

_RECORD_COLUMNS = (
    "sequence, event_id, event_type, subject, event_time, source_topic, source_partition, "
    "source_offset, record, prev_hash, record_hash, sealed_at, kind"
)


def record_view(row: Any) -> dict[str, Any]:
    """A stored record as the API shows it (the audited envelope parsed)."""
    return {
        "sequence": int(row["sequence"]),
        "kind": row["kind"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "subject": row["subject"],
        "event_time": row["event_time"].isoformat(),
        "source": f"{row['source_topic']}:{row['source_partition']}@{row['source_offset']}",
        "prev_hash": row["prev_hash"],
        "record_hash": row["record_hash"],
        "sealed_at": row["sealed_at"].isoformat(),
        "record": json.loads(bytes(row["record"])),
    }


async def list_records(
    conn: Connection, *, after: int, limit: int, kind: str | None = None
) -> list[dict[str, Any]]:
    """Records with sequence > ``after``, in order, at most ``limit``."""
    rows = await conn.fetch(
        f"SELECT {_RECORD_COLUMNS} FROM audit_records WHERE sequence > $1 "  # noqa: S608 - constant
        "AND ($3::text IS NULL OR kind = $3) ORDER BY sequence LIMIT $2",
        after, limit, kind,
    )  # fmt: skip
    return [record_view(r) for r in rows]


async def get_record(conn: Connection, sequence: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_RECORD_COLUMNS} FROM audit_records WHERE sequence = $1",  # noqa: S608 - constant
        sequence,
    )
    return None if row is None else record_view(row)


async def record_bytes(conn: Connection, sequence: int) -> bytes | None:
    value = await conn.fetchval("SELECT record FROM audit_records WHERE sequence = $1", sequence)
    return None if value is None else bytes(value)


async def model_records(
    conn: Connection, model: str, version: int | None, upto: int
) -> list[tuple[int, bytes]]:
    """(sequence, canonical record) of every record about ``model`` (and ``version``) below
    ``upto``, gaps whose original message names it included. A scan: exports are rare."""
    found: list[tuple[int, bytes]] = []
    async with conn.transaction():
        async for row in conn.cursor(
            "SELECT sequence, record FROM audit_records WHERE sequence < $1 ORDER BY sequence",
            upto,
            prefetch=2000,
        ):
            record = bytes(row["record"])
            if model.encode() in record and belongs_to(record, model, version):
                found.append((int(row["sequence"]), record))
    return found


async def leaf_hashes(conn: Connection, size: int) -> list[bytes]:
    """RFC 6962 leaf hashes of records 0..size-1, computed by PostgreSQL."""
    rows = await conn.fetch(
        "SELECT sha256('\\x00'::bytea || record) AS leaf FROM audit_records "
        "WHERE sequence < $1 ORDER BY sequence",
        size,
    )
    return [bytes(r["leaf"]) for r in rows]


def _checkpoint(row: Any) -> SignedCheckpoint:
    return SignedCheckpoint(
        CheckpointBody.parse(bytes(row["signed_body"])),
        bytes(row["signed_body"]),
        bytes(row["signature"]),
        bytes(row["public_key"]),
        f"audit_checkpoints {row['checkpoint_index']}",
    )


async def checkpoints(
    conn: Connection, *, after: int = -1, limit: int = 1000
) -> list[SignedCheckpoint]:
    rows = await conn.fetch(
        "SELECT checkpoint_index, signed_body, signature, public_key FROM audit_checkpoints "
        "WHERE checkpoint_index > $1 ORDER BY checkpoint_index LIMIT $2",
        after,
        limit,
    )
    return [_checkpoint(r) for r in rows]


async def latest_checkpoint(conn: Connection) -> SignedCheckpoint | None:
    row = await conn.fetchrow(
        "SELECT checkpoint_index, signed_body, signature, public_key FROM audit_checkpoints "
        "ORDER BY checkpoint_index DESC LIMIT 1"
    )
    return None if row is None else _checkpoint(row)


async def checkpoint_of_size(conn: Connection, size: int) -> SignedCheckpoint | None:
    row = await conn.fetchrow(
        "SELECT checkpoint_index, signed_body, signature, public_key FROM audit_checkpoints "
        "WHERE tree_size = $1",
        size,
    )
    return None if row is None else _checkpoint(row)


def checkpoint_view(cp: SignedCheckpoint) -> dict[str, Any]:
    """A checkpoint as the API shows it: the body's fields and the verifiable JSON."""
    b = cp.body
    return {
        "index": b.index,
        "tree_size": b.tree_size,
        "root_hash": b.root_hash,
        "chain_head": b.chain_head,
        "issued_at": b.issued_at,
        "key_id": b.key_id,
        "signed": cp.to_json(),
    }
