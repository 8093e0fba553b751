"""Wiring of a deployer process (no I/O here): runtime, subscriptions, target, reconciler."""

from __future__ import annotations

import functools
from importlib import resources

from paved_schemas import topics
from paved_schemas.events import (
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRejected,
    DeploymentStatusChanged,
    ModelVersionRegistered,
    ModelVersionRetired,
    ModelVersionValidated,
    RequestDeployment,
    RequestUndeployment,
)
from paved_shared.db import load_migrations
from paved_shared.service import ServiceRuntime
from prometheus_client import CollectorRegistry

from paved_deployer.adapters.aws import AwsTarget
from paved_deployer.adapters.gcp import GcpTarget
from paved_deployer.adapters.kubernetes import KubeConfig
from paved_deployer.adapters.local import LocalTarget
from paved_deployer.deployer import Deployer
from paved_deployer.gateway import GatewayRoutes
from paved_deployer.handlers import (
    HandlerDeps,
    on_approval_event,
    on_deployment_request,
    on_model_event,
    on_undeploy_request,
    on_validation_event,
)
from paved_deployer.ports import DeployTarget
from paved_deployer.reconciler import Reconciler
from paved_deployer.settings import DeployerSettings
from paved_deployer.store import StatusWriter


def create_target(settings: DeployerSettings) -> DeployTarget:
    """The adapter for `settings.deployer_target`."""
    if settings.deployer_target == "local":
        return LocalTarget(
            settings.deployer_run_dir,
            host=settings.deployer_host,
            ready_timeout_s=settings.deployer_ready_timeout_s,
            artifact_root=settings.deployer_artifact_root,
            env_allowlist=settings.deployer_env_allowlist,
            max_body_bytes=settings.deployer_max_body_bytes,
        )
    token = settings.deployer_kube_token
    kube = KubeConfig(
        url=settings.deployer_kube_url,
        token=token.get_secret_value() if token is not None else None,
        ca_file=settings.deployer_kube_ca_file,
        kubeconfig=settings.deployer_kubeconfig,
    )
    cloud = {"aws": AwsTarget, "gcp": GcpTarget}[settings.deployer_target]
    return cloud(
        kube,
        namespace=settings.deployer_kube_namespace,
        image=settings.deployer_model_image,
        bucket=settings.deployer_artifact_bucket,
        store_config=settings.artifact_store_config(),
        artifact_root=settings.deployer_artifact_root,
        ready_timeout_s=settings.deployer_ready_timeout_s,
    )


def create_runtime(
    settings: DeployerSettings,
    *,
    target: DeployTarget | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> tuple[ServiceRuntime, HandlerDeps]:
    """The service runtime with the deployer's subscriptions (one subscriber per topic)."""
    runtime = ServiceRuntime(
        settings,
        service=settings.service,
        schema=settings.db_schema,
        group=settings.consumer_group,
        migrations=load_migrations("deployer", resources.files("paved_deployer") / "migrations"),
        metrics_registry=metrics_registry,
        description=f"Deploys approved model versions to the {settings.deployer_target} target.",
    )
    target = target or create_target(settings)
    deps = HandlerDeps(
        target=settings.deployer_target,
        frameworks=target.frameworks,
        approval_wait_s=settings.deployer_approval_wait_s,
        writer=StatusWriter(runtime.emit, service=settings.service),
        policy=settings.serving_policy(),
    )
    runtime.subscribe(
        topics.DEPLOYMENT_REQUESTS,
        functools.partial(on_deployment_request, deps=deps),
        event_types={RequestDeployment.TYPE},
        description="Deployment requests; only those for this target are acted on.",
    )
    runtime.subscribe(
        topics.DEPLOYMENT_REQUESTS,
        functools.partial(on_undeploy_request, deps=deps),
        event_types={RequestUndeployment.TYPE},
        description="Undeployment requests for this target: stop, then report retired.",
    )
    runtime.subscribe(
        topics.APPROVAL_EVENTS,
        functools.partial(on_approval_event, deps=deps),
        event_types={ApprovalGranted.TYPE, ApprovalRejected.TYPE, ApprovalExpired.TYPE},
        description="Approvals gate deployments; a rejection or expiry retires them.",
    )
    runtime.subscribe(
        topics.VALIDATION_EVENTS,
        functools.partial(on_validation_event, deps=deps),
        event_types={ModelVersionValidated.TYPE},
        description="Validation results: only a digest that passed validation is deployed.",
    )
    runtime.subscribe(
        topics.MODEL_EVENTS,
        functools.partial(on_model_event, deps=deps),
        event_types={ModelVersionRegistered.TYPE, ModelVersionRetired.TYPE},
        description="Artifact and signature of versions; retirement undeploys them.",
    )
    runtime.declare_emits(DeploymentStatusChanged)
    return runtime, deps


def create_deployer(
    settings: DeployerSettings,
    *,
    target: DeployTarget | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> Deployer:
    """A complete deployer process object; `await deployer.start()` does the I/O."""
    target = target or create_target(settings)
    runtime, deps = create_runtime(settings, target=target, metrics_registry=metrics_registry)
    reconciler = Reconciler(
        lambda: runtime.pool,
        schema=settings.db_schema,
        target=target,
        writer=deps.writer,
        approval_wait_s=settings.deployer_approval_wait_s,
        interval_s=settings.deployer_reconcile_interval_s,
        unready_limit=settings.deployer_unready_restart_after,
        gateway=(
            GatewayRoutes(settings.deployer_gateway_dir)
            if settings.deployer_gateway_dir is not None
            else None
        ),
    )
    return Deployer(settings, runtime, reconciler, target)
