"""The bubblewrap sandbox that untrusted models are validated in.

The shared profile (`paved_shared.sandbox`, which also serves models) gives the
runner: its own empty network, PID, IPC, UTS, cgroup and user namespaces; uid/gid
65534 with every
capability dropped; the host file system read-only (credential files masked); a
private /tmp; the scratch input read-only and the scratch work dir as its only
writable host place; an environment of four variables. The runner lowers its own
rlimits before it reads the model; a wall-clock timeout kills the whole process tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paved_shared.sandbox import (
    BASE_FLAGS,
    SANDBOX_PATH,
    Mount,
    bwrap_command,
    default_masks,
    find_bwrap,
)
from pydantic import ValidationError

from paved_validator.domain.smoke import RunnerReport
from paved_validator.ports import INPUT_DIR, REQUEST_FILE, WORK_DIR, SandboxRun, SandboxStatus
from paved_validator.sandbox_runner import FILE_SIZE_LIMIT_MB

SANDBOX_INPUT = "/tmp/input"  # noqa: S108 - inside the sandbox's private tmpfs
SANDBOX_WORK = "/tmp/work"  # noqa: S108 - inside the sandbox's private tmpfs
SANDBOX_ENV = {
    "PATH": SANDBOX_PATH,
    "HOME": SANDBOX_WORK,
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",
}
"""The sandbox's whole environment: nothing inherited, so no credentials."""


RESULT_FILE = "result.json"
MAX_REPORT_BYTES = 4 * 1024 * 1024
STDERR_TAIL = 1000


class Sandbox:
    """Runs the smoke runner under bubblewrap; fails closed if bubblewrap is unavailable."""

    def __init__(
        self,
        *,
        timeout_s: float,
        memory_mb: int,
        cpu_s: int,
        bwrap: str = "bwrap",
        python: str = sys.executable,
        masks: Sequence[Path] = (),
    ) -> None:
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.cpu_s = cpu_s
        self.bwrap = bwrap
        self.python = python
        self.masks = list(masks)

    @property
    def profile(self) -> dict[str, Any]:
        """How runs are isolated and limited, for the evidence report."""
        return {
            "isolation": "bubblewrap",
            "flags": list(BASE_FLAGS),
            "mounts": {
                SANDBOX_INPUT: "scratch input: model and request (read-only)",
                SANDBOX_WORK: "scratch work dir (the only writable host place)",
            },
            "masked": [str(p) for p in self.masks],
            "env": sorted(SANDBOX_ENV),
            "user": "65534:65534, all capabilities dropped",
            "network": "none (own, empty network namespace)",
            "limits": {
                "wall_clock_s": self.timeout_s,
                "address_space_mb": self.memory_mb,
                "cpu_s": self.cpu_s,
                "file_size_mb": FILE_SIZE_LIMIT_MB,
            },
        }

    def command(self, bwrap_path: str, scratch: Path) -> list[str]:
        """The full command line for one run on `scratch`."""
        return bwrap_command(
            bwrap_path,
            [self.python, "-I", "-m", "paved_validator.sandbox_runner",
             f"{SANDBOX_INPUT}/{REQUEST_FILE}", f"{SANDBOX_WORK}/{RESULT_FILE}"],
            env=SANDBOX_ENV,
            mounts=[Mount(scratch / INPUT_DIR, SANDBOX_INPUT),
                    Mount(scratch / WORK_DIR, SANDBOX_WORK, writable=True)],
            masks=self.masks,
            chdir=SANDBOX_WORK,
        )  # fmt: skip

    async def run(self, scratch: Path, request: dict[str, Any]) -> SandboxRun:
        """Run `request` on the model in `scratch/input`; never runs it unsandboxed."""
        started = time.monotonic()
        bwrap_path = find_bwrap(self.bwrap)
        if bwrap_path is None:
            return SandboxRun(
                SandboxStatus.UNAVAILABLE,
                None,
                f"bubblewrap ({self.bwrap!r}) is not installed or not on PATH; refusing to run "
                "the model without a sandbox (install the 'bubblewrap' package)",
                0.0,
            )
        await asyncio.to_thread(prepare_scratch, scratch, request)
        return await self._execute(bwrap_path, scratch, started)

    async def _execute(self, bwrap_path: str, scratch: Path, started: float) -> SandboxRun:
        # Output goes to files (bounded by RLIMIT_FSIZE), not pipes we would have to drain.
        with (scratch / "stdout.log").open("wb") as out, (scratch / "stderr.log").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *self.command(bwrap_path, scratch),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group, killed as a whole
            )
            try:
                code = await asyncio.wait_for(proc.wait(), self.timeout_s)
            except TimeoutError:
                await _kill(proc)
                return SandboxRun(
                    SandboxStatus.TIMEOUT,
                    None,
                    f"killed after the {self.timeout_s:g} s wall-clock limit",
                    _ms(started),
                )
            finally:
                if proc.returncode is None:  # cancelled (service stopping): leave nothing behind
                    await _kill(proc)
        wall_ms = _ms(started)
        report, problem = await asyncio.to_thread(read_report, scratch / WORK_DIR / RESULT_FILE)
        if report is not None:
            return SandboxRun(SandboxStatus.COMPLETED, report, "runner reported", wall_ms, code)
        stderr = await asyncio.to_thread(_tail, scratch / "stderr.log")
        if code != 0 and stderr.startswith("bwrap:"):
            return SandboxRun(
                SandboxStatus.UNAVAILABLE,
                None,
                f"the sandbox could not be set up ({stderr.strip()}); nothing was run",
                wall_ms,
                code,
            )
        return SandboxRun(
            SandboxStatus.CRASHED,
            None,
            f"runner exited with {_describe_exit(code)} and {problem}; "
            f"stderr: {stderr or '(empty)'}",
            wall_ms,
            code,
        )


def prepare_scratch(scratch: Path, request: dict[str, Any]) -> None:
    """Write the request into ``scratch/input`` and make the writable ``scratch/work``."""
    (scratch / INPUT_DIR).mkdir(parents=True, exist_ok=True)
    (scratch / WORK_DIR).mkdir(parents=True, exist_ok=True)
    # The sandbox user (65534) must be able to write its work dir, also on a shared volume.
    (scratch / WORK_DIR).chmod(0o777)
    (scratch / INPUT_DIR / REQUEST_FILE).write_text(json.dumps(request))


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()


def _ms(since: float) -> float:
    return (time.monotonic() - since) * 1000


def read_report(path: Path) -> tuple[RunnerReport | None, str]:
    """The runner's report, parsed strictly and size-bounded; or None and why not."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None, "no report"
    if size > MAX_REPORT_BYTES:
        return None, f"a {size}-byte report (limit {MAX_REPORT_BYTES})"
    try:
        return RunnerReport.model_validate_json(path.read_bytes()), ""
    except ValidationError as exc:
        return None, f"an unreadable report ({exc.error_count()} problems)"


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - STDERR_TAIL))
            return f.read().decode(errors="replace").strip()
    except FileNotFoundError:
        return ""


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0 or code > 128:
        number = -code if code < 0 else code - 128
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(number).name} (status {code})"
    return f"status {code}"


__all__ = ["BASE_FLAGS", "SANDBOX_ENV", "Sandbox", "default_masks"]
