"""Approval commands: approvals list | show | verify, approve, reject.

With SSO, export an access token from your identity provider as ``PAVED_TOKEN`` (the
SDK sends it as a bearer token); signing needs a fresh login (a few minutes old).
``approve``/``reject`` first fetch the case and sign its version hash, so what you sign
is exactly the version shown.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from paved_cli.common import client, console, fail
from paved_cli.sdk import Call, PavedClient, PavedError

approvals_app = typer.Typer(
    help="Approvals: list, show (with signatures), verify signatures.", no_args_is_help=True
)
commands = typer.Typer()


def _get(c: PavedClient, path: str, params: dict[str, str] | None = None) -> Any:
    return c.call(Call("approver", "GET", path, params=params))


def _post(c: PavedClient, path: str, body: dict[str, Any]) -> Any:
    return c.call(Call("approver", "POST", path, body))


@approvals_app.command("list")
def approvals_list(
    state: Annotated[
        str | None, typer.Option(help="pending, granted, rejected, closed, expired")
    ] = "pending",
    model: Annotated[str | None, typer.Option()] = None,
) -> None:
    """List approvals (of your teams)."""
    with client() as c:
        try:
            result = c.list_approvals(state, model)
        except PavedError as exc:
            raise fail(str(exc)) from exc
    items = result.get("items", result) if isinstance(result, dict) else result
    table = Table("approval", "model", "version", "risk tier", "team", "state", "signatures",
                  "expires")  # fmt: skip
    for a in items:
        signed = a.get("approvals", len(a.get("signatures", [])))
        table.add_row(
            str(a.get("approval_id")),
            str(a.get("model_name")),
            str(a.get("version")),
            str(a.get("risk_tier")),
            str(a.get("owner_team") or "-"),
            str(a.get("state")),
            f"{signed}/{a.get('required_approvals', '?')}",
            str(a.get("expires_at") or "-"),
        )
    console.print(table)


def _print_case(case: dict[str, Any]) -> None:
    console.print(
        f"[bold]{case.get('approval_id')}[/]: {case.get('model_name')} v{case.get('version')} "
        f"({case.get('risk_tier')}, team {case.get('owner_team') or '-'}) — "
        f"state [bold]{case.get('state')}[/], policy {case.get('policy_version')}, "
        f"{case.get('approvals')}/{case.get('required_approvals')} approvals"
    )
    console.print(f"  version hash: {case.get('version_hash')}")
    console.print(f"  artifact:     {case.get('artifact_digest')}")
    if case.get("expires_at"):
        console.print(f"  expires at:   {case.get('expires_at')}")
    for sig in case.get("signatures", []):
        # The manifestation (21 CFR 11.50): printed name, UTC time, meaning, bound hash.
        console.print(f"  • {sig.get('manifestation')}")
        console.print(f"      reason: {sig.get('reason')}")


@approvals_app.command("show")
def approvals_show(approval_id: str) -> None:
    """One approval with every signature's manifestation."""
    with client() as c:
        try:
            case = _get(c, f"/api/v1/approvals/{approval_id}")
        except PavedError as exc:
            raise fail(str(exc)) from exc
    _print_case(case)


@approvals_app.command("verify")
def approvals_verify(approval_id: str) -> None:
    """Verify every signature of an approval: seal, record on file, binding to the version."""
    with client() as c:
        try:
            case = _get(c, f"/api/v1/approvals/{approval_id}")
            results = [
                (
                    sig,
                    _post(
                        c,
                        "/api/v1/signatures/verify",
                        {
                            "record": sig["record"],
                            "seal": sig.get("seal") or "-",
                            "seal_key_id": sig.get("seal_key_id") or "-",
                        },
                    ),
                )
                for sig in case.get("signatures", [])
            ]
        except PavedError as exc:
            raise fail(str(exc)) from exc
    if not results:
        console.print(f"approval {approval_id} has no signatures")
        return
    table = Table("signer", "check", "passed", "detail")
    bad = 0
    for sig, result in results:
        bad += 0 if result.get("valid") else 1
        for check in result.get("checks", []):
            table.add_row(str(sig.get("printed_name")), str(check.get("check")),
                          "yes" if check.get("passed") else "[red]NO[/]",
                          str(check.get("detail")))  # fmt: skip
    console.print(table)
    if bad:
        raise fail(f"{bad} of {len(results)} signatures of {approval_id} do not verify")
    console.print(f"all {len(results)} signatures of {approval_id} verify")


def _decide(
    approval_id: str, decision: str, meaning: str, reason: str, version_hash: str | None
) -> None:
    with client() as c:
        try:
            case = _get(c, f"/api/v1/approvals/{approval_id}")
            signed_hash = version_hash or case["version_hash"]
            console.print(
                f"signing {decision} of {case.get('model_name')} v{case.get('version')}, "
                f"version hash {signed_hash}"
            )
            result = _post(c, f"/api/v1/approvals/{approval_id}/decisions", {
                "decision": decision, "meaning": meaning, "reason": reason,
                "version_hash": signed_hash,
            })  # fmt: skip
        except PavedError as exc:
            raise fail(str(exc)) from exc
    console.print(f"{decision} recorded for approval {approval_id}: state {result.get('state')}")
    _print_case(result)


@commands.command()
def approve(
    approval_id: str,
    reason: Annotated[str, typer.Option(help="Why you approve (recorded, required).")],
    meaning: Annotated[str, typer.Option(help="approval, review or responsibility")] = "approval",
    version_hash: Annotated[
        str | None, typer.Option(help="The version hash you reviewed (default: the case's).")
    ] = None,
) -> None:
    """Approve a pending approval (your e-signature is recorded)."""
    _decide(approval_id, "approve", meaning, reason, version_hash)


@commands.command()
def reject(
    approval_id: str,
    reason: Annotated[str, typer.Option(help="Why you reject (recorded, required).")],
    version_hash: Annotated[
        str | None, typer.Option(help="The version hash you reviewed (default: the case's).")
    ] = None,
) -> None:
    """Reject a pending approval (your e-signature is recorded)."""
    _decide(approval_id, "reject", "rejection", reason, version_hash)


def register(app: typer.Typer) -> None:
    """Add the approval commands to `app`."""
    app.add_typer(approvals_app, name="approvals")
    app.registered_commands.extend(commands.registered_commands)
