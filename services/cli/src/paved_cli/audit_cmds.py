"""Audit commands: verify (and more to come)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from paved_cli.common import bootstrap, console, env, fail

audit_app = typer.Typer(help="The audit trail: verify it.", no_args_is_help=True)


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

            url = dsn or env("PAVED_DATABASE_URL", "postgresql://postgres@127.0.0.1:5433/paved")
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


def register(app: typer.Typer) -> None:
    """Add the audit commands to `app`."""
    app.add_typer(audit_app, name="audit")
