"""Editing the catalog: model metadata, version annotations and aliases.

Every change is optimistic-concurrency checked (the record's ``revision`` is its
ETag), logged with old and new values in ``catalog_changes`` and announced by an
event on the model's topic, all in the caller's transaction. What was registered
(artifact, digest, signature, model card, lineage) is never edited here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from paved_schemas.events import (
    FieldChange,
    ModelAliasChanged,
    ModelState,
    ModelVersionUpdated,
    RegisteredModelUpdated,
)
from paved_shared.db import Connection

from paved_registry.catalog import MODEL_COLUMNS, Actor, EventSink, get_version, log_change
from paved_registry.domain import lifecycle
from paved_registry.domain.errors import (
    InvalidChangeError,
    PreconditionFailedError,
    PreconditionRequiredError,
    ProtectedAliasError,
    ReasonRequiredError,
    UnknownAliasError,
    UnknownModelError,
    UnknownVersionError,
)
from paved_registry.views import AliasView, ChangeView, ModelView, VersionView

MAX_TAGS = 64
TagPatch = Mapping[str, str | None]
"""Tags to change: a value sets the tag, ``None`` removes it; other tags are kept."""


def etag(revision: int) -> str:
    """The strong ETag of a record at ``revision``."""
    return f'"{revision}"'


def check_if_match(
    if_match: str | None, revision: int | None, what: str, *, required: bool
) -> None:
    """Refuse a change whose ``If-Match`` does not name the current revision.

    ``revision`` None means the record does not exist yet (only ``*`` then fails).
    """
    if if_match is None:
        if required:
            raise PreconditionRequiredError(what)
        return
    tags = [t.strip() for t in if_match.split(",") if t.strip()]
    current = "none" if revision is None else etag(revision)
    if "*" in tags:
        if revision is None:
            raise PreconditionFailedError(what, if_match, current)
        return
    if revision is None or etag(revision) not in tags:
        raise PreconditionFailedError(what, if_match, current)


def _tag_changes(
    current: dict[str, str], patch: TagPatch
) -> tuple[dict[str, str], list[FieldChange]]:
    merged = dict(current)
    changes: list[FieldChange] = []
    for key in sorted(patch):
        new, old = patch[key], current.get(key)
        if new == old:
            continue
        changes.append(FieldChange(field=f"tags.{key}", old=old, new=new))
        if new is None:
            merged.pop(key, None)
        else:
            merged[key] = new
    if len(merged) > MAX_TAGS:
        raise InvalidChangeError(
            "tags", f"a record holds at most {MAX_TAGS} tags; this change leaves {len(merged)}"
        )
    return merged, changes


def _reason(reason: str | None) -> str | None:
    return reason.strip() if reason and reason.strip() else None


async def update_model(
    conn: Connection,
    sink: EventSink,
    *,
    name: str,
    actor: Actor,
    description: str | None = None,
    owner_team: str | None = None,
    tags: TagPatch | None = None,
    reason: str | None = None,
    if_match: str | None = None,
    require_match: bool = True,
) -> ModelView:
    """Edit a model's description, owner team or tags; a change that changes nothing is a
    no-op (no new revision, no event)."""
    row = await conn.fetchrow(
        "SELECT description, owner_team, tags, revision FROM models WHERE name = $1 FOR UPDATE",
        name,
    )
    if row is None:
        raise UnknownModelError(name)
    check_if_match(if_match, row["revision"], f"model {name!r}", required=require_match)
    changes: list[FieldChange] = []
    new_description, new_team = row["description"], row["owner_team"]
    if description is not None and description != row["description"]:
        changes.append(FieldChange(field="description", old=row["description"], new=description))
        new_description = description
    if owner_team is not None and owner_team != row["owner_team"]:
        changes.append(FieldChange(field="owner_team", old=row["owner_team"], new=owner_team))
        new_team = owner_team
    new_tags, tag_changes = _tag_changes(row["tags"], tags or {})
    changes += tag_changes
    if changes:
        revision = row["revision"] + 1
        event = sink.new_event(
            RegisteredModelUpdated(
                model_name=name, changes=changes, revision=revision, reason=_reason(reason),
                updated_by=actor.id,
            ),
            actor=actor.principal,
            actorname=actor.name,
        )  # fmt: skip
        await conn.execute(
            "UPDATE models SET description = $2, owner_team = $3, tags = $4, revision = $5, "
            "updated_at = $6 WHERE name = $1",
            name, new_description, new_team, new_tags, revision, event.time,
        )  # fmt: skip
        await log_change(
            conn, event, action="model_updated", model_name=name, changes=changes,
            reason=_reason(reason),
        )  # fmt: skip
        await sink.emit(conn, event)
    view = await conn.fetchrow(f"SELECT {MODEL_COLUMNS} FROM models m WHERE m.name = $1", name)  # noqa: S608
    return ModelView.model_validate(dict(view.items()) if view else {})


async def update_version(
    conn: Connection,
    sink: EventSink,
    *,
    name: str,
    version: int,
    actor: Actor,
    description: str | None = None,
    tags: TagPatch | None = None,
    reason: str | None = None,
    if_match: str | None = None,
    require_match: bool = True,
) -> VersionView:
    """Edit a version's description or tags (its registered record never changes)."""
    row = await conn.fetchrow(
        "SELECT description, tags, revision FROM model_versions "
        "WHERE model_name = $1 AND version = $2 FOR UPDATE",
        name, version,
    )  # fmt: skip
    if row is None:
        raise UnknownVersionError(name, version)
    what = f"model {name!r} version {version}"
    check_if_match(if_match, row["revision"], what, required=require_match)
    changes: list[FieldChange] = []
    new_description = row["description"]
    if description is not None and description != row["description"]:
        changes.append(FieldChange(field="description", old=row["description"], new=description))
        new_description = description
    new_tags, tag_changes = _tag_changes(row["tags"], tags or {})
    changes += tag_changes
    if changes:
        revision = row["revision"] + 1
        event = sink.new_event(
            ModelVersionUpdated(
                model_name=name, version=version, changes=changes, revision=revision,
                reason=_reason(reason), updated_by=actor.id,
            ),
            actor=actor.principal,
            actorname=actor.name,
        )  # fmt: skip
        await conn.execute(
            "UPDATE model_versions SET description = $3, tags = $4, revision = $5, "
            "updated_at = $6 WHERE model_name = $1 AND version = $2",
            name, version, new_description, new_tags, revision, event.time,
        )  # fmt: skip
        await log_change(
            conn, event, action="version_updated", model_name=name, version=version,
            changes=changes, reason=_reason(reason),
        )  # fmt: skip
        await sink.emit(conn, event)
    return await get_version(conn, name, version)


# --------------------------------------------------------------------------- aliases

_ALIAS_QUERY = (
    "SELECT a.model_name, a.alias, a.version, a.protected, a.revision, a.updated_by, "
    "a.updated_by_name, a.updated_at, v.state, v.artifact_digest FROM aliases a "
    "JOIN model_versions v ON v.model_name = a.model_name AND v.version = a.version "
)


async def _lock_model(conn: Connection, name: str) -> None:
    if not await conn.fetchval("SELECT true FROM models WHERE name = $1 FOR UPDATE", name):
        raise UnknownModelError(name)


async def get_alias(conn: Connection, name: str, alias: str) -> AliasView:
    """The alias and the version it points to; ``UnknownAliasError`` if there is none."""
    row = await conn.fetchrow(
        _ALIAS_QUERY + "WHERE a.model_name = $1 AND a.alias = $2", name, alias
    )
    if row is None:
        if not await conn.fetchval("SELECT true FROM models WHERE name = $1", name):
            raise UnknownModelError(name)
        raise UnknownAliasError(name, alias)
    return AliasView.model_validate(dict(row.items()))


async def list_aliases(conn: Connection, name: str) -> list[AliasView]:
    """A model's aliases by name."""
    if not await conn.fetchval("SELECT true FROM models WHERE name = $1", name):
        raise UnknownModelError(name)
    rows = await conn.fetch(_ALIAS_QUERY + "WHERE a.model_name = $1 ORDER BY a.alias", name)
    return [AliasView.model_validate(dict(r.items())) for r in rows]


async def set_alias(
    conn: Connection,
    sink: EventSink,
    *,
    name: str,
    alias: str,
    version: int,
    actor: Actor,
    protected_names: Collection[str],
    protect: bool = False,
    reason: str | None = None,
    if_match: str | None = None,
) -> AliasView:
    """Point ``alias`` at ``version`` (create or move it).

    A protected alias (named in ``protected_names``, asked to be, or already protected)
    moves only to an approved or deployed version, and only with a reason.
    """
    await _lock_model(conn, name)
    target = await conn.fetchrow(
        "SELECT state, artifact_digest FROM model_versions WHERE model_name = $1 AND version = $2",
        name, version,
    )  # fmt: skip
    if target is None:
        raise UnknownVersionError(name, version)
    existing = await conn.fetchrow(
        "SELECT version, protected, revision FROM aliases WHERE model_name = $1 AND alias = $2",
        name, alias,
    )  # fmt: skip
    check_if_match(
        if_match, existing["revision"] if existing else None,
        f"alias {alias!r} of model {name!r}", required=False,
    )  # fmt: skip
    protected = protect or alias in protected_names or bool(existing and existing["protected"])
    state = ModelState(target["state"])
    if protected and state not in lifecycle.ALIAS_PROTECTABLE:
        raise ProtectedAliasError(name, alias, version, state)
    if existing is not None and existing["version"] == version:
        return await get_alias(conn, name, alias)
    if protected and _reason(reason) is None:
        raise ReasonRequiredError(f"moving protected alias {alias!r}")
    from_version = existing["version"] if existing else None
    event = sink.new_event(
        ModelAliasChanged(
            model_name=name, alias=alias, from_version=from_version, to_version=version,
            to_digest=target["artifact_digest"], protected=protected, reason=_reason(reason),
            changed_by=actor.id,
        ),
        actor=actor.principal,
        actorname=actor.name,
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO aliases (model_name, alias, version, protected, revision, updated_by, "
        "updated_by_name, updated_at) VALUES ($1, $2, $3, $4, 1, $5, $6, $7) "
        "ON CONFLICT (model_name, alias) DO UPDATE SET version = EXCLUDED.version, "
        "protected = EXCLUDED.protected, revision = aliases.revision + 1, "
        "updated_by = EXCLUDED.updated_by, updated_by_name = EXCLUDED.updated_by_name, "
        "updated_at = EXCLUDED.updated_at",
        name, alias, version, protected, actor.id, actor.name, event.time,
    )  # fmt: skip
    await log_change(
        conn, event, action="alias_moved" if existing else "alias_set", model_name=name,
        alias=alias, reason=_reason(reason),
        changes=[
            FieldChange(
                field="version", old=None if from_version is None else str(from_version),
                new=str(version),
            )
        ],
    )  # fmt: skip
    await sink.emit(conn, event)
    return await get_alias(conn, name, alias)


async def remove_alias(
    conn: Connection,
    sink: EventSink,
    *,
    name: str,
    alias: str,
    actor: Actor,
    reason: str | None = None,
    if_match: str | None = None,
) -> None:
    """Remove an alias; a protected one needs a reason."""
    await _lock_model(conn, name)
    existing = await conn.fetchrow(
        "SELECT version, protected, revision FROM aliases WHERE model_name = $1 AND alias = $2",
        name, alias,
    )  # fmt: skip
    if existing is None:
        raise UnknownAliasError(name, alias)
    check_if_match(
        if_match, existing["revision"], f"alias {alias!r} of model {name!r}", required=False
    )
    if existing["protected"] and _reason(reason) is None:
        raise ReasonRequiredError(f"removing protected alias {alias!r}")
    event = sink.new_event(
        ModelAliasChanged(
            model_name=name, alias=alias, from_version=existing["version"], to_version=None,
            protected=existing["protected"], reason=_reason(reason), changed_by=actor.id,
        ),
        actor=actor.principal,
        actorname=actor.name,
    )  # fmt: skip
    await conn.execute("DELETE FROM aliases WHERE model_name = $1 AND alias = $2", name, alias)
    await log_change(
        conn, event, action="alias_removed", model_name=name, alias=alias,
        reason=_reason(reason),
        changes=[FieldChange(field="version", old=str(existing["version"]), new=None)],
    )  # fmt: skip
    await sink.emit(conn, event)


async def list_changes(
    conn: Connection, name: str, *, after: int = 0, limit: int = 100
) -> list[ChangeView]:
    """The model's metadata change history, oldest first (``after`` a change id)."""
    if not await conn.fetchval("SELECT true FROM models WHERE name = $1", name):
        raise UnknownModelError(name)
    rows = await conn.fetch(
        "SELECT * FROM catalog_changes WHERE model_name = $1 AND id > $2 ORDER BY id LIMIT $3",
        name, after, limit,
    )  # fmt: skip
    return [ChangeView.model_validate(dict(r.items())) for r in rows]


def as_tag_patch(tags: Mapping[str, Any] | None) -> dict[str, str | None] | None:
    """A request's tag patch as the type the functions above take."""
    if tags is None:
        return None
    return {str(k): (None if v is None else str(v)) for k, v in tags.items()}
