"""Approval commands: approvals list, approve, reject."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from paved_cli.common import client, console, fail
from paved_cli.sdk import PavedError

approvals_app = typer.Typer(help="Approvals: list, approve, reject.", no_args_is_help=True)
commands = typer.Typer()


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


@commands.command()
def approve(
    approval_id: str,
    reason: Annotated[str, typer.Option(help="Why you approve (recorded, required).")],
    meaning: Annotated[str, typer.Option(help="approval, review or responsibility")] = "approval",
) -> None:
    """Approve a pending approval (your signature is recorded)."""
    _decide(approval_id, "approve", meaning, reason)


@commands.command()
def reject(
    approval_id: str,
    reason: Annotated[str, typer.Option(help="Why you reject (recorded, required).")],
) -> None:
    """Reject a pending approval."""
    _decide(approval_id, "reject", "rejection", reason)


def register(app: typer.Typer) -> None:
    """Add the approval commands to `app`."""
    app.add_typer(approvals_app, name="approvals")
    app.registered_commands.extend(commands.registered_commands)
