"""Settings of a deployer process (env prefix ``PAVED_``, fields ``deployer_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from paved_schemas import limits, topics
from paved_shared.artifacts import ArtifactStoreSettings
from paved_shared.db import check_identifier
from paved_shared.settings import PavedSettings
from pydantic import Field, SecretStr, field_validator

from paved_deployer.domain.policy import ServingPolicy


class DeployerSettings(PavedSettings, ArtifactStoreSettings):
    """One deployer process serves one target (`PAVED_DEPLOYER_TARGET`).

    `aws` and `gcp` also read the artifact-store settings (`PAVED_ARTIFACT_S3_*`,
    `PAVED_ARTIFACT_GCS_*`) and the Kubernetes ones (`PAVED_DEPLOYER_KUBE_*`).
    """

    service_name: str = Field(default="deployer", description="Name used in logs and traces.")
    deployer_target: Literal["local", "aws", "gcp"] = Field(
        default="local",
        description="Which target this process deploys to; picks the DeployTarget adapter.",
    )
    deployer_db_schema: str | None = Field(
        default=None,
        description="PostgreSQL schema of this deployer; default `deployer_<target>`.",
    )
    deployer_consumer_group: str | None = Field(
        default=None,
        description="Kafka consumer group; default `topics.DEPLOYER_GROUPS[target]`.",
    )
    deployer_run_dir: Path = Field(
        default=Path(".run/deployments"),
        description="Where local model servers keep their files (model copy, signature, log).",
    )
    deployer_ready_timeout_s: float = Field(
        default=60.0, gt=0, description="How long a new model server may take to become ready."
    )
    deployer_approval_wait_s: float = Field(
        default=120.0,
        ge=0,
        description="How long a deployment waits for an unknown approval/registration "
        "before it fails.",
    )
    deployer_reconcile_interval_s: float = Field(
        default=1.0, gt=0, description="Reconciler poll period (it is also woken on commits)."
    )
    deployer_stop_servers_on_exit: bool = Field(
        default=False,
        description="Stop model servers when the deployer stops (default: leave them serving "
        "so a restarted deployer adopts them).",
    )
    deployer_artifact_root: Path | None = Field(
        default=None,
        description="If set, file:// artifacts must lie under this folder.",
    )
    deployer_host: str = Field(
        default="127.0.0.1", description="Interface local model servers listen on."
    )
    deployer_unready_restart_after: int = Field(
        default=5,
        ge=1,
        description="Consecutive failed readiness probes of a live server before it is restarted.",
    )
    deployer_max_replicas: int = Field(
        default=8,
        ge=1,
        le=limits.MAX_REPLICAS,
        description="Policy: most replicas (and autoscaling bound) one deployment may ask for.",
    )
    deployer_max_cpu: str = Field(
        default="8",
        pattern=r"^[0-9]+(\.[0-9]+)?m?$",
        description="Policy: most CPU per replica (Kubernetes quantity).",
    )
    deployer_max_memory: str = Field(
        default="32Gi",
        pattern=r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?)?$",
        description="Policy: most memory per replica (Kubernetes quantity).",
    )
    deployer_env_allowlist: list[str] = Field(
        default_factory=lambda: list(limits.DEFAULT_ENV_ALLOWLIST),
        description="Policy: names (shell patterns) a deployment's spec.env may set for its "
        "model server; PYTHON*, LD_*, PATH, HOME, proxies and credentials never pass.",
    )
    deployer_max_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Request body cap of local model servers and routers (413 above it).",
    )

    deployer_gateway_dir: Path | None = Field(
        default=None,
        description="Folder of the shared GenAI gateway's routes (`python -m "
        "paved_deployer.gateway --dir`); unset: GenAI versions get no gateway route.",
    )

    deployer_kube_url: str | None = Field(
        default=None,
        description="Kubernetes API server URL (aws/gcp); unset: kubeconfig, then in-cluster.",
    )
    deployer_kube_token: SecretStr | None = Field(
        default=None, description="Bearer token for deployer_kube_url."
    )
    deployer_kube_ca_file: Path | None = Field(
        default=None, description="CA bundle that signs the API server's certificate."
    )
    deployer_kubeconfig: Path | None = Field(
        default=None,
        description="kubeconfig file (EKS: `aws eks update-kubeconfig`; GKE: "
        "`gcloud container clusters get-credentials`).",
    )
    deployer_kube_namespace: str = Field(
        default="paved-serving",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="Namespace the model servers run in.",
    )
    deployer_model_image: str = Field(
        default="ghcr.io/paved-dev/paved-modelserver:0.1.0",
        description="Container image with paved-deployer (the model server and the fetcher).",
    )
    deployer_artifact_bucket: str | None = Field(
        default=None,
        description="aws: S3 bucket, gcp: GCS bucket where artifacts registered elsewhere "
        "(file://) are staged for the cluster; required for those.",
    )

    @field_validator("deployer_db_schema")
    @classmethod
    def _safe_schema(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value)

    def serving_policy(self) -> ServingPolicy:
        """The limits every request to this deployer must fit (checked at admission)."""
        return ServingPolicy(
            max_replicas=self.deployer_max_replicas,
            max_cpu_millicores=limits.cpu_millicores(self.deployer_max_cpu),
            max_memory_bytes=limits.memory_bytes(self.deployer_max_memory),
            env_allowlist=tuple(self.deployer_env_allowlist),
            target=self.deployer_target,
        )

    @property
    def db_schema(self) -> str:
        """The effective DB schema."""
        return self.deployer_db_schema or f"deployer_{self.deployer_target}"

    @property
    def consumer_group(self) -> str:
        """The effective consumer group."""
        return self.deployer_consumer_group or topics.DEPLOYER_GROUPS[self.deployer_target]

    @property
    def service(self) -> str:
        """Service name on events (`source` is `/paved/<service>`)."""
        return f"deployer-{self.deployer_target}"
