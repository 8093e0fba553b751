"""MLflow REST API 2.0 model-registry endpoints, served from Paved's catalog.

The unmodified ``mlflow`` client (``MlflowClient(registry_uri=...)``,
``mlflow.register_model``) talks to these routes. They are thin: each one translates
MLflow's request into the same catalog, curation and search functions the ``/api/v1``
routes use, so every rule holds here too (immutable digests, the lifecycle, protected
aliases, the audit trail, who may do what: ``paved_registry.access``). Writes honour
``If-Match`` (the ``ETag`` of the GET routes; 412 when stale, 428 when missing and
``registry_mlflow_require_if_match`` is on). Errors are problem+json carrying MLflow's
``error_code`` and ``message`` as well. What MLflow can do but a regulated catalog must not (delete,
rename, set stages by hand) is refused with a message saying what to do instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from paved_schemas._types import SLUG_PATTERN
from paved_schemas.events import ModelState
from paved_shared.auth import Principal
from paved_shared.db import Connection
from paved_shared.http import authenticated_router
from paved_shared.service import ServiceRuntime

from paved_registry import catalog, curation, search
from paved_registry.access import (
    Action,
    check_alias,
    check_create,
    check_model,
    readable_teams,
)
from paved_registry.auth import CurrentActor, CurrentPrincipal, current_principal
from paved_registry.domain.errors import (
    ImmutableRecordError,
    InvalidParameterError,
    PreconditionRequiredError,
    UnknownVersionError,
)
from paved_registry.mlflow_compat import (
    PAVED_PREFIX,
    Clause,
    MlflowVersionRequest,
    parse_filter,
    parse_order_by,
    registration_command,
    split_tags,
    stage_of,
)
from paved_registry.settings import RegistrySettings

PREFIX = "/api/2.0/mlflow"
JSON = dict[str, Any]

_MODEL_ORDER = {
    "name": ("name", "-name"),
    "timestamp": ("created_at", "-created_at"),
    "creation_timestamp": ("created_at", "-created_at"),
    "last_updated_timestamp": ("updated_at", "-updated_at"),
}
_VERSION_ORDER = {
    "name": ("name", "-name"),
    "version_number": ("name", "-name"),
    "creation_timestamp": ("registered_at", "-registered_at"),
    "timestamp": ("registered_at", "-registered_at"),
    "last_updated_timestamp": ("updated_at", "-updated_at"),
}


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def _settings(request: Request) -> RegistrySettings:
    settings: RegistrySettings = _runtime(request).settings  # type: ignore[assignment]
    return settings


@asynccontextmanager
async def _write(request: Request) -> AsyncIterator[Connection]:
    async with _runtime(request).pool.acquire() as conn, conn.transaction():
        yield conn


@asynccontextmanager
async def _read(request: Request) -> AsyncIterator[Connection]:
    async with (
        _runtime(request).pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        yield conn


# --------------------------------------------------------------------------- request parsing


async def _body(request: Request) -> JSON:
    """The request's parameters: the JSON body, or the query string for GET."""
    if request.method == "GET":
        params: JSON = {}
        for key in request.query_params:
            values = request.query_params.getlist(key)
            params[key] = values if key in {"order_by", "stages"} else values[-1]
        return params
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidParameterError("body", raw[:80].decode(errors="replace"), "not JSON") from exc
    if not isinstance(data, dict):
        raise InvalidParameterError("body", data, "must be a JSON object")
    return data


def _str(data: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise InvalidParameterError(key, value, f"missing value for required parameter '{key}'")
        return None
    if not isinstance(value, str):
        raise InvalidParameterError(key, value, "must be a string")
    return value


def _name(data: Mapping[str, Any], key: str = "name") -> str:
    name = _str(data, key)
    assert name is not None
    if not re.fullmatch(SLUG_PATTERN, name):
        raise InvalidParameterError(
            key,
            name,
            "Paved model names are lowercase letters, digits, '.', '_' or '-' (at most 128, "
            "starting with a letter or digit)",
        )
    return name


def _version(data: Mapping[str, Any]) -> int:
    raw = data.get("version")
    try:
        version = int(str(raw))
    except ValueError:
        version = 0
    if version < 1:
        raise InvalidParameterError("version", raw, "a version number (1, 2, ...)")
    return version


def _alias(data: Mapping[str, Any]) -> str:
    alias = _str(data, "alias")
    assert alias is not None
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,63}", alias):
        raise InvalidParameterError(
            "alias", alias, "aliases are a lowercase letter, then letters, digits, '_' or '-'"
        )
    return alias


def _tags(data: Mapping[str, Any]) -> dict[str, str]:
    raw = data.get("tags") or []
    if not isinstance(raw, list):
        raise InvalidParameterError("tags", raw, "a list of {key, value}")
    tags: dict[str, str] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise InvalidParameterError("tags", item, "each tag is {key, value}")
        tags[item["key"]] = str(item.get("value", ""))
    return tags


def _max_results(data: Mapping[str, Any], default: int, most: int) -> int:
    raw = data.get("max_results")
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw))
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise InvalidParameterError("max_results", raw, f"between 1 and {most}")
    return value


def _order_by(data: Mapping[str, Any]) -> list[str]:
    raw = data.get("order_by") or []
    return [raw] if isinstance(raw, str) else [str(v) for v in raw]


def _no_reserved(key: str) -> None:
    if key.startswith(PAVED_PREFIX):
        raise InvalidParameterError(
            "key",
            key,
            f"tags under '{PAVED_PREFIX}' are Paved's; set them at registration or use /api/v1",
        )


def _if_match(request: Request, what: str) -> str | None:
    """The request's If-Match; 428 when it is missing and the settings require one."""
    value = request.headers.get("If-Match")
    if value is None and _settings(request).registry_mlflow_require_if_match:
        raise PreconditionRequiredError(what)
    return value


def _owner_team(principal: Principal, paved: Mapping[str, str], plain: Mapping[str, str]) -> str:
    """The new model's team: tag ``paved.owner_team`` (or ``team``), else the caller's only
    team; a caller in several teams must say which."""
    team = (paved.get("owner_team") or plain.get("team", "")).strip()
    if team:
        return team[:256]
    if len(principal.teams) == 1:
        return next(iter(principal.teams))
    if principal.all_teams and not principal.teams:
        return "unknown"
    raise InvalidParameterError(
        "tags",
        "paved.owner_team",
        f"{principal.user_id} is in teams {sorted(principal.teams) or ['none']}: tag the model "
        "with paved.owner_team=<team> to say which team owns it",
    )


# --------------------------------------------------------------------------- responses


def _ms(value: datetime | None) -> int:
    return int(value.timestamp() * 1000) if value else 0


def _tag_list(tags: Mapping[str, str]) -> list[JSON]:
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


def _version_json(row: Mapping[str, Any], aliases: list[str]) -> JSON:
    state = ModelState(row["state"])
    lineage = row.get("lineage") or {}
    run = str(lineage.get("training_run") or "")
    card = row.get("model_card") or {}
    computed = {
        "paved.state": state.value,
        "paved.artifact_digest": row["artifact_digest"],
        "paved.framework": row["framework"],
        "paved.risk_tier": str(card.get("risk_tier", "")),
    }
    return {
        "name": row["model_name"],
        "version": str(row["version"]),
        "creation_timestamp": _ms(row["registered_at"]),
        "last_updated_timestamp": _ms(row["updated_at"]),
        "user_id": row["registered_by"],
        "current_stage": stage_of(state),
        "description": row.get("description") or "",
        "source": row["artifact_uri"],
        "run_id": run.removeprefix("mlflow-run:") if run.startswith("mlflow-run:") else "",
        "status": "READY",
        "status_message": f"Paved lifecycle state: {state.value}",
        "tags": _tag_list({**row["tags"], **computed}),
        "aliases": sorted(aliases),
    }


async def _version_rows(conn: Connection, keys: list[tuple[str, int]]) -> list[JSON]:
    """Full MLflow ModelVersion documents for (name, version) keys, in the given order."""
    if not keys:
        return []
    rows = await conn.fetch(
        "SELECT v.*, coalesce((SELECT array_agg(a.alias) FROM aliases a "
        "WHERE a.model_name = v.model_name AND a.version = v.version), '{}') AS alias_names "
        "FROM model_versions v JOIN unnest($1::text[], $2::int[]) AS k(n, ver) "
        "ON v.model_name = k.n AND v.version = k.ver",
        [k[0] for k in keys], [k[1] for k in keys],
    )  # fmt: skip
    by_key = {(r["model_name"], r["version"]): r for r in rows}
    return [
        _version_json(dict(by_key[k].items()), list(by_key[k]["alias_names"]))
        for k in keys
        if k in by_key
    ]


async def _model_json(conn: Connection, models: list[Any]) -> list[JSON]:
    names = [m.name for m in models]
    latest = await conn.fetch(
        "SELECT DISTINCT ON (model_name) model_name, version FROM model_versions "
        "WHERE model_name = ANY($1::text[]) ORDER BY model_name, version DESC",
        names,
    )
    latest_docs = await _version_rows(conn, [(r["model_name"], r["version"]) for r in latest])
    latest_by_name = {d["name"]: d for d in latest_docs}
    return [
        {
            "name": m.name,
            "creation_timestamp": _ms(m.created_at),
            "last_updated_timestamp": _ms(m.updated_at or m.created_at),
            "user_id": m.created_by,
            "description": m.description,
            "latest_versions": [latest_by_name[m.name]] if m.name in latest_by_name else [],
            "tags": _tag_list({**m.tags, "paved.owner_team": m.owner_team}),
            "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(m.aliases.items())],
        }
        for m in models
    ]


async def _one_model(conn: Connection, name: str) -> JSON:
    return (await _model_json(conn, [await catalog.get_model(conn, name)]))[0]


async def _one_version(conn: Connection, name: str, version: int) -> JSON:
    docs = await _version_rows(conn, [(name, version)])
    if not docs:
        await catalog.get_model(conn, name)
        raise UnknownVersionError(name, version)
    return docs[0]


# --------------------------------------------------------------------------- filters


def _model_query(clauses: list[Clause], **kw: Any) -> search.ModelQuery:
    tags: dict[str, str | None] = {}
    tags_not: dict[str, str] = {}
    name_like: str | None = None
    ilike = False
    for c in clauses:
        if c.key == "name" and c.op == "=":
            name_like = search.like_prefix(c.values[0])[:-1]
        elif c.key == "name" and c.op in {"LIKE", "ILIKE"}:
            name_like, ilike = c.values[0], c.op == "ILIKE"
        elif c.key.startswith("tags.") and c.op == "=":
            tags[c.key[5:]] = c.values[0]
        elif c.key.startswith("tags.") and c.op == "!=":
            tags_not[c.key[5:]] = c.values[0]
        else:
            raise InvalidParameterError(
                "filter",
                f"{c.key} {c.op} {list(c.values)}",
                "registered models can be filtered by name (=, LIKE, ILIKE) and tags.<key> (=, !=)",
            )
    return search.ModelQuery(
        name_like=name_like, name_ilike=ilike, tags=tags, tags_not=tags_not, **kw
    )


def _version_query(clauses: list[Clause], **kw: Any) -> search.VersionQuery:
    fields: dict[str, Any] = {"tags": {}, "tags_not": {}}
    for c in clauses:
        if c.key == "name" and c.op == "=":
            fields["name"] = c.values[0]
        elif c.key == "name" and c.op in {"LIKE", "ILIKE"}:
            fields["name_like"], fields["name_ilike"] = c.values[0], c.op == "ILIKE"
        elif c.key == "run_id" and c.op in {"=", "IN"}:
            fields["training_runs"] = tuple(f"mlflow-run:{v}" for v in c.values)
        elif c.key == "source_path" and c.op == "=":
            fields["artifact_uri"] = c.values[0]
        elif c.key == "version_number" and c.op in {"=", "IN"}:
            try:
                fields["versions"] = tuple(int(v) for v in c.values)
            except ValueError as exc:
                raise InvalidParameterError("filter", c.values, "version numbers") from exc
        elif c.key.startswith("tags.") and c.op == "=":
            fields["tags"][c.key[5:]] = c.values[0]
        elif c.key.startswith("tags.") and c.op == "!=":
            fields["tags_not"][c.key[5:]] = c.values[0]
        else:
            raise InvalidParameterError(
                "filter",
                f"{c.key} {c.op} {list(c.values)}",
                "model versions can be filtered by name (=, LIKE, ILIKE), run_id (=, IN), "
                "source_path (=), version_number (=, IN) and tags.<key> (=, !=)",
            )
    return search.VersionQuery(**fields, **kw)


# --------------------------------------------------------------------------- routes


def build_mlflow_router() -> APIRouter:  # noqa: PLR0915
    """The MLflow-compatible ``/api/2.0/mlflow`` model-registry routes."""
    router = authenticated_router(current_principal, prefix=PREFIX, tags=["mlflow"])

    @router.post("/registered-models/create")
    async def create_registered_model(
        request: Request, actor: CurrentActor, principal: CurrentPrincipal
    ) -> JSON:
        """MLflow CreateRegisteredModel (RESOURCE_ALREADY_EXISTS if the name is taken)."""
        data = await _body(request)
        name = _name(data)
        tags = _tags(data)
        plain, paved = split_tags(tags)
        team = _owner_team(principal, paved, plain)
        check_create(principal, name, team)
        async with _write(request) as conn:
            await catalog.create_model(
                conn, _runtime(request), name=name, description=str(data.get("description") or ""),
                owner_team=team, tags=plain, actor=actor, via="mlflow",
            )  # fmt: skip
            return {"registered_model": await _one_model(conn, name)}

    @router.get("/registered-models/get")
    async def get_registered_model(
        request: Request, response: Response, principal: CurrentPrincipal
    ) -> JSON:
        """MLflow GetRegisteredModel; the ``ETag`` is what a write sends as If-Match."""
        name = _name(await _body(request))
        async with _read(request) as conn:
            await check_model(conn, principal, name, Action.READ)
            model = await catalog.get_model(conn, name)
            response.headers["ETag"] = curation.etag(model.revision)
            return {"registered_model": (await _model_json(conn, [model]))[0]}

    @router.get("/registered-models/search")
    async def search_registered_models(request: Request, principal: CurrentPrincipal) -> JSON:
        """MLflow SearchRegisteredModels: name / tag filters, order_by, page tokens."""
        data = await _body(request)
        query = _model_query(
            parse_filter(_str(data, "filter", required=False)),
            sort=parse_order_by(_order_by(data), _MODEL_ORDER, "name"),
            limit=_max_results(data, 100, 1000),
            cursor=_str(data, "page_token", required=False),
            teams=readable_teams(principal),
        )
        async with _read(request) as conn:
            models, token = await search.search_models(conn, query)
            docs = await _model_json(conn, models)
        return {"registered_models": docs, **({"next_page_token": token} if token else {})}

    @router.patch("/registered-models/update")
    async def update_registered_model(
        request: Request, actor: CurrentActor, principal: CurrentPrincipal
    ) -> JSON:
        """MLflow UpdateRegisteredModel (the description)."""
        data = await _body(request)
        name = _name(data)
        if_match = _if_match(request, f"model {name!r}")
        async with _write(request) as conn:
            await check_model(conn, principal, name, Action.UPDATE_MODEL, lock=True)
            await curation.update_model(
                conn, _runtime(request), name=name, actor=actor,
                description=str(data.get("description") or ""),
                reason="updated through the MLflow-compatible API", if_match=if_match,
                require_match=False,
            )  # fmt: skip
            return {"registered_model": await _one_model(conn, name)}

    @router.post("/registered-models/rename")
    async def rename_registered_model(request: Request) -> JSON:
        """Refused: a model's name is part of every record and signature about it."""
        name = _name(await _body(request))
        raise ImmutableRecordError(
            f"model {name!r} cannot be renamed: its name is part of every audited record and "
            "signature; register the versions under a new model instead"
        )

    @router.delete("/registered-models/delete")
    async def delete_registered_model(request: Request) -> JSON:
        """Refused: regulated records are kept."""
        name = _name(await _body(request))
        raise ImmutableRecordError(
            f"model {name!r} cannot be deleted: records are kept (21 CFR Part 11); retire its "
            "versions instead (POST /api/v1/models/{name}/versions/{version}/retire)"
        )

    @router.api_route("/registered-models/get-latest-versions", methods=["GET", "POST"])
    async def get_latest_versions(request: Request, principal: CurrentPrincipal) -> JSON:
        """MLflow GetLatestVersions: the newest version per stage (stages follow the lifecycle)."""
        data = await _body(request)
        name = _name(data)
        stages = data.get("stages") or []
        wanted = {str(s).lower() for s in ([stages] if isinstance(stages, str) else stages)}
        async with _read(request) as conn:
            await check_model(conn, principal, name, Action.READ)
            versions = await catalog.list_versions(conn, name)
            newest: dict[str, tuple[str, int]] = {}
            for v in versions:
                stage = stage_of(v.state)
                if not wanted or stage.lower() in wanted:
                    newest[stage] = (name, v.version)
            docs = await _version_rows(conn, sorted(newest.values(), key=lambda k: k[1]))
        return {"model_versions": docs}

    @router.post("/registered-models/set-tag")
    async def set_registered_model_tag(
        request: Request, actor: CurrentActor, principal: CurrentPrincipal
    ) -> JSON:
        """MLflow SetRegisteredModelTag."""
        data = await _body(request)
        name, key = _name(data), _str(data, "key")
        assert key is not None
        _no_reserved(key)
        if_match = _if_match(request, f"model {name!r}")
        async with _write(request) as conn:
            await check_model(conn, principal, name, Action.UPDATE_MODEL, lock=True)
            await curation.update_model(
                conn, _runtime(request), name=name, actor=actor,
                tags={key: str(data.get("value") or "")},
                reason="tag set through the MLflow-compatible API", if_match=if_match,
                require_match=False,
            )  # fmt: skip
        return {}

    @router.delete("/registered-models/delete-tag")
    async def delete_registered_model_tag(
        request: Request, actor: CurrentActor, principal: CurrentPrincipal
    ) -> JSON:
        """MLflow DeleteRegisteredModelTag."""
        data = await _body(request)
        name, key = _name(data), _str(data, "key")
        assert key is not None
        _no_reserved(key)
        if_match = _if_match(request, f"model {name!r}")
        async with _write(request) as conn:
            await check_model(conn, principal, name, Action.UPDATE_MODEL, lock=True)
            await curation.update_model(
                conn, _runtime(request), name=name, actor=actor, tags={key: None},
                reason="tag deleted through the MLflow-compatible API", if_match=if_match,
                require_match=False,
            )  # fmt: skip
        return {}

    @router.post("/registered-models/alias")
    async def set_alias(request: Request, actor: CurrentActor, principal: CurrentPrincipal) -> JSON:
        """MLflow SetRegisteredModelAlias (protected aliases: approved versions only, moved
        by a deployer of the owning team)."""
        data = await _body(request)
        name, alias, version = _name(data), _alias(data), _version(data)
        if_match = _if_match(request, f"alias {alias!r} of model {name!r}")
        protected_names = _settings(request).registry_protected_aliases
        async with _write(request) as conn:
            await check_alias(conn, principal, name, alias, protected_names=protected_names)
            await curation.set_alias(
                conn, _runtime(request), name=name, alias=alias, version=version, actor=actor,
                protected_names=protected_names, reason="set through the MLflow-compatible API",
                if_match=if_match,
            )  # fmt: skip
        return {}

    @router.delete("/registered-models/alias")
    async def delete_alias(
        request: Request, actor: CurrentActor, principal: CurrentPrincipal
    ) -> JSON:
        """MLflow DeleteRegisteredModelAlias."""
        data = await _body(request)
        name, alias = _name(data), _alias(data)
        if_match = _if_match(request, f"alias {alias!r} of model {name!r}")
        protected_names = _settings(request).registry_protected_aliases
        async with _write(request) as conn:
            await check_alias(conn, principal, name, alias, protected_names=protected_names)
            await curation.remove_alias(
                conn, _runtime(request), name=name, alias=alias, actor=actor,
                reason="removed through the MLflow-compatible API", if_match=if_match,
            )  # fmt: skip
        return {}

    @router.get("/registered-models/alias")
    async def get_version_by_alias(
        request: Request, response: Response, principal: CurrentPrincipal
    ) -> JSON:
        """MLflow GetModelVersionByAlias; the ``ETag`` is the alias's (for moving it)."""
        data = await _body(request)
        name, alias = _name(data), _alias(data)
        async with _read(request) as conn:
            await check_model(conn, principal, name, Action.READ)
            view = await curation.get_alias(conn, name, alias)
            response.headers["ETag"] = curation.etag(view.revision)
            return {"model_version": await _one_version(conn, name, view.version)}

    @router.post("/model-versions/create")
    async def create_model_version(
        request: Request, actor: CurrentActor, principal: CurrentPrincipal
    ) -> JSON:
        """MLflow CreateModelVersion: registers a Paved version (digest pinned, validation
        starts); the version is READY for MLflow and its Paved state is in its tags."""
        data = await _body(request)
        name = _name(data)
        source = _str(data, "source")
        assert source is not None
        settings = _settings(request)
        async with _read(request) as conn:
            await check_model(conn, principal, name, Action.REGISTER_VERSION)
            model = await catalog.get_model(conn, name)
        command = await registration_command(
            MlflowVersionRequest(
                name=name, source=source, run_id=_str(data, "run_id", required=False),
                description=str(data.get("description") or ""), tags=_tags(data),
            ),
            model_description=model.description, model_tags=model.tags, actor=actor,
            local_root=settings.registry_artifact_root,
            config=settings.artifact_store_config(),
        )  # fmt: skip
        async with _write(request) as conn:
            await check_model(conn, principal, name, Action.REGISTER_VERSION, lock=True)
            result = await catalog.register_version(
                conn, _runtime(request), command, actor=actor,
                description=str(data.get("description") or ""),
            )  # fmt: skip
            return {"model_version": await _one_version(conn, name, result.version)}

    @router.get("/model-versions/get")
    async def get_model_version(
        request: Request, response: Response, principal: CurrentPrincipal
    ) -> JSON:
        """MLflow GetModelVersion; the ``ETag`` is what a write sends as If-Match."""
        data = await _body(request)
        name, version = _name(data), _version(data)
        async with _read(request) as conn:
            await check_model(conn, principal, name, Action.READ)
            doc = await _one_version(conn, name, version)
            revision = await conn.fetchval(
                "SELECT revision FROM model_versions WHERE model_name = $1 AND version = $2",
                name, version,
            )  # fmt: skip
        response.headers["ETag"] = curation.etag(revision)
        return {"model_version": doc}

    @router.patch("/model-versions/update")
    async def update_model_version(
        request: Request, actor: CurrentActor, principal: CurrentPrincipal
    ) -> JSON:
        """MLflow UpdateModelVersion (the description)."""
        data = await _body(request)
        name, version = _name(data), _version(data)
        if_match = _if_match(request, f"model {name!r} version {version}")
        async with _write(request) as conn:
            await check_model(conn, principal, name, Action.UPDATE_VERSION, lock=True)
            await curation.update_version(
                conn, _runtime(request), name=name, version=version, actor=actor,
                description=str(data.get("description") or ""),
                reason="updated through the MLflow-compatible API", if_match=if_match,
                require_match=False,
            )  # fmt: skip
            return {"model_version": await _one_version(conn, name, version)}

    @router.post("/model-versions/transition-stage")
    async def transition_stage(request: Request) -> JSON:
        """Refused: stages follow Paved's lifecycle (validation, approval, deployment)."""
        data = await _body(request)
        name, version = _name(data), _version(data)
        raise ImmutableRecordError(
            f"model {name!r} version {version}: stages cannot be set by hand in Paved; they "
            "follow its lifecycle (approved = Staging, deployed = Production, deprecated or "
            "retired = Archived); use aliases, or POST /api/v1/models/{name}/versions/"
            "{version}/transitions to deprecate or retire"
        )

    @router.delete("/model-versions/delete")
    async def delete_model_version(request: Request) -> JSON:
        """Refused: regulated records are kept."""
        data = await _body(request)
        name, version = _name(data), _version(data)
        raise ImmutableRecordError(
            f"model {name!r} version {version} cannot be deleted: records are kept "
            "(21 CFR Part 11); retire it instead"
        )

    @router.get("/model-versions/search")
    async def search_model_versions(request: Request, principal: CurrentPrincipal) -> JSON:
        """MLflow SearchModelVersions: name / run_id / source / tag filters, order_by, pages."""
        data = await _body(request)
        query = _version_query(
            parse_filter(_str(data, "filter", required=False)),
            sort=parse_order_by(_order_by(data), _VERSION_ORDER, "-registered_at"),
            limit=_max_results(data, 10_000, search.MAX_PAGE),
            cursor=_str(data, "page_token", required=False),
            teams=readable_teams(principal),
        )
        async with _read(request) as conn:
            hits, token = await search.search_versions(conn, query)
            docs = await _version_rows(conn, [(h.model_name, h.version) for h in hits])
        return {"model_versions": docs, **({"next_page_token": token} if token else {})}

    @router.get("/model-versions/get-download-uri")
    async def get_download_uri(request: Request, principal: CurrentPrincipal) -> JSON:
        """MLflow GetModelVersionDownloadUri: the registered artifact URI."""
        data = await _body(request)
        name, version = _name(data), _version(data)
        async with _read(request) as conn:
            await check_model(conn, principal, name, Action.READ)
            return {"artifact_uri": (await _one_version(conn, name, version))["source"]}

    @router.post("/model-versions/set-tag")
    async def set_model_version_tag(
        request: Request, actor: CurrentActor, principal: CurrentPrincipal
    ) -> JSON:
        """MLflow SetModelVersionTag."""
        data = await _body(request)
        name, version, key = _name(data), _version(data), _str(data, "key")
        assert key is not None
        _no_reserved(key)
        if_match = _if_match(request, f"model {name!r} version {version}")
        async with _write(request) as conn:
            await check_model(conn, principal, name, Action.UPDATE_VERSION, lock=True)
            await curation.update_version(
                conn, _runtime(request), name=name, version=version, actor=actor,
                tags={key: str(data.get("value") or "")},
                reason="tag set through the MLflow-compatible API", if_match=if_match,
                require_match=False,
            )  # fmt: skip
        return {}

    @router.delete("/model-versions/delete-tag")
    async def delete_model_version_tag(
        request: Request, actor: CurrentActor, principal: CurrentPrincipal
    ) -> JSON:
        """MLflow DeleteModelVersionTag."""
        data = await _body(request)
        name, version, key = _name(data), _version(data), _str(data, "key")
        assert key is not None
        _no_reserved(key)
        if_match = _if_match(request, f"model {name!r} version {version}")
        async with _write(request) as conn:
            await check_model(conn, principal, name, Action.UPDATE_VERSION, lock=True)
            await curation.update_version(
                conn, _runtime(request), name=name, version=version, actor=actor,
                tags={key: None}, reason="tag deleted through the MLflow-compatible API",
                if_match=if_match, require_match=False,
            )  # fmt: skip
        return {}

    return router
