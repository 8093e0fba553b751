"""Hard limits of a deployment spec: what no deployer, on any target, may be asked to run.

These are semantic checks (pydantic validators on `DeploymentSpec`), not JSON Schema
keywords: they refuse a *new* request at the contract boundary (422 at the registry
API, dead letter at a deployer) without changing the committed JSON Schemas. A
deployer's own policy (its settings) may only narrow them. See ADR 0012.

The environment of a model server is an allowlist because a handful of variables
(`PYTHONSTARTUP` + `PYTHONINSPECT`, `PYTHONPATH`, `LD_PRELOAD`, `BASH_ENV`, ...) turn
"set an environment variable" into "run a command as the serving user".
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Final

MAX_REPLICAS: Final = 64
"""Replicas (and autoscaling bounds) of one deployment."""
MAX_CPU_MILLICORES: Final = 64_000
"""CPU per replica: 64 cores."""
MAX_MEMORY_BYTES: Final = 256 * 1024**3
"""Memory per replica: 256 GiB."""
MAX_ENV_VALUE: Final = 1024
"""Characters of one environment value."""

DEFAULT_ENV_ALLOWLIST: Final = (
    "PAVED_MODEL_*",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TZ",
    "LOG_LEVEL",
)
"""Names (shell-style patterns, case-sensitive) a deployment may set for its model server."""

FORBIDDEN_ENV: Final = (
    "PYTHON*",
    "LD_*",
    "DYLD_*",
    "GLIBC_*",
    "MALLOC_*",
    "GCONV_*",
    "SSL_*",
    "PATH",
    "HOME",
    "SHELL",
    "ENV",
    "BASH_ENV",
    "IFS",
    "TMPDIR",
    "*_PROXY",
    "*_proxy",
    "PAVED_DEPLOYER_*",
    "AWS_*",
    "GOOGLE_*",
)
"""Never allowed, whatever a policy's allowlist says: code loading, paths, proxies, credentials."""

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGTPE]i?|m)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def cpu_millicores(quantity: str) -> float:
    """A Kubernetes CPU quantity (`500m`, `2`, `0.5`) in millicores."""
    match = _QUANTITY.match(quantity)
    if match is None or match.group(2) not in (None, "m"):
        raise ValueError(f"cpu {quantity!r} is not a CPU quantity such as '500m' or '2'")
    number = float(match.group(1))
    return number if match.group(2) == "m" else number * 1000


def memory_bytes(quantity: str) -> float:
    """A Kubernetes memory quantity (`512Mi`, `2Gi`, `1G`, `1024`) in bytes."""
    match = _QUANTITY.match(quantity)
    if match is None or match.group(2) == "m":
        raise ValueError(f"memory {quantity!r} is not a memory quantity such as '512Mi'")
    suffix = match.group(2)
    factor = 1 if suffix is None else _BINARY.get(suffix) or _DECIMAL[suffix]
    return float(match.group(1)) * factor


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether `name` matches one of the shell-style `patterns` (case-sensitive)."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def env_problems(
    env: Mapping[str, str], allowlist: Iterable[str] = DEFAULT_ENV_ALLOWLIST
) -> list[str]:
    """Why `env` may not reach a model server (empty: it may), naming each variable."""
    allowed = tuple(allowlist)
    problems = []
    for name, value in env.items():
        if matches(name, FORBIDDEN_ENV) or not matches(name, allowed):
            problems.append(
                f"environment variable {name!r} is not allowed for a model server "
                f"(allowed: {', '.join(allowed)})"
            )
        elif len(value) > MAX_ENV_VALUE:
            problems.append(
                f"environment variable {name!r} has a {len(value)}-character value "
                f"(limit {MAX_ENV_VALUE})"
            )
        elif "\x00" in value:
            problems.append(f"environment variable {name!r} contains a NUL character")
    return problems


def _binary(size: float) -> str:
    return f"{size / 2**30:g}Gi" if size % 2**30 == 0 else f"{size / 2**20:g}Mi"


def spec_problems(
    *,
    replicas: Mapping[str, int | None],
    cpu: str | None,
    memory: str | None,
    env: Mapping[str, str],
    max_replicas: int = MAX_REPLICAS,
    max_cpu_millicores: float = MAX_CPU_MILLICORES,
    max_memory_bytes: float = MAX_MEMORY_BYTES,
    env_allowlist: Iterable[str] = DEFAULT_ENV_ALLOWLIST,
    where: str = "the",
) -> list[str]:
    """Why a deployment spec is over the limits (empty: it fits), one sentence each,
    naming the field, its value and the limit. `where` names whose limit it is."""
    problems = [
        f"{name} {value} is above {where} limit of {max_replicas}"
        for name, value in replicas.items()
        if value is not None and value > max_replicas
    ]
    if cpu is not None and cpu_millicores(cpu) > max_cpu_millicores:
        problems.append(
            f"cpu {cpu!r} is above {where} limit of {max_cpu_millicores:g}m per replica"
        )
    if memory is not None and memory_bytes(memory) > max_memory_bytes:
        problems.append(
            f"memory {memory!r} is above {where} limit of {_binary(max_memory_bytes)} per replica"
        )
    return problems + env_problems(env, env_allowlist)
