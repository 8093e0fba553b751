"""What every CLI module shares: consoles, configuration, the client, error exits."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from paved_cli.sdk import PavedClient

console = Console()
err = Console(stderr=True)


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def client() -> PavedClient:
    """A client configured from the environment."""
    return PavedClient(
        env("PAVED_REGISTRY_URL", "http://127.0.0.1:8080"),
        env("PAVED_APPROVER_URL", "http://127.0.0.1:8081"),
        user=env("PAVED_USER", os.environ.get("USER", "unknown")),
        user_name=env("PAVED_USER_NAME", os.environ.get("USER", "unknown")),
    )


def bootstrap() -> str:
    return env("PAVED_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise fail(f"cannot read {what} file {str(path)!r}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise fail(f"{what} file {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise fail(f"{what} file {str(path)!r} must hold a JSON object")
    return data
