"""The bubblewrap profile every process that loads untrusted model bytes runs under.

Validation (the validator's smoke runner) and serving (the local deployer's model
servers) share it, so "untrusted bytes are only loaded inside a sandbox" means one
thing (ARCHITECTURE.md, trust boundaries; ADR 0007 and ADR 0012). The profile
(ENVIRONMENT.md, "Sandboxing") held against remount and nsenter escapes when run as
root: own, empty network, PID, IPC, UTS, cgroup and user namespaces; uid/gid 65534
with every capability dropped; the host file system read-only with credential places
masked; a private /tmp; no inherited environment. Each caller adds its own mounts,
environment and command.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BASE_FLAGS = (
    "--unshare-all",
    "--unshare-user",
    "--uid", "65534",
    "--gid", "65534",
    "--cap-drop", "ALL",
    "--die-with-parent",
    "--new-session",
    "--ro-bind", "/", "/",
    "--dev", "/dev",
    "--proc", "/proc",
    "--tmpfs", "/tmp",  # noqa: S108 - a private tmpfs inside the sandbox
    "--clearenv",
)  # fmt: skip
"""The isolation profile; it held against remount and nsenter escapes when run as root."""

SANDBOX_UID = 65534
"""The user (and group) id a sandboxed process runs as."""

SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
"""PATH inside the sandbox (the host's PATH is never inherited)."""

CREDENTIAL_NAMES = (".aws", ".config", ".ssh", ".kube", ".docker", ".gnupg", ".netrc",
                    ".pgpass", ".git-credentials", ".pypirc")  # fmt: skip
"""Places in a home folder that hold credentials."""


@dataclass(frozen=True)
class Mount:
    """A host path made visible inside the sandbox (read-only unless `writable`)."""

    source: Path
    target: str
    writable: bool = False


def find_bwrap(name: str = "bwrap") -> str | None:
    """The bubblewrap executable, or None when it is not installed."""
    return shutil.which(name)


def interpreter_paths_under(prefix: str) -> list[str]:
    """Existing paths the sandboxed interpreter needs (prefixes and sys.path) below ``prefix``,
    outermost only."""
    wanted = {sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path}
    found = sorted(
        {str(Path(p).resolve()) for p in wanted if p and Path(p).exists()}
        | {str(Path(p)) for p in wanted if p and Path(p).exists()}
    )
    root = Path(prefix)
    below = [p for p in found if Path(p).is_relative_to(root) and Path(p) != root]
    return [p for p in below if not any(Path(p).is_relative_to(q) and p != q for q in below)]


def default_masks(extra: Sequence[Path] = ()) -> list[Path]:
    """Host places that hold credentials: hidden inside the sandbox even though / is visible."""
    home = Path.home()
    return [
        *(home / n for n in CREDENTIAL_NAMES),
        Path("/etc/shadow"),
        Path("/etc/gshadow"),
        Path("/run/secrets"),
        Path("/var/run/secrets"),
        *extra,
    ]


def bwrap_command(
    bwrap_path: str,
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    mounts: Sequence[Mount] = (),
    masks: Sequence[Path] = (),
    chdir: str | None = None,
) -> list[str]:
    """The full bubblewrap command line that runs `command` under the profile.

    `masks` are hidden (a folder becomes an empty tmpfs, a file /dev/null) before
    `mounts` are bound, so a mount may re-expose one place inside a masked folder.
    """
    argv = [bwrap_path, *BASE_FLAGS]
    for mask in masks:
        if mask.is_dir():
            argv += ["--tmpfs", str(mask)]
        elif mask.exists():
            argv += ["--ro-bind", "/dev/null", str(mask)]
    # The interpreter, its libraries and editable sources may live under /tmp (a CI
    # checkout there), which the private tmpfs would hide: bind them back read-only.
    for path in interpreter_paths_under("/tmp"):  # noqa: S108
        argv += ["--ro-bind", path, path]
    for mount in mounts:
        argv += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.target]
    if chdir is not None:
        argv += ["--chdir", chdir]
    for name, value in env.items():
        argv += ["--setenv", name, value]
    return [*argv, *command]
