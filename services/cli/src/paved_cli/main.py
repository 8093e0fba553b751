"""``paved``: the command line of the paved road.

Configuration comes from the environment (``paved env`` prints it for a local
platform): ``PAVED_REGISTRY_URL``, ``PAVED_APPROVER_URL``, ``PAVED_KAFKA_BOOTSTRAP``,
``PAVED_USER`` and ``PAVED_USER_NAME`` (who you are; printed names appear in the
audit trail and on e-signatures).
"""

from __future__ import annotations

import typer

from paved_cli import approval_cmds, audit_cmds, deploy_cmds, registry_cmds, validation_cmds
from paved_cli.common import console

app = typer.Typer(
    help="Paved: discover, validate, register, deploy and audit models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Each area's commands live in its own module.
for _module in (registry_cmds, approval_cmds, deploy_cmds, audit_cmds, validation_cmds):
    _module.register(app)


@app.command()
def demo() -> None:
    """Walk a model through the whole paved road on the running platform."""
    from paved_cli.demo import run_demo

    raise typer.Exit(run_demo(console))
