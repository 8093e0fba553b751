"""This deployer's serving policy: limits a request must fit before anything starts.

The contract (`paved_schemas.limits`) already refuses what no target may run; a
deployer's policy (its settings) may only be narrower. A request over the policy is
refused at admission with a reason naming the limit and the value.
"""

from __future__ import annotations

from dataclasses import dataclass

from paved_schemas import limits
from paved_schemas.events import DeploymentSpec


@dataclass(frozen=True)
class ServingPolicy:
    """Per-target caps on replicas, resources and the model server's environment."""

    max_replicas: int = 8
    max_cpu_millicores: float = 8_000
    max_memory_bytes: float = 32 * 1024**3
    env_allowlist: tuple[str, ...] = limits.DEFAULT_ENV_ALLOWLIST
    target: str = "local"

    def problems(self, spec: DeploymentSpec) -> list[str]:
        """Why `spec` is over this policy, one sentence per limit (empty: it fits)."""
        where = f"the {self.target} deployer's policy"
        found = [
            f"{name} {value} is above {where} limit of {self.max_replicas}"
            for name, value in (
                ("replicas", spec.replicas),
                ("min_replicas", spec.min_replicas),
                ("max_replicas", spec.max_replicas),
            )
            if value is not None and value > self.max_replicas
        ]
        if spec.cpu is not None and limits.cpu_millicores(spec.cpu) > self.max_cpu_millicores:
            found.append(
                f"cpu {spec.cpu!r} is above {where} limit of {self.max_cpu_millicores:g}m "
                "per replica"
            )
        if spec.memory is not None and limits.memory_bytes(spec.memory) > self.max_memory_bytes:
            found.append(
                f"memory {spec.memory!r} is above {where} limit of "
                f"{self.max_memory_bytes / 1024**2:g}Mi per replica"
            )
        found += limits.env_problems(spec.env, self.env_allowlist)
        return found
