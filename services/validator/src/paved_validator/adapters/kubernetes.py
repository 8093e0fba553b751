"""The sandbox as a Kubernetes Job (the same runner, isolated by the cluster).

The validator (trusted: it holds the credentials, fetched and checked the artifact)
prepares the scratch dir on a volume shared with the Job (a PVC mounted in both),
creates a Job that runs ``paved_validator.sandbox_runner`` on it, polls the Job's
status until it completes, fails or overstays, deletes it, and reads the runner's
report from the shared volume: exactly what the bubblewrap sandbox does locally.

The Job's pod: label ``paved.dev/sandbox: "true"`` (selected by the deny-all ingress
and egress NetworkPolicy in ``k8s/validator/``), no service-account token, no
service links, non-root uid 65534, read-only root file system, no privilege
escalation, every capability dropped, seccomp ``RuntimeDefault``, optional
``runtimeClassName`` (gVisor), CPU/memory limits, ``activeDeadlineSeconds``, no
retries. Its environment is the same four variables as the local sandbox.

Status is *polled* (``read_namespaced_job_status``), not watched: the watch API is
the one part the available test API server (kmock) cannot serve, and polling every
couple of seconds is cheap for a handful of concurrent validations.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from paved_validator.adapters.sandbox import (
    RESULT_FILE,
    SANDBOX_ENV,
    SANDBOX_INPUT,
    SANDBOX_WORK,
    prepare_scratch,
    read_report,
)
from paved_validator.ports import INPUT_DIR, REQUEST_FILE, WORK_DIR, SandboxRun, SandboxStatus

SANDBOX_LABEL = "paved.dev/sandbox"
"""Pods with this label (value "true") get the deny-all NetworkPolicy."""
NETWORK_POLICY = "paved-validation-deny-all"
SCRATCH_VOLUME = "scratch"
UID = 65534
GRACE_S = 30.0
"""How long past the Job's own deadline the validator waits before deleting it."""

ApiClientFactory = Callable[[], AbstractAsyncContextManager[Any]]
"""Returns ``kubernetes_asyncio.client.ApiClient`` (an async context manager)."""


def job_name(scratch: Path) -> str:
    """A valid, unique Job name for one scratch dir (DNS-1123, at most 63 characters)."""
    slug = re.sub(r"[^a-z0-9-]", "-", scratch.name.lower()).strip("-")
    return f"paved-validate-{slug}"[:63].rstrip("-")


def job_manifest(
    *,
    name: str,
    namespace: str,
    image: str,
    claim: str,
    sub_path: str,
    timeout_s: float,
    memory_mb: int,
    runtime_class: str | None = None,
) -> dict[str, Any]:
    """The Job that runs the sandbox runner on ``<claim>/<sub_path>/{input,work}``."""
    security = {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # Headroom over the runner's own RLIMIT_AS for the interpreter itself.
    memory_limit = f"{memory_mb + 256}Mi"
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "runner",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": [
                    "python",
                    "-I",
                    "-m",
                    "paved_validator.sandbox_runner",
                    f"{SANDBOX_INPUT}/{REQUEST_FILE}",
                    f"{SANDBOX_WORK}/{RESULT_FILE}",
                ],
                "workingDir": SANDBOX_WORK,
                "env": [{"name": k, "value": v} for k, v in SANDBOX_ENV.items()],
                "securityContext": security,
                "resources": {
                    "requests": {"cpu": "500m", "memory": memory_limit},
                    "limits": {"cpu": "1", "memory": memory_limit, "ephemeral-storage": "256Mi"},
                },
                "volumeMounts": [
                    {
                        "name": SCRATCH_VOLUME,
                        "mountPath": SANDBOX_INPUT,
                        "subPath": f"{sub_path}/{INPUT_DIR}",
                        "readOnly": True,
                    },
                    {
                        "name": SCRATCH_VOLUME,
                        "mountPath": SANDBOX_WORK,
                        "subPath": f"{sub_path}/{WORK_DIR}",
                    },
                    {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
                ],
            }
        ],
        "volumes": [
            {"name": SCRATCH_VOLUME, "persistentVolumeClaim": {"claimName": claim}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        ],
    }
    if runtime_class:
        pod_spec["runtimeClassName"] = runtime_class
    labels = {
        "app.kubernetes.io/name": "paved-validation-sandbox",
        "app.kubernetes.io/part-of": "paved",
        SANDBOX_LABEL: "true",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": max(1, math.ceil(timeout_s)),
            "ttlSecondsAfterFinished": 300,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


class KubernetesJobSandbox:
    """Runs the smoke runner as a Kubernetes Job; fails closed if the API refuses."""

    def __init__(
        self,
        *,
        api_client: ApiClientFactory,
        namespace: str,
        image: str,
        claim: str,
        scratch_root: Path,
        timeout_s: float,
        memory_mb: int,
        cpu_s: int,
        runtime_class: str | None = None,
        poll_s: float = 2.0,
    ) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.image = image
        self.claim = claim
        self.scratch_root = scratch_root.resolve()
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.cpu_s = cpu_s
        self.runtime_class = runtime_class
        self.poll_s = poll_s

    @property
    def profile(self) -> dict[str, Any]:
        """How runs are isolated and limited, for the evidence report."""
        return {
            "isolation": "kubernetes-job",
            "namespace": self.namespace,
            "image": self.image,
            "network": f"deny-all ingress and egress (NetworkPolicy {NETWORK_POLICY})",
            "user": f"{UID}:{UID}, non-root, all capabilities dropped, no privilege escalation",
            "filesystem": "read-only root; scratch input read-only, work dir writable",
            "seccomp": "RuntimeDefault",
            "service_account_token": "not mounted",
            "runtime_class": self.runtime_class,
            "env": sorted(SANDBOX_ENV),
            "limits": {
                "wall_clock_s": self.timeout_s,
                "memory_mb": self.memory_mb,
                "cpu_s": self.cpu_s,
            },
        }

    async def run(self, scratch: Path, request: dict[str, Any]) -> SandboxRun:
        """Run ``request`` as a Job on the shared scratch dir; delete the Job afterwards."""
        from kubernetes_asyncio import client

        started = time.monotonic()
        scratch = await asyncio.to_thread(scratch.resolve)
        if not scratch.is_relative_to(self.scratch_root):
            return SandboxRun(
                SandboxStatus.UNAVAILABLE, None,
                f"scratch dir {scratch} is not on the shared volume {self.scratch_root}", 0.0,
            )  # fmt: skip
        await asyncio.to_thread(prepare_scratch, scratch, request)
        name = job_name(scratch)
        manifest = job_manifest(
            name=name, namespace=self.namespace, image=self.image, claim=self.claim,
            sub_path=str(scratch.relative_to(self.scratch_root)), timeout_s=self.timeout_s,
            memory_mb=self.memory_mb, runtime_class=self.runtime_class,
        )  # fmt: skip
        async with self.api_client() as api:
            batch = client.BatchV1Api(api)
            try:
                await batch.create_namespaced_job(self.namespace, manifest)  # type: ignore[arg-type]
            except client.ApiException as exc:
                return SandboxRun(
                    SandboxStatus.UNAVAILABLE, None,
                    f"the Kubernetes API refused Job {name} in {self.namespace!r}: "
                    f"{exc.status} {exc.reason}; nothing was run", _ms(started),
                )  # fmt: skip
            try:
                state, detail = await self._wait(batch, name, started)
            finally:
                await self._delete(batch, name)
        wall_ms = _ms(started)
        report, problem = await asyncio.to_thread(read_report, scratch / WORK_DIR / RESULT_FILE)
        if state == "timeout":
            return SandboxRun(SandboxStatus.TIMEOUT, None, detail, wall_ms)
        if report is not None:
            return SandboxRun(SandboxStatus.COMPLETED, report, f"Job {name} {detail}", wall_ms, 0)
        return SandboxRun(
            SandboxStatus.CRASHED, None, f"Job {name} {detail} and the runner left {problem}",
            wall_ms,
        )  # fmt: skip

    async def _wait(self, batch: Any, name: str, started: float) -> tuple[str, str]:
        deadline = started + self.timeout_s + GRACE_S
        while True:
            job = await batch.read_namespaced_job_status(name, self.namespace)
            for condition in (job.status.conditions if job.status else None) or []:
                if condition.status != "True":
                    continue
                if condition.type == "Complete":
                    return "complete", "completed"
                if condition.type == "Failed":
                    if condition.reason == "DeadlineExceeded":
                        return "timeout", (
                            f"killed by Kubernetes after the {self.timeout_s:g} s deadline "
                            f"(Job {name}: DeadlineExceeded)"
                        )
                    return "failed", f"failed ({condition.reason}: {condition.message})"
            if time.monotonic() >= deadline:
                return "timeout", (
                    f"Job {name} did not finish within the {self.timeout_s:g} s limit "
                    f"(+{GRACE_S:g} s grace); deleted"
                )
            await asyncio.sleep(self.poll_s)

    async def _delete(self, batch: Any, name: str) -> None:
        from kubernetes_asyncio import client

        try:
            await batch.delete_namespaced_job(name, self.namespace, propagation_policy="Background")
        except client.ApiException as exc:
            if exc.status != 404:
                raise


def _ms(since: float) -> float:
    return (time.monotonic() - since) * 1000
