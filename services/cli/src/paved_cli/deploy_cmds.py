"""Deployment commands: deploy, deployments watch/show."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from paved_schemas.envelope import Envelope
from paved_schemas.events import DeploymentStatusChanged

from paved_cli.common import bootstrap, client, console, env, fail
from paved_cli.deploy_sdk import deployment_events, deployment_spec
from paved_cli.sdk import PavedError, watch_deployments

deployments_app = typer.Typer(help="Deployments: request, inspect, watch.", no_args_is_help=True)
commands = typer.Typer()


@commands.command()
def deploy(
    model: str,
    version: int,
    target: Annotated[str, typer.Option(help="local, aws or gcp")] = "local",
    replicas: Annotated[int, typer.Option(min=1, help="Replicas to start.")] = 1,
    canary_weight: Annotated[
        int, typer.Option(min=0, max=100, help="Percent of traffic for this version.")
    ] = 100,
    min_replicas: Annotated[int | None, typer.Option(min=0, help="Autoscaling floor.")] = None,
    max_replicas: Annotated[int | None, typer.Option(min=1, help="Autoscaling ceiling.")] = None,
    cpu: Annotated[str | None, typer.Option(help="CPU per replica, e.g. 500m.")] = None,
    memory: Annotated[str | None, typer.Option(help="Memory per replica, e.g. 512Mi.")] = None,
    set_env: Annotated[
        list[str] | None, typer.Option("--env", help="KEY=VALUE for the model server; repeat.")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow the status until it settles.")] = False,
) -> None:
    """Request a deployment of an approved version (a canary with --canary-weight < 100)."""
    variables: dict[str, str] = {}
    for item in set_env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--env {item!r} is not KEY=VALUE")
        variables[key] = value
    try:
        spec = deployment_spec(
            replicas=replicas, canary_weight=canary_weight, min_replicas=min_replicas,
            max_replicas=max_replicas, cpu=cpu, memory=memory, env=variables,
        )  # fmt: skip
    except ValueError as exc:
        raise fail(f"invalid deployment spec: {exc}") from exc
    with client() as c:
        try:
            result = c.request_deployment(model, version, target, spec)
        except PavedError as exc:
            raise fail(str(exc)) from exc
    deployment_id = str(result.get("deployment_id"))
    console.print(f"deployment requested: [bold]{deployment_id}[/] ({target})")
    if wait:
        raise typer.Exit(asyncio.run(_follow(deployment_id)))


async def _follow(deployment_id: str) -> int:
    """Print the deployment's status events (SSE) until it is ready or stops trying."""
    last = None
    async for event in deployment_events(_registry_url(), deployment_id=deployment_id,
                                         until="ready"):  # fmt: skip
        console.print(_status_line(event))
        last = event.data.status.value
    return 0 if last == "ready" else 1


def _registry_url() -> str:
    return env("PAVED_REGISTRY_URL", "http://127.0.0.1:8080")


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
    sse: Annotated[
        bool, typer.Option(help="Read the registry's server-sent events instead of Kafka.")
    ] = False,
) -> None:
    """Follow deployment status events as they happen (from Kafka, or the registry's SSE)."""

    async def run() -> int:
        if sse:
            events = deployment_events(
                _registry_url(), deployment_id=deployment, model=model,
                from_beginning=from_beginning or None, idle_timeout_s=timeout,
            )  # fmt: skip
        else:
            events = watch_deployments(
                bootstrap(), deployment_id=deployment, model=model,
                from_beginning=from_beginning, idle_timeout_s=timeout,
            )  # fmt: skip
        async for event in events:
            console.print(_status_line(event))
            status = event.data.status.value
            if until and (status == until or status in {"failed", "rolled_back", "retired"}):
                return 0 if status == until else 1
        return 0

    try:
        code = asyncio.run(run())
    except PavedError as exc:
        raise fail(str(exc)) from exc
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


@deployments_app.command("undeploy")
def deployments_undeploy(
    deployment_id: str,
    reason: Annotated[str, typer.Option(help="Why it is taken down (recorded, required).")],
) -> None:
    """Take one deployment down: the registry sends the request to its deployer, which
    stops it and reports `retired` (needs the deployer role in the model's team)."""
    with client() as c:
        try:
            accepted = c.undeploy(deployment_id, reason)
        except PavedError as exc:
            raise fail(str(exc)) from exc
    console.print(
        f"undeploy requested for [bold]{deployment_id}[/] (request {accepted['request_event_id']})"
    )
