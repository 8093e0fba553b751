"""Failpoints: named places where a process can be made to die on purpose.

Chaos tests set ``PAVED_FAILPOINTS="outbox.after_publish=kill"`` (comma-separated)
on a real service process to kill it at an exact point, e.g. after a publish but
before the outbox row is marked sent. Unset (production), a failpoint is a dict
lookup that does nothing.
"""

from __future__ import annotations

import os
import signal

_ENV = "PAVED_FAILPOINTS"


def _actions() -> dict[str, str]:
    raw = os.environ.get(_ENV, "")
    pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
    return {name.strip(): action.strip() for name, action in pairs}


def failpoint(name: str) -> None:
    """Trigger the action configured for ``name``: ``kill`` (SIGKILL self) or ``raise``."""
    action = _actions().get(name)
    if action is None:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise RuntimeError(f"failpoint {name} triggered")
