"""Malicious-payload scanners (modelscan, picklescan) as subprocesses; fail closed.

Each scanner runs as its own process with a wall-clock limit, an environment
without credentials, and the model's folder as its working directory. Its verdict
is CLEAN only if it exited 0, said it scanned the file, and reported no finding and
no error; anything else (a finding, a parse error, a crash, a timeout, a missing
scanner) is a rejection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from paved_validator.domain import pickles
from paved_validator.ports import ScanFinding, ScanVerdict

OUTPUT_LIMIT = 1024 * 1024


def _executable(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    return shutil.which(name)


def _env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent",
            "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip


async def _run(argv: list[str], cwd: Path, timeout_s: float) -> tuple[int | None, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        return None, ""
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    return proc.returncode, out[-OUTPUT_LIMIT:].decode(errors="replace")


class ModelScan:
    """ProtectAI modelscan (``modelscan -p FILE -r json -o REPORT``)."""

    name = "modelscan"

    def __init__(self, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s

    async def scan(self, path: Path) -> ScanVerdict:
        started = time.monotonic()
        exe = _executable("modelscan")
        if exe is None:
            return ScanVerdict.error(self.name, "modelscan is not installed", started)
        report = path.parent.parent / "modelscan-report.json"
        code, output = await _run(
            [exe, "-p", str(path), "-r", "json", "-o", str(report)], path.parent, self.timeout_s
        )
        if code is None:
            return ScanVerdict.error(self.name, f"timed out after {self.timeout_s:g} s", started)
        try:
            data = json.loads(report.read_bytes()[:OUTPUT_LIMIT]) if report.exists() else None
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            tail = output.strip()[-300:]
            return ScanVerdict.error(self.name, f"exit {code} and no JSON report: {tail}", started)
        issues = [
            ScanFinding(
                severity=str(i.get("severity", "?")),
                description=str(i.get("description", i))[:300],
            )
            for i in data.get("issues", [])
            if isinstance(i, dict)
        ]
        errors = [str(e.get("description", e))[:300] for e in data.get("errors", [])
                  if isinstance(e, dict)]  # fmt: skip
        scanned = (data.get("summary") or {}).get("scanned", {}).get("total_scanned", 0)
        if issues:
            return ScanVerdict.found(self.name, issues, started)
        if errors or code != 0 or not scanned:
            why = "; ".join(errors) or f"exit {code}, {scanned} files scanned"
            return ScanVerdict.unparsable(self.name, f"could not scan the file: {why}", started)
        return ScanVerdict.clean(self.name, "no issues in 1 file", started)


class PickleScan:
    """picklescan (``picklescan -p FILE``): exit 1 on a dangerous import."""

    name = "picklescan"

    def __init__(self, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s

    async def scan(self, path: Path) -> ScanVerdict:
        started = time.monotonic()
        exe = _executable("picklescan")
        if exe is None:
            return ScanVerdict.error(self.name, "picklescan is not installed", started)
        code, output = await _run([exe, "-p", str(path)], path.parent, self.timeout_s)
        if code is None:
            return ScanVerdict.error(self.name, f"timed out after {self.timeout_s:g} s", started)
        lines = output.splitlines()
        found = [ScanFinding(severity="dangerous", description=line.split(": ", 1)[-1][:300])
                 for line in lines if line.endswith("FOUND")]  # fmt: skip
        if code == 1 or found:
            return ScanVerdict.found(self.name, found or [ScanFinding("dangerous", output[-300:])],
                                     started)  # fmt: skip
        unparsable = [line for line in lines if "could not parse" in line or "ERROR" in line]
        if code != 0 or unparsable:
            why = "; ".join(unparsable)[:600] or f"exit {code}: {output.strip()[-300:]}"
            return ScanVerdict.unparsable(self.name, f"could not scan the file: {why}", started)
        suspicious = next((ln for ln in lines if ln.startswith("Suspicious globals")), "")
        return ScanVerdict.clean(self.name, f"no dangerous imports ({suspicious.lower()})", started)


class ImportAllowlist:
    """Paved's own scanner: every import in the pickle must be on the sklearn allowlist.

    Deny-list scanners miss what they do not know (``importlib.import_module`` passes
    both modelscan and picklescan); this one accepts only what it knows. Pure Python,
    runs in a worker thread, never executes the pickle.
    """

    name = "import-allowlist"

    async def scan(self, path: Path) -> ScanVerdict:
        started = time.monotonic()
        try:
            summary, problems = await asyncio.to_thread(pickles.check, path)
        except pickles.PickleFormatError as exc:
            return ScanVerdict.unparsable(self.name, f"could not scan the file: {exc}", started)
        if problems:
            return ScanVerdict.found(
                self.name, [ScanFinding("not allowed", p) for p in problems], started
            )
        return ScanVerdict.clean(
            self.name, f"all {len(summary.imports)} imports on the allowlist", started
        )
