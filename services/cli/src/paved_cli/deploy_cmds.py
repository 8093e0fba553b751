"""Deployment commands: deploy, deployments watch/show."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from paved_schemas.envelope import Envelope
from paved_schemas.events import DeploymentStatusChanged

from paved_cli.common import bootstrap, client, console, fail
from paved_cli.sdk import PavedError, watch_deployments

deployments_app = typer.Typer(help="Deployments: request, inspect, watch.", no_args_is_help=True)
commands = typer.Typer()


@commands.command()
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


def register(app: typer.Typer) -> None:
    """Add the deployment commands to `app`."""
    app.add_typer(deployments_app, name="deployments")
    app.registered_commands.extend(commands.registered_commands)
