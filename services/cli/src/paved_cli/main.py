"""``paved``: the command line of the paved road.

Configuration comes from the environment (``paved env`` prints it for a local
platform): ``PAVED_REGISTRY_URL``, ``PAVED_APPROVER_URL``, ``PAVED_KAFKA_BOOTSTRAP``,
``PAVED_USER`` and ``PAVED_USER_NAME`` (who you are; printed names appear in the
audit trail and on e-signatures).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from paved_schemas.envelope import Envelope
from paved_schemas.events import DeploymentStatusChanged
from rich.console import Console
from rich.table import Table

from paved_cli import approval_cmds, audit_cmds, deploy_cmds, registry_cmds, validation_cmds
from paved_cli.sdk import PavedClient, PavedError, version_body, watch_deployments

app = typer.Typer(
    help="Paved: discover, validate, register, deploy and audit models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
deployments_app = typer.Typer(help="Deployments: request, inspect, watch.", no_args_is_help=True)
approvals_app = typer.Typer(help="Approvals: list, approve, reject.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail: verify it.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
app.add_typer(deployments_app, name="deployments")
app.add_typer(approvals_app, name="approvals")
app.add_typer(audit_app, name="audit")
app.add_typer(models_app, name="models")

console = Console()
err = Console(stderr=True)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def client() -> PavedClient:
    """A client configured from the environment."""
    return PavedClient(
        _env("PAVED_REGISTRY_URL", "http://127.0.0.1:8080"),
        _env("PAVED_APPROVER_URL", "http://127.0.0.1:8081"),
        user=_env("PAVED_USER", os.environ.get("USER", "unknown")),
        user_name=_env("PAVED_USER_NAME", os.environ.get("USER", "unknown")),
    )


def bootstrap() -> str:
    return _env("PAVED_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise fail(f"cannot read {what} file {str(path)!r}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise fail(f"{what} file {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise fail(f"{what} file {str(path)!r} must hold a JSON object")
    return data


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


@app.command()
def register(
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
        signature=_load_json(signature, "signature"),
        model_card=_load_json(card, "model card"),
    )
    with client() as c:
        try:
            v = c.register_version(model, body, idempotency_key or str(uuid.uuid4()))
        except PavedError as exc:
            raise fail(str(exc)) from exc
    console.print(f"registered [bold]{model}[/] v{v.get('version')} ({digest}) — {v.get('state')}")


@app.command()
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


@approvals_app.command("list")
def approvals_list(
    state: Annotated[str | None, typer.Option(help="pending, granted, rejected")] = "pending",
    model: Annotated[str | None, typer.Option()] = None,
) -> None:
    """List approvals."""
    with client() as c:
        try:
            result = c.list_approvals(state, model)
        except PavedError as exc:
            raise fail(str(exc)) from exc
    items = result.get("items", result) if isinstance(result, dict) else result
    table = Table("approval", "model", "version", "risk tier", "state", "signatures")
    for a in items:
        table.add_row(
            str(a.get("approval_id")),
            str(a.get("model_name")),
            str(a.get("version")),
            str(a.get("risk_tier")),
            str(a.get("state")),
            f"{len(a.get('signatures', []))}/{a.get('required_approvals', '?')}",
        )
    console.print(table)


def _decide(approval_id: str, decision: str, meaning: str, reason: str) -> None:
    with client() as c:
        try:
            result = c.decide(approval_id, decision, meaning, reason)
        except PavedError as exc:
            raise fail(str(exc)) from exc
    console.print(f"{decision} recorded for approval {approval_id}: state {result.get('state')}")
    for sig in result.get("signatures", []):
        console.print(
            f"  signed by {sig.get('printed_name')} ({sig.get('signer_id')}) at "
            f"{sig.get('signed_at')} — meaning: {sig.get('meaning')} — {sig.get('reason')}"
        )


@app.command()
def approve(
    approval_id: str,
    reason: Annotated[str, typer.Option(help="Why you approve (recorded, required).")],
    meaning: Annotated[str, typer.Option(help="approval, review or responsibility")] = "approval",
) -> None:
    """Approve a pending approval (your signature is recorded)."""
    _decide(approval_id, "approve", meaning, reason)


@app.command()
def reject(
    approval_id: str,
    reason: Annotated[str, typer.Option(help="Why you reject (recorded, required).")],
) -> None:
    """Reject a pending approval."""
    _decide(approval_id, "reject", "rejection", reason)


@app.command()
def deploy(
    model: str,
    version: int,
    target: Annotated[str, typer.Option(help="local, aws or gcp")] = "local",
    replicas: Annotated[int, typer.Option(min=1)] = 1,
) -> None:
    """Request a deployment of an approved version."""
    with client() as c:
        try:
            result = c.request_deployment(model, version, target, {"replicas": replicas})
        except PavedError as exc:
            raise fail(str(exc)) from exc
    console.print(f"deployment requested: [bold]{result.get('deployment_id')}[/] ({target})")


def _status_line(env: Envelope[DeploymentStatusChanged]) -> str:
    d = env.data
    extra = f" {d.endpoint_url}" if d.endpoint_url else ""
    reason = f" — {d.reason}" if d.reason else ""
    return (
        f"{env.time:%H:%M:%S} {d.deployment_id} {d.model_name} v{d.version} "
        f"[{d.target}] rev {d.revision}: [bold]{d.status}[/]{extra}{reason}"
    )


@deployments_app.command("watch")
def deployments_watch(
    deployment: Annotated[str | None, typer.Option(help="Only this deployment id.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    from_beginning: Annotated[bool, typer.Option(help="Replay history first.")] = False,
    until: Annotated[str | None, typer.Option(help="Stop at this status (e.g. ready).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop after N idle seconds.")] = None,
) -> None:
    """Follow deployment status events from Kafka as they happen."""

    async def run() -> int:
        async for env in watch_deployments(
            bootstrap(),
            deployment_id=deployment,
            model=model,
            from_beginning=from_beginning,
            idle_timeout_s=timeout,
        ):
            console.print(_status_line(env))
            if until and env.data.status in {until, "failed"}:
                return 0 if env.data.status == until else 1
        return 0

    try:
        code = asyncio.run(run())
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


@deployments_app.command("show")
def deployments_show(deployment_id: str) -> None:
    """Show one deployment."""
    with client() as c:
        try:
            d = c.get_deployment(deployment_id)
        except PavedError as exc:
            raise fail(str(exc)) from exc
    console.print_json(json.dumps(d, default=str))


@audit_app.command("verify")
def audit_verify(
    source: Annotated[str, typer.Option(help="topic (the audit topic) or db")] = "topic",
    dsn: Annotated[str | None, typer.Option(help="PostgreSQL DSN for --source db")] = None,
    schema: Annotated[str, typer.Option(help="audit schema for --source db")] = "audit",
) -> None:
    """Verify the audit hash chain, naming the first bad record."""
    from paved_audit import verify

    async def run() -> Any:
        if source == "topic":
            return await verify.verify_topic(bootstrap())
        if source == "db":
            from paved_shared.db import create_pool

            url = dsn or _env("PAVED_DATABASE_URL", "postgresql://postgres@127.0.0.1:5433/paved")
            pool = await create_pool(url, schema=schema)
            try:
                return await verify.verify_database(pool)
            finally:
                await pool.close()
        raise fail(f"unknown --source {source!r}; use topic or db")

    report = asyncio.run(run())
    for line in report.summary_lines():
        console.print(line)
    if not report.ok:
        raise typer.Exit(1)
    console.print("[bold green]audit chain verified[/]")


# Each area's engineers add commands in their own module.
for _module in (registry_cmds, approval_cmds, deploy_cmds, audit_cmds, validation_cmds):
    _module.register(app)


@app.command()
def demo() -> None:
    """Walk a model through the whole paved road on the running platform."""
    from paved_cli.demo import run_demo

    raise typer.Exit(run_demo(console))
