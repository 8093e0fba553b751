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
        return spec.limit_problems(
            max_replicas=self.max_replicas,
            max_cpu_millicores=self.max_cpu_millicores,
            max_memory_bytes=self.max_memory_bytes,
            env_allowlist=self.env_allowlist,
            where=f"the {self.target} deployer's policy",
        )
