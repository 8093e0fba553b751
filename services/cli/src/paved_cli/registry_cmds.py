"""Catalog commands: models, versions, search, aliases, register, show, deprecate, retire."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from paved_cli.common import client, console, fail, load_json
from paved_cli.sdk import PavedError, VersionDoc, version_body

models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
alias_app = typer.Typer(help="Aliases (champion, production, ...).", no_args_is_help=True)
commands = typer.Typer()

_STATE_STYLE = {
    "approved": "green",
    "deployed": "bold green",
    "validation_failed": "red",
    "rejected": "red",
    "retired": "dim",
    "deprecated": "yellow",
    "pending_approval": "cyan",
}


def _state(state: Any) -> str:
    text = str(state or "")
    style = _STATE_STYLE.get(text)
    return f"[{style}]{text}[/]" if style else text


def _short(text: Any, width: int = 48) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= width else value[: width - 1] + "…"


def _tags(tags: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((tags or {}).items()))


def _pairs(values: list[str] | None, option: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for value in values or []:
        key, sep, tag_value = value.partition("=")
        if not key or not sep:
            raise fail(f"{option} takes KEY=VALUE, got {value!r}")
        out[key] = tag_value
    return out


def _run(call: Any) -> Any:
    try:
        return call()
    except PavedError as exc:
        raise fail(str(exc)) from exc


def _versions_table(versions: Iterable[VersionDoc], title: str, *, with_model: bool) -> Table:
    columns = ["model", "team"] if with_model else []
    columns += ["version", "state", "risk", "framework", "registered (UTC)", "by", "description"]
    table = Table(*columns, title=title, title_justify="left")
    for v in versions:
        row = [str(v.get("model_name", "")), str(v.get("owner_team", ""))] if with_model else []
        row += [
            str(v.get("version", "")),
            _state(v.get("state")),
            str(v.get("risk_tier") or ""),
            str(v.get("framework", "")),
            str(v.get("registered_at", ""))[:16].replace("T", " "),
            str(v.get("registered_by", "")),
            _short(v.get("description")),
        ]
        table.add_row(*row)
    return table


# --------------------------------------------------------------------------- models


@models_app.command("create")
def models_create(
    name: str,
    team: Annotated[str, typer.Option(help="Owning team (required).")],
    description: Annotated[str, typer.Option(help="What the model is for.")] = "",
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
) -> None:
    """Create a registered model (the container of its versions)."""
    tags = {k: v or "" for k, v in _pairs(tag, "--tag").items()}
    with client() as c:
        _run(lambda: c.create_model(name, description=description, owner_team=team, tags=tags))
    console.print(f"created model [bold]{name}[/]")


@models_app.command("list")
def models_list(
    query: Annotated[str | None, typer.Argument(help="Full-text search.")] = None,
    team: Annotated[str | None, typer.Option(help="Only this team's models.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="key:value or key; repeatable.")] = None,
    sort: Annotated[str, typer.Option(help="name, -name, created_at, -updated_at, ...")] = "name",
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """List registered models."""
    with client() as c:
        models = _run(
            lambda: c.list_models(q=query, owner_team=team, tag=tag, sort=sort, limit=limit)
        )
    items = models.get("items", models) if isinstance(models, dict) else models
    table = Table("name", "owner team", "latest", "aliases", "tags", "description")
    for m in items:
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted((m.get("aliases") or {}).items()))
        table.add_row(
            m.get("name", ""),
            m.get("owner_team", ""),
            f"v{m['latest_version']}" if m.get("latest_version") else "—",
            aliases,
            _short(_tags(m.get("tags")), 30),
            _short(m.get("description")),
        )
    console.print(table)


@models_app.command("show")
def models_show(name: str) -> None:
    """Show a model: metadata, aliases and versions."""
    with client() as c:
        model = _run(lambda: c.get_model(name))
        versions = _run(lambda: c.list_versions(name))
        aliases = _run(lambda: c.list_aliases(name))
    console.print(f"[bold]{name}[/] — team {model.get('owner_team')} — rev {model.get('revision')}")
    if model.get("description"):
        console.print(f"  {model.get('description')}")
    if model.get("tags"):
        console.print(f"  tags: {_tags(model.get('tags'))}")
    if aliases:
        table = Table("alias", "version", "state", "protected", "set by", title="aliases")
        for a in aliases:
            table.add_row(
                a["alias"], f"v{a['version']}", _state(a["state"]),
                "yes" if a["protected"] else "no", a["updated_by_name"],
            )  # fmt: skip
        console.print(table)
    console.print(_versions_table(versions, "versions", with_model=False))


@models_app.command("edit")
def models_edit(
    name: str,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    team: Annotated[str | None, typer.Option(help="New owner team.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Set KEY=VALUE; repeatable.")] = None,
    untag: Annotated[list[str] | None, typer.Option(help="Remove KEY; repeatable.")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the history).")] = None,
) -> None:
    """Change a model's description, owner team or tags (refused if it changed meanwhile)."""
    tags: dict[str, str | None] = {**_pairs(tag, "--tag"), **dict.fromkeys(untag or [])}
    with client() as c:
        revision = int(_run(lambda: c.get_model(name)).get("revision", 1))
        model = _run(
            lambda: c.update_model(
                name,
                revision=revision,
                reason=reason,
                description=description,
                owner_team=team,
                tags=tags or None,
            )
        )
    console.print(f"updated [bold]{name}[/] (revision {model.get('revision')})")


@models_app.command("history")
def models_history(name: str, limit: Annotated[int, typer.Option(min=1, max=1000)] = 100) -> None:
    """Every metadata change of a model, its versions and aliases (old → new)."""
    with client() as c:
        changes = _run(lambda: c.list_changes(name, limit=limit))
    table = Table("time (UTC)", "what", "change", "by", "reason", title=f"{name}: changes")
    for ch in changes:
        what = ch["action"] + (f" v{ch['version']}" if ch.get("version") else "")
        what += f" @{ch['alias']}" if ch.get("alias") else ""
        diff = "; ".join(
            f"{d['field']}: {d.get('old') or '∅'} → {d.get('new') or '∅'}" for d in ch["changes"]
        )
        table.add_row(
            str(ch["occurred_at"])[:19].replace("T", " "), what, _short(diff, 60),
            ch["actor_name"], _short(ch.get("reason"), 40),
        )  # fmt: skip
    console.print(table)


# --------------------------------------------------------------------------- versions


@commands.command("versions")
def versions_list(model: str) -> None:
    """List the versions of MODEL."""
    with client() as c:
        versions = _run(lambda: c.list_versions(model))
    console.print(_versions_table(versions, f"{model}: versions", with_model=False))


@commands.command("search")
def search(
    query: Annotated[
        str | None, typer.Argument(help="Full-text: names, descriptions, cards.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    team: Annotated[str | None, typer.Option(help="Owner team.")] = None,
    state: Annotated[list[str] | None, typer.Option(help="Lifecycle state; repeatable.")] = None,
    framework: Annotated[list[str] | None, typer.Option(help="Framework; repeatable.")] = None,
    risk: Annotated[list[str] | None, typer.Option(help="Risk tier; repeatable.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="key:value or key; repeatable.")] = None,
    sort: Annotated[
        str, typer.Option(help="-registered_at, registered_at, name, -name, relevance, ...")
    ] = "-registered_at",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Rows per page.")] = 25,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page.")] = False,
) -> None:
    """Discover model versions across the catalog."""
    query_args: dict[str, Any] = {
        "q": query, "name": model, "owner_team": team, "state": state, "framework": framework,
        "risk_tier": risk, "tag": tag, "sort": sort, "limit": limit,
    }  # fmt: skip
    with client() as c:
        if all_pages:
            rows = _run(lambda: list(c.iter_versions(**query_args)))
            more = None
        else:
            page = _run(lambda: c.search_versions(**query_args))
            rows, more = page["items"], page["next_cursor"]
    console.print(_versions_table(rows, f"{len(rows)} version(s)", with_model=True))
    if more:
        console.print(
            f"[dim]more results: raise --limit, or add --all (next cursor {more[:16]}…)[/]"
        )


@commands.command("register")
def register_version(
    model: str,
    artifact: Annotated[str, typer.Option(help="Artifact path or URI (file://...).")],
    signature: Annotated[Path, typer.Option(help="JSON file: the input/output signature.")],
    card: Annotated[Path, typer.Option(help="JSON file: the model card (risk_tier, ...).")],
    framework: Annotated[str, typer.Option(help="sklearn, onnx, ...")] = "sklearn",
    digest: Annotated[str | None, typer.Option(help="sha256:<hex>; computed for a path.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Safe retries.")] = None,
    description: Annotated[str, typer.Option(help="What this version changes.")] = "",
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
) -> None:
    """Register a new version of MODEL."""
    from paved_shared.artifacts import sha256_file

    uri = artifact
    if "://" not in artifact:
        path = Path(artifact).resolve()
        if not path.is_file():
            raise fail(f"artifact {artifact!r} is not a file")
        uri = path.as_uri()
        digest = digest or sha256_file(path)
    if digest is None:
        raise fail("--digest is required for a remote artifact URI")
    body = version_body(
        artifact_uri=uri,
        artifact_digest=digest,
        framework=framework,
        signature=load_json(signature, "signature"),
        model_card=load_json(card, "model card"),
        tags={k: v or "" for k, v in _pairs(tag, "--tag").items()},
    )
    if description:
        body["description"] = description
    with client() as c:
        v = _run(lambda: c.register_version(model, body, idempotency_key or str(uuid.uuid4())))
    console.print(f"registered [bold]{model}[/] v{v.get('version')} ({digest}) — {v.get('state')}")


@commands.command()
def show(model: str, version: int) -> None:
    """Show one version: its state, its history and its deployments."""
    with client() as c:
        v = _run(lambda: c.get_version(model, version))
    console.print(f"[bold]{model}[/] v{version}: {_state(v.get('state'))}")
    if v.get("description"):
        console.print(f"  {v.get('description')}")
    console.print(f"  artifact {v.get('artifact_uri')}  {v.get('artifact_digest')}")
    card = v.get("model_card") or {}
    console.print(f"  risk tier {card.get('risk_tier')}  framework {v.get('framework')}")
    if v.get("aliases"):
        console.print(f"  aliases: {', '.join(v.get('aliases', []))}")
    if v.get("tags"):
        console.print(f"  tags: {_tags(v.get('tags'))}")
    history = Table("time (UTC)", "from", "to", "actor", "reason", title="lifecycle")
    for t in v.get("transitions", []):
        history.add_row(
            str(t.get("occurred_at", ""))[:19],
            str(t.get("from_state") or "—"),
            str(t.get("to_state")),
            str(t.get("actor_name") or t.get("actor") or ""),
            str(t.get("reason") or ""),
        )
    console.print(history)
    deps = v.get("deployments", [])
    if deps:
        table = Table("deployment", "target", "status", "endpoint", title="deployments")
        for d in deps:
            table.add_row(
                str(d.get("deployment_id")),
                str(d.get("target")),
                str(d.get("status")),
                str(d.get("endpoint_url") or ""),
            )
        console.print(table)


def _transition(model: str, version: int, to_state: str, reason: str) -> None:
    with client() as c:
        v = _run(lambda: c.transition(model, version, to_state, reason))
    console.print(f"[bold]{model}[/] v{version} is now {_state(v.get('state'))}")


@commands.command()
def deprecate(
    model: str,
    version: int,
    reason: Annotated[str, typer.Option(help="Why (recorded, required).")],
) -> None:
    """Deprecate a deployed version (it keeps serving; discouraged for new use)."""
    _transition(model, version, "deprecated", reason)


@commands.command()
def retire(
    model: str,
    version: int,
    reason: Annotated[str, typer.Option(help="Why (recorded, required).")],
) -> None:
    """Retire a version: final; its deployments are torn down."""
    _transition(model, version, "retired", reason)


# --------------------------------------------------------------------------- aliases


@alias_app.command("list")
def alias_list(model: str) -> None:
    """The aliases of MODEL."""
    with client() as c:
        aliases = _run(lambda: c.list_aliases(model))
    table = Table("alias", "version", "state", "protected", "digest", "set by", "at (UTC)")
    for a in aliases:
        table.add_row(
            a["alias"], f"v{a['version']}", _state(a["state"]), "yes" if a["protected"] else "no",
            a["artifact_digest"][:19] + "…", a["updated_by_name"],
            str(a["updated_at"])[:16].replace("T", " "),
        )  # fmt: skip
    console.print(table)


@alias_app.command("set")
def alias_set(
    model: str,
    alias: str,
    version: int,
    reason: Annotated[str | None, typer.Option(help="Why (required for protected).")] = None,
    protect: Annotated[bool, typer.Option(help="Only approved versions from now on.")] = False,
) -> None:
    """Point ALIAS of MODEL at VERSION."""
    with client() as c:
        a = _run(lambda: c.set_alias(model, alias, version, reason=reason, protected=protect))
    mark = " (protected)" if a["protected"] else ""
    console.print(f"{model}@{alias}{mark} → v{a['version']} ({a['state']})")


@alias_app.command("rm")
def alias_rm(
    model: str,
    alias: str,
    reason: Annotated[str | None, typer.Option(help="Why (required for protected).")] = None,
) -> None:
    """Remove ALIAS from MODEL."""
    with client() as c:
        _run(lambda: c.remove_alias(model, alias, reason))
    console.print(f"removed {model}@{alias}")


def register(app: typer.Typer) -> None:
    """Add the catalog commands to `app`."""
    app.add_typer(models_app, name="models")
    app.add_typer(alias_app, name="alias")
    app.registered_commands.extend(commands.registered_commands)
