"""Kubernetes manifests of a deployment, the same for EKS and GKE (pure functions).

Per revision: a Deployment (init container fetches the artifact from S3/GCS and
verifies the approved digest; the model server verifies it again before serving), a
HorizontalPodAutoscaler (the spec's autoscaling bounds) and a PodDisruptionBudget.
Per deployment: a Service (the stable endpoint) and a NetworkPolicy (ingress only from
pods labelled as inference clients or the GenAI gateway; egress only to DNS and HTTPS
for the artifact fetch). Every object carries `paved.dev/*` labels, so the deployer
finds what it owns; all of it validates with `kubernetes-validate --strict`.

On plain Kubernetes a Service spreads requests over the ready pods of the revisions
it selects, so a canary's effective share is its share of the replicas; the intended
weights are recorded in the `paved.dev/traffic` annotation (ADR 0009).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from paved_deployer.domain.lifecycle import replicas_for
from paved_deployer.ports import Backend, ProvisionRequest

MANAGED_BY = "paved-deployer"
PORT = 8080
LABEL_DEPLOYMENT = "paved.dev/deployment"
LABEL_REVISION = "paved.dev/revision"
CLIENT_LABEL = "paved.dev/inference-client"
MODEL_DIR = "/model"
SERVICE_ACCOUNT = "paved-modelserver"
_UNSAFE = re.compile(r"[^a-z0-9-]+")


def dns_name(*parts: str, limit: int = 63) -> str:
    """A DNS-1123 label from `parts` (lower-case, '-' separated, hashed when too long)."""
    raw = "-".join(parts)
    name = _UNSAFE.sub("-", raw.lower()).strip("-")
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def label_value(value: str) -> str:
    """A label value (at most 63 characters, alphanumeric at both ends)."""
    return dns_name(value)


def revision_name(deployment_id: str, revision: int) -> str:
    """Name of a revision's Deployment, HPA and PDB."""
    suffix = f"r{revision}"
    return f"{dns_name('paved', deployment_id, limit=62 - len(suffix))}-{suffix}"


def endpoint_name(deployment_id: str) -> str:
    """Name of a deployment's Service and NetworkPolicy."""
    return dns_name("paved", deployment_id)


def labels(deployment_id: str, revision: int | None = None) -> dict[str, str]:
    """The labels of every object of a deployment (and revision)."""
    found = {
        "app.kubernetes.io/name": "paved-modelserver",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_DEPLOYMENT: label_value(deployment_id),
    }
    if revision is not None:
        found[LABEL_REVISION] = str(revision)
    return found


def _resources(cpu: str | None, memory: str | None) -> dict[str, dict[str, str]]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
        limits["memory"] = memory
    result: dict[str, dict[str, str]] = {}
    if requests:
        result["requests"] = requests
    if limits:
        result["limits"] = limits
    return result


def render_revision(
    request: ProvisionRequest, *, namespace: str, image: str, artifact_uri: str
) -> list[dict[str, Any]]:
    """Deployment, HPA and PDB of one revision; `artifact_uri` is the staged S3/GCS copy."""
    spec = request.spec
    name = revision_name(request.deployment_id, request.revision)
    meta_labels = {
        **labels(request.deployment_id, request.revision),
        "paved.dev/model": label_value(request.model_name),
        "paved.dev/version": str(request.version),
    }
    annotations = {
        "paved.dev/deployment-id": request.deployment_id,
        "paved.dev/artifact-uri": artifact_uri,
        "paved.dev/artifact-digest": request.artifact_digest,
        "paved.dev/framework": request.framework,
    }
    selector = labels(request.deployment_id, request.revision)
    file_name = artifact_uri.rstrip("/").rsplit("/", 1)[-1] or "model"
    replicas = replicas_for(spec.replicas, spec.min_replicas, spec.max_replicas)
    server_args = [
        "-m", "paved_deployer.modelserver",
        "--name", request.model_name,
        "--version", str(request.version),
        "--model-file", f"{MODEL_DIR}/{file_name}",
        "--signature-file", f"{MODEL_DIR}/signature.json",
        "--digest", request.artifact_digest,
        "--framework", request.framework,
        "--host", "0.0.0.0",  # noqa: S104 - inside the pod; the NetworkPolicy limits who connects
        "--port", str(PORT),
    ]  # fmt: skip
    if request.genai:
        server_args.append("--genai")
    hardened = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    env = [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": meta_labels,
            "annotations": annotations,
        },
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 2,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": dict(selector)},
            "template": {
                "metadata": {"labels": dict(meta_labels), "annotations": dict(annotations)},
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "automountServiceAccountToken": True,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "initContainers": [
                        {
                            "name": "fetch-model",
                            "image": image,
                            "command": ["python"],
                            "args": [
                                "-m",
                                "paved_deployer.fetch",
                                "--uri",
                                artifact_uri,
                                "--digest",
                                request.artifact_digest,
                                "--dest",
                                MODEL_DIR,
                                "--signature-json",
                                request.signature.model_dump_json(),
                            ],
                            "volumeMounts": [{"name": "model", "mountPath": MODEL_DIR}],
                            "securityContext": dict(hardened),
                        }
                    ],
                    "containers": [
                        {
                            "name": "modelserver",
                            "image": image,
                            "command": ["python"],
                            "args": server_args,
                            "env": env,
                            "ports": [{"name": "http", "containerPort": PORT}],
                            "readinessProbe": {
                                "httpGet": {"path": "/v2/health/ready", "port": "http"},
                                "periodSeconds": 5,
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/v2/health/live", "port": "http"},
                                "periodSeconds": 10,
                                "failureThreshold": 3,
                            },
                            "resources": _resources(spec.cpu, spec.memory),
                            "volumeMounts": [
                                {"name": "model", "mountPath": MODEL_DIR, "readOnly": True}
                            ],
                            "securityContext": dict(hardened),
                        }
                    ],
                    "volumes": [{"name": "model", "emptyDir": {}}],
                },
            },
        },
    }
    low = spec.min_replicas if spec.min_replicas is not None else replicas
    high = spec.max_replicas if spec.max_replicas is not None else replicas
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(meta_labels)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            # minReplicas 0 needs the HPAScaleToZero feature gate; 1 is the portable floor.
            "minReplicas": max(1, low),
            "maxReplicas": max(1, low, high),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(meta_labels)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(selector)}},
    }
    return [deployment, hpa, pdb]


def render_endpoint(
    deployment_id: str, *, namespace: str, backends: list[Backend]
) -> list[dict[str, Any]]:
    """Service and NetworkPolicy of a deployment, selecting its serving revisions."""
    name = endpoint_name(deployment_id)
    selector = labels(deployment_id)
    selector.pop("app.kubernetes.io/managed-by")
    live = [b for b in backends if b.weight > 0]
    if len(live) == 1:
        # One serving revision: select it alone, so a rollout's pods get no traffic early.
        selector[LABEL_REVISION] = str(live[0].revision)
    traffic = json.dumps({str(b.revision): b.weight for b in backends}, sort_keys=True)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels(deployment_id),
            "annotations": {"paved.dev/traffic": traffic, "paved.dev/deployment-id": deployment_id},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": labels(deployment_id)},
        "spec": {
            "podSelector": {"matchLabels": {LABEL_DEPLOYMENT: label_value(deployment_id)}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": {CLIENT_LABEL: "true"}}},
                        {"namespaceSelector": {"matchLabels": {CLIENT_LABEL: "true"}}},
                    ],
                    "ports": [{"protocol": "TCP", "port": PORT}],
                }
            ],
            "egress": [
                {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"ports": [{"protocol": "TCP", "port": 443}]},
            ],
        },
    }
    return [service, policy]


def endpoint_url(deployment_id: str, namespace: str, model_name: str, *, genai: bool) -> str:
    """The in-cluster URL of a deployment's Service."""
    base = f"http://{endpoint_name(deployment_id)}.{namespace}.svc.cluster.local"
    return f"{base}/v1" if genai else f"{base}/v2/models/{model_name}"


def validate(manifests: list[dict[str, Any]], kubernetes_version: str = "1.32.0") -> None:
    """Validate offline with `kubernetes-validate --strict` (raises on the first error)."""
    import kubernetes_validate

    for manifest in manifests:
        kubernetes_validate.validate(manifest, kubernetes_version, strict=True)


def example_manifests() -> list[dict[str, Any]]:
    """The manifests of a sample canary deployment (checked in under `k8s/deployer/`)."""
    from paved_schemas.events import DeploymentSpec, ModelSignature

    request = ProvisionRequest(
        deployment_id="churn-classifier-prod",
        revision=3,
        model_name="churn-classifier",
        version=4,
        artifact_uri="s3://paved-artifacts/paved/models/churn-classifier/4/model.onnx",
        artifact_digest="sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        framework="onnx",
        signature=ModelSignature.model_validate(
            {
                "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 12]}],
                "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1, 1]}],
            }
        ),
        spec=DeploymentSpec(
            replicas=2, cpu="500m", memory="512Mi", min_replicas=2, max_replicas=6,
            env={"LOG_LEVEL": "info"}, canary_weight=10,
        ),
    )  # fmt: skip
    namespace = "paved-serving"
    revision = render_revision(
        request,
        namespace=namespace,
        image="ghcr.io/paved-dev/paved-modelserver:0.1.0",
        artifact_uri=request.artifact_uri,
    )
    backends = [Backend(2, 90, {}), Backend(3, 10, {})]
    return revision + render_endpoint(request.deployment_id, namespace=namespace, backends=backends)


def main(argv: list[str] | None = None) -> int:
    """`python -m paved_deployer.k8s [--check] DIR`: write (or check) the example manifests."""
    import argparse
    from pathlib import Path

    import yaml

    parser = argparse.ArgumentParser(prog="python -m paved_deployer.k8s")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args(argv)
    manifests = example_manifests()
    validate(manifests)

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    text = "# Rendered by `python -m paved_deployer.k8s k8s/deployer`; do not edit.\n" + (
        yaml.dump_all(manifests, Dumper=_NoAliases, sort_keys=False)
    )
    path = args.folder / "example-canary.yaml"
    if args.check:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is stale; run python -m paved_deployer.k8s {args.folder}")
            return 1
        return 0
    args.folder.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
