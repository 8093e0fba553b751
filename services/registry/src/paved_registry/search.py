"""Discovery: filtered, full-text, sorted, keyset-paginated queries over the catalog.

Full-text search uses the generated ``search`` tsvector columns (GIN indexed) with
``websearch_to_tsquery`` (quotes, ``or``, ``-word``); filters are plain columns with
btree / GIN indexes; pages are keyset pages: the cursor carries the sort key of the
last row, so page 1,000 costs what page 1 costs (no OFFSET scans).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from paved_schemas.events import ModelState
from paved_shared.db import Connection

from paved_registry.catalog import MODEL_COLUMNS
from paved_registry.domain.errors import BadQueryError
from paved_registry.views import ModelView, VersionHit

TS_CONFIG = "english"
MAX_PAGE = 10_000


KeyType = Literal["ts", "str", "int", "float"]


@dataclass(frozen=True)
class Sort:
    """A keyset order: columns compared as one row, all in one direction."""

    columns: tuple[str, ...]
    types: tuple[KeyType, ...]
    descending: bool

    def order_by(self) -> str:
        direction = " DESC" if self.descending else ""
        return ", ".join(c + direction for c in self.columns)


_BY_TIME: Final[tuple[KeyType, ...]] = ("ts", "str", "int")
VERSION_SORTS: Final[Mapping[str, Sort]] = {
    "-registered_at": Sort(("v.registered_at", "v.model_name", "v.version"), _BY_TIME, True),
    "registered_at": Sort(("v.registered_at", "v.model_name", "v.version"), _BY_TIME, False),
    "-updated_at": Sort(("v.updated_at", "v.model_name", "v.version"), _BY_TIME, True),
    "updated_at": Sort(("v.updated_at", "v.model_name", "v.version"), _BY_TIME, False),
    "name": Sort(("v.model_name", "v.version"), ("str", "int"), False),
    "-name": Sort(("v.model_name", "v.version"), ("str", "int"), True),
    "relevance": Sort(("rank", "v.model_name", "v.version"), ("float", "str", "int"), True),
}
"""Sort orders of version discovery; a leading '-' means descending."""

MODEL_SORTS: Final[Mapping[str, Sort]] = {
    "name": Sort(("m.name",), ("str",), False),
    "-name": Sort(("m.name",), ("str",), True),
    "created_at": Sort(("m.created_at", "m.name"), ("ts", "str"), False),
    "-created_at": Sort(("m.created_at", "m.name"), ("ts", "str"), True),
    "updated_at": Sort(("m.updated_at", "m.name"), ("ts", "str"), False),
    "-updated_at": Sort(("m.updated_at", "m.name"), ("ts", "str"), True),
}
"""Sort orders of model listings."""


def encode_cursor(sort: str, key: Sequence[Any]) -> str:
    """An opaque cursor for the row after ``key`` in ``sort`` order."""
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    raw = json.dumps({"s": sort, "k": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort_name: str, sort: Sort) -> list[Any]:
    """The key a cursor carries; ``BadQueryError`` naming the cursor if it is not one of
    ours or was issued for another sort order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        issued_for, values = data["s"], data["k"]
    except (binascii.Error, ValueError, TypeError, KeyError) as exc:
        raise BadQueryError("cursor", cursor, "not a cursor this API issued") from exc
    if issued_for != sort_name:
        raise BadQueryError(
            "cursor", cursor, f"issued for sort {issued_for!r}, not {sort_name!r}; restart paging"
        )
    if not isinstance(values, list) or len(values) != len(sort.types):
        raise BadQueryError("cursor", cursor, "not a cursor this API issued")
    key: list[Any] = []
    for value, kind in zip(values, sort.types, strict=True):
        try:
            if kind == "ts":
                key.append(datetime.fromisoformat(value))
            elif kind == "int":
                key.append(int(value))
            elif kind == "float":
                key.append(float(value))
            else:
                key.append(str(value))
        except (TypeError, ValueError) as exc:
            raise BadQueryError("cursor", cursor, "not a cursor this API issued") from exc
    return key


class _Sql:
    """Collects WHERE conditions and their numbered parameters."""

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.where: list[str] = []

    def arg(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, condition: str) -> None:
        self.where.append(condition)

    def clause(self) -> str:
        return (" WHERE " + " AND ".join(self.where)) if self.where else ""


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching strings that start with ``prefix`` literally."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


@dataclass(frozen=True)
class VersionQuery:
    """What to find among versions; every given filter must hold (AND)."""

    q: str | None = None
    name: str | None = None
    name_like: str | None = None
    name_ilike: bool = False
    owner_team: str | None = None
    states: tuple[ModelState, ...] = ()
    frameworks: tuple[str, ...] = ()
    risk_tiers: tuple[str, ...] = ()
    tags: Mapping[str, str | None] = field(default_factory=dict)
    tags_not: Mapping[str, str] = field(default_factory=dict)
    training_runs: tuple[str, ...] = ()
    artifact_uri: str | None = None
    versions: tuple[int, ...] = ()
    teams: frozenset[str] | None = None
    """Only models of these owner teams (the caller's visible teams); None: every team."""
    sort: str = "-registered_at"
    limit: int = 50
    cursor: str | None = None


def _sort_of(name: str, sorts: Mapping[str, Sort], parameter: str = "sort") -> Sort:
    sort = sorts.get(name)
    if sort is None:
        raise BadQueryError(parameter, name, f"sort by one of {', '.join(sorts)}")
    return sort


def _teams_filter(sql: _Sql, teams: frozenset[str] | None) -> None:
    # In the WHERE clause, before LIMIT: a page holds only rows the caller may see.
    if teams is not None:
        sql.add(f"m.owner_team = ANY({sql.arg(sorted(teams))}::text[])")


def _tags_filter(
    sql: _Sql, column: str, tags: Mapping[str, str | None], tags_not: Mapping[str, str]
) -> None:
    exact = {k: v for k, v in tags.items() if v is not None}
    if exact:
        sql.add(f"{column} @> {sql.arg(exact)}::jsonb")
    for key in (k for k, v in tags.items() if v is None):
        sql.add(f"{column} ? {sql.arg(key)}")
    for key, value in tags_not.items():
        # A missing tag is "not equal" too (MLflow excludes prompts this way).
        sql.add(f"NOT {column} @> {sql.arg({key: value})}::jsonb")


async def search_versions(  # noqa: PLR0912, PLR0915
    conn: Connection, query: VersionQuery
) -> tuple[list[VersionHit], str | None]:
    """One page of versions matching ``query`` and the cursor of the next page (or None)."""
    if not 1 <= query.limit <= MAX_PAGE:
        raise BadQueryError("limit", query.limit, f"must be between 1 and {MAX_PAGE}")
    if query.sort == "relevance" and not query.q:
        raise BadQueryError("sort", query.sort, "relevance needs a text query 'q'")
    sort = _sort_of(query.sort, VERSION_SORTS)
    sql = _Sql()
    rank = "0::real"
    if query.q:
        if len(query.q) > 500:
            raise BadQueryError("q", query.q[:40] + "...", "at most 500 characters")
        ts = f"websearch_to_tsquery('{TS_CONFIG}', {sql.arg(query.q)})"
        sql.add(
            f"(v.search @@ {ts} OR v.model_name IN "  # noqa: S608
            f"(SELECT name FROM models WHERE search @@ {ts}))"
        )
        rank = f"ts_rank(v.search, {ts})"
    if query.name is not None:
        sql.add(f"v.model_name = {sql.arg(query.name)}")
    if query.name_like is not None:
        op = "ILIKE" if query.name_ilike else "LIKE"
        sql.add(f"v.model_name {op} {sql.arg(query.name_like)}")
    if query.owner_team is not None:
        sql.add(f"m.owner_team = {sql.arg(query.owner_team)}")
    _teams_filter(sql, query.teams)
    if query.states:
        sql.add(f"v.state = ANY({sql.arg([s.value for s in query.states])}::text[])")
    if query.frameworks:
        sql.add(f"v.framework = ANY({sql.arg(list(query.frameworks))}::text[])")
    if query.risk_tiers:
        sql.add(f"v.risk_tier = ANY({sql.arg(list(query.risk_tiers))}::text[])")
    if query.training_runs:
        sql.add(f"v.lineage ->> 'training_run' = ANY({sql.arg(list(query.training_runs))}::text[])")
    if query.artifact_uri is not None:
        sql.add(f"v.artifact_uri = {sql.arg(query.artifact_uri)}")
    if query.versions:
        sql.add(f"v.version = ANY({sql.arg(list(query.versions))}::int[])")
    _tags_filter(sql, "v.tags", query.tags, query.tags_not)
    if query.cursor:
        key = decode_cursor(query.cursor, query.sort, sort)
        columns = [rank if c == "rank" else c for c in sort.columns]
        casts = {"ts": "::timestamptz", "str": "::text", "int": "::int", "float": "::real"}
        placeholders = [sql.arg(k) + casts[t] for k, t in zip(key, sort.types, strict=True)]
        op = "<" if sort.descending else ">"
        sql.add(f"({', '.join(columns)}) {op} ({', '.join(placeholders)})")
    limit = sql.arg(query.limit + 1)
    order = sort.order_by()
    rows = await conn.fetch(
        "SELECT v.model_name, v.version, v.state, v.artifact_digest, v.framework, "  # noqa: S608
        "v.registered_by, v.registered_at, v.description, v.risk_tier, v.tags, "
        f"v.artifact_uri, v.updated_at, m.owner_team, {rank} AS rank "
        f"FROM model_versions v JOIN models m ON m.name = v.model_name{sql.clause()} "
        f"ORDER BY {order} LIMIT {limit}",
        *sql.params,
    )
    page = rows[: query.limit]
    next_cursor = None
    if len(rows) > query.limit and page:
        last = page[-1]
        key_values = [last["rank" if c == "rank" else c.split(".")[1]] for c in sort.columns]
        next_cursor = encode_cursor(query.sort, key_values)
    return [VersionHit.model_validate(dict(r.items())) for r in page], next_cursor


@dataclass(frozen=True)
class ModelQuery:
    """What to find among models; every given filter must hold (AND)."""

    q: str | None = None
    name_like: str | None = None
    name_ilike: bool = False
    owner_team: str | None = None
    tags: Mapping[str, str | None] = field(default_factory=dict)
    tags_not: Mapping[str, str] = field(default_factory=dict)
    teams: frozenset[str] | None = None
    """Only models of these owner teams (the caller's visible teams); None: every team."""
    sort: str = "name"
    limit: int = 100
    cursor: str | None = None
    offset: int = 0


async def search_models(conn: Connection, query: ModelQuery) -> tuple[list[ModelView], str | None]:
    """One page of models matching ``query`` and the next page's cursor (or None)."""
    if not 1 <= query.limit <= MAX_PAGE:
        raise BadQueryError("limit", query.limit, f"must be between 1 and {MAX_PAGE}")
    if query.offset and query.cursor:
        raise BadQueryError("offset", query.offset, "use either a cursor or an offset, not both")
    sort = _sort_of(query.sort, MODEL_SORTS)
    sql = _Sql()
    if query.q:
        sql.add(f"m.search @@ websearch_to_tsquery('{TS_CONFIG}', {sql.arg(query.q)})")
    if query.name_like is not None:
        op = "ILIKE" if query.name_ilike else "LIKE"
        sql.add(f"m.name {op} {sql.arg(query.name_like)}")
    if query.owner_team is not None:
        sql.add(f"m.owner_team = {sql.arg(query.owner_team)}")
    _teams_filter(sql, query.teams)
    _tags_filter(sql, "m.tags", query.tags, query.tags_not)
    if query.cursor:
        key = decode_cursor(query.cursor, query.sort, sort)
        casts = {"ts": "::timestamptz", "str": "::text", "int": "::int", "float": "::real"}
        placeholders = [sql.arg(k) + casts[t] for k, t in zip(key, sort.types, strict=True)]
        op = "<" if sort.descending else ">"
        sql.add(f"({', '.join(sort.columns)}) {op} ({', '.join(placeholders)})")
    limit = sql.arg(query.limit + 1)
    offset = sql.arg(query.offset)
    rows = await conn.fetch(
        f"SELECT {MODEL_COLUMNS} FROM models m{sql.clause()} "  # noqa: S608
        f"ORDER BY {sort.order_by()} LIMIT {limit} OFFSET {offset}",
        *sql.params,
    )
    page = rows[: query.limit]
    next_cursor = None
    if len(rows) > query.limit and page:
        last = page[-1]
        next_cursor = encode_cursor(query.sort, [last[c.split(".")[1]] for c in sort.columns])
    return [ModelView.model_validate(dict(r.items())) for r in page], next_cursor
