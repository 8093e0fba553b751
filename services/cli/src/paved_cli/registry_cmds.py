"""Catalog commands: models, register, show."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from paved_cli.common import client, console, fail, load_json
from paved_cli.sdk import PavedError, version_body

models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
commands = typer.Typer()


@models_app.command("create")
def models_create(
    name: str,
    team: Annotated[str, typer.Option(help="Owning team (required).")],
    description: Annotated[str, typer.Option(help="What the model is for.")] = "",
) -> None:
    """Create a registered model (the container of its versions)."""
    with client() as c:
        try:
            c.create_model(name, description=description, owner_team=team)
        except PavedError as exc:
            raise fail(str(exc)) from exc
    console.print(f"created model [bold]{name}[/]")


@models_app.command("list")
def models_list() -> None:
    """List registered models."""
    with client() as c:
        try:
            models = c.list_models()
        except PavedError as exc:
            raise fail(str(exc)) from exc
    items = models.get("items", models) if isinstance(models, dict) else models
    table = Table("name", "owner team", "description")
    for m in items:
        table.add_row(m.get("name", ""), m.get("owner_team", ""), m.get("description", ""))
    console.print(table)


@commands.command("register")
def register_version(
    model: str,
    artifact: Annotated[str, typer.Option(help="Artifact path or URI (file://...).")],
    signature: Annotated[Path, typer.Option(help="JSON file: the input/output signature.")],
    card: Annotated[Path, typer.Option(help="JSON file: the model card (risk_tier, ...).")],
    framework: Annotated[str, typer.Option(help="sklearn, onnx, ...")] = "sklearn",
    digest: Annotated[str | None, typer.Option(help="sha256:<hex>; computed for a path.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Safe retries.")] = None,
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
    )
    with client() as c:
        try:
            v = c.register_version(model, body, idempotency_key or str(uuid.uuid4()))
        except PavedError as exc:
            raise fail(str(exc)) from exc
    console.print(f"registered [bold]{model}[/] v{v.get('version')} ({digest}) — {v.get('state')}")


@commands.command()
def show(model: str, version: int) -> None:
    """Show one version: its state, its history and its deployments."""
    with client() as c:
        try:
            v = c.get_version(model, version)
        except PavedError as exc:
            raise fail(str(exc)) from exc
    console.print(f"[bold]{model}[/] v{version}: [cyan]{v.get('state')}[/]")
    console.print(f"  artifact {v.get('artifact_uri')}  {v.get('artifact_digest')}")
    card = v.get("model_card") or {}
    console.print(f"  risk tier {card.get('risk_tier')}  framework {v.get('framework')}")
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


def register(app: typer.Typer) -> None:
    """Add the catalog commands to `app`."""
    app.add_typer(models_app, name="models")
    app.registered_commands.extend(commands.registered_commands)
