"""CLI commands of this area, registered on the `paved` app by main.py."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app` (none yet)."""
