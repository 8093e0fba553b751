"""What a pickle would import, found without running it, and the allowlist it must meet.

Scanners (modelscan, picklescan) look for known-bad imports; a pickle can call
anything importable, so a deny list misses whatever it does not know (the
"import-based bypass": ``importlib.import_module`` passes both). This module walks
the opcode stream with a small abstract stack, resolves every ``GLOBAL`` /
``STACK_GLOBAL`` / ``INST`` target it can name statically, and accepts a pickle only
if each target is on the allowlist for scikit-learn artifacts. A target that cannot
be named statically is itself a rejection (fail closed).
"""

from __future__ import annotations

import importlib
import pickletools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALLOWED_PACKAGES = frozenset({"sklearn", "numpy", "scipy"})
"""Top-level packages whose classes a scikit-learn pickle may instantiate."""

DENIED_SEGMENTS = frozenset(
    {"testing", "_testing", "tests", "conftest", "f2py", "distutils", "_datasource", "lib2to3"}
)
"""Module path parts never allowed, even inside an allowed package (test helpers run code)."""

DENIED_CLASSES = frozenset({"numpy.memmap", "numpy.lib._datasource.DataSource"})
"""Classes in allowed packages whose construction touches files."""

ALLOWED_CALLABLES = frozenset(
    {
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray.scalar",
        "numpy._core.numeric._frombuffer",
        "numpy.core.numeric._frombuffer",
        "numpy.core.multiarray.scalar",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__generator_ctor",
        "copyreg._reconstructor",
        "_codecs.encode",
        "collections.OrderedDict",
        "builtins.set",
        "builtins.frozenset",
        "builtins.bytearray",
        "builtins.complex",
        "builtins.slice",
        "builtins.object",
    }
)
"""Exact functions (and a few builtin types) that plain data and numpy arrays unpickle with."""

_STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
     "SHORT_BINSTRING"}
)  # fmt: skip
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MARK = object()
_UNKNOWN = object()
MAX_OPCODES = 50_000_000


class PickleFormatError(ValueError):
    """The file is not a readable pickle stream."""


@dataclass
class PickleSummary:
    """What the opcode walk found."""

    protocol: int = 0
    opcodes: int = 0
    imports: list[str] = field(default_factory=list)
    """Every import target, ``module.name``, in order of first appearance."""
    unresolved: int = 0
    """Imports whose module or name is computed at load time (cannot be checked)."""

    def describe(self) -> str:
        return f"protocol {self.protocol}, {self.opcodes} opcodes, {len(self.imports)} imports"


def walk(path: Path) -> PickleSummary:  # noqa: PLR0912 - one branch per opcode family
    """Walk the opcodes of ``path`` without executing them; PickleFormatError if malformed."""
    summary = PickleSummary()
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    seen: set[str] = set()

    def note(target: str) -> None:
        if target not in seen:
            seen.add(target)
            summary.imports.append(target)

    with path.open("rb") as f:
        try:
            for opcode, arg, _ in pickletools.genops(f):
                summary.opcodes += 1
                if summary.opcodes > MAX_OPCODES:
                    raise PickleFormatError(f"more than {MAX_OPCODES} opcodes")
                name = opcode.name
                if name == "PROTO" and isinstance(arg, int):
                    summary.protocol = arg
                if name in _STRING_OPS:
                    stack.append(arg if isinstance(arg, str) else _UNKNOWN)
                elif name in _GET_OPS:
                    stack.append(memo.get(arg, _UNKNOWN) if isinstance(arg, int) else _UNKNOWN)
                elif name in _PUT_OPS:
                    if isinstance(arg, int):
                        memo[arg] = stack[-1] if stack else _UNKNOWN
                elif name == "MEMOIZE":
                    memo[len(memo)] = stack[-1] if stack else _UNKNOWN
                elif name in {"GLOBAL", "INST"}:
                    module, _, attr = str(arg).partition(" ")
                    note(f"{module}.{attr}")
                    _apply(opcode, stack)
                elif name == "STACK_GLOBAL":
                    top: object = stack.pop() if stack else _UNKNOWN
                    below: object = stack.pop() if stack else _UNKNOWN
                    if isinstance(below, str) and isinstance(top, str):
                        note(f"{below}.{top}")
                    else:
                        summary.unresolved += 1
                    stack.append(_UNKNOWN)
                else:
                    _apply(opcode, stack)
        except OSError:
            raise
        except PickleFormatError:
            raise
        except Exception as exc:  # pickletools reports malformed input in several ways
            raise PickleFormatError(
                f"{type(exc).__name__}: {exc} (after {summary.opcodes} opcodes)"
            ) from exc
    if summary.opcodes == 0:
        raise PickleFormatError("the file is empty")
    return summary


def _apply(opcode: pickletools.OpcodeInfo, stack: list[Any]) -> None:
    """The generic stack effect of an opcode (values unknown)."""
    before = opcode.stack_before
    if pickletools.markobject in before:
        while stack and stack[-1] is not _MARK:
            stack.pop()
        if stack:
            stack.pop()
        before = (
            before[before.index(pickletools.stackslice) + 1 :]
            if (pickletools.stackslice in before)
            else []
        )
    for _ in before:
        if stack:
            stack.pop()
    for item in opcode.stack_after:
        stack.append(_MARK if item is pickletools.markobject else _UNKNOWN)


def import_problem(target: str) -> str | None:  # noqa: PLR0911 - one return per rule
    """Why a scikit-learn pickle may not import ``target`` (None when it may)."""
    if target in ALLOWED_CALLABLES:
        return None
    module, _, attr = target.rpartition(".")
    parts = module.split(".")
    if parts[0] not in ALLOWED_PACKAGES:
        allowed = ", ".join(sorted(ALLOWED_PACKAGES))
        return f"imports {target!r}, outside the allowed packages ({allowed})"
    if denied := DENIED_SEGMENTS.intersection(parts):
        return f"imports {target!r} from a module never allowed ({sorted(denied)[0]})"
    if target in DENIED_CLASSES:
        return f"imports {target!r}, which touches files when built"
    obj = _resolve(module, attr)
    if obj is None:
        return f"imports {target!r}, which does not exist in the installed packages"
    if isinstance(obj, type):
        full = f"{obj.__module__}.{obj.__qualname__}"
        if full in DENIED_CLASSES or any(
            f"{b.__module__}.{b.__qualname__}" in DENIED_CLASSES for b in obj.__mro__
        ):
            return f"imports {target!r}, which touches files when built"
        return None
    if attr.startswith("__pyx_unpickle_"):
        return None  # Cython's generated state restorers for extension types
    return f"imports {target!r}, a {type(obj).__name__} (only classes and array rebuilders allowed)"


def _resolve(module: str, attr: str) -> object | None:
    try:
        obj: object = importlib.import_module(module)
    except ImportError:
        return None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def check(path: Path) -> tuple[PickleSummary, list[str]]:
    """Walk ``path``; return the summary and every allowlist violation (empty: allowed)."""
    summary = walk(path)
    problems = [p for t in summary.imports if (p := import_problem(t)) is not None]
    if summary.unresolved:
        problems.append(
            f"{summary.unresolved} import(s) whose target is computed at load time "
            "(cannot be checked)"
        )
    return summary, problems
