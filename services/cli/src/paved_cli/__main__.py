"""`python -m paved_cli` is the `paved` command."""

from paved_cli.main import app

app(prog_name="paved")
