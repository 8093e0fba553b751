"""Kubernetes manifests: strict offline validation, names, and the checked-in example."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
from paved_deployer import k8s
from paved_deployer.ports import Backend, ProvisionRequest
from paved_schemas.events import DeploymentSpec, ModelSignature

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[4]
SIGNATURE = ModelSignature.model_validate(
    {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
     "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}]}
)  # fmt: skip


def request(deployment_id: str = "churn_prod.eu", **spec: object) -> ProvisionRequest:
    return ProvisionRequest(
        deployment_id=deployment_id, revision=7, model_name="churn", version=2,
        artifact_uri="gs://bucket/paved/models/churn/2/abc/model.pkl",
        artifact_digest="sha256:" + "a" * 64, framework="sklearn", signature=SIGNATURE,
        spec=DeploymentSpec.model_validate(spec), genai=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"replicas": 3, "cpu": "250m", "memory": "1Gi", "env": {"PAVED_MODEL_A": "1"}},
        {"replicas": 1, "min_replicas": 0, "max_replicas": 4, "canary_weight": 5},
    ],
)
def test_every_manifest_validates_strictly(spec: dict[str, object]) -> None:
    manifests = k8s.render_revision(
        request(**spec), namespace="paved-serving", image="img:1", artifact_uri="gs://b/m.pkl"
    )
    manifests += k8s.render_endpoint(
        "churn_prod.eu", namespace="paved-serving",
        backends=[Backend(6, 90, {}), Backend(7, 10, {})],
    )  # fmt: skip
    assert [m["kind"] for m in manifests] == [
        "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service",
        "NetworkPolicy",
    ]  # fmt: skip
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.32.0", strict=True)


def test_spec_reaches_the_workload() -> None:
    deployment, hpa, _ = k8s.render_revision(
        request(replicas=3, cpu="250m", memory="1Gi", env={"PAVED_MODEL_A": "1"}, min_replicas=2,
                max_replicas=5),
        namespace="ns", image="img:1", artifact_uri="gs://b/m.pkl",
    )  # fmt: skip
    assert deployment["metadata"]["name"] == "paved-churn-prod-eu-r7"
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "1Gi"},
        "limits": {"memory": "1Gi"},
    }
    assert container["env"] == [{"name": "PAVED_MODEL_A", "value": "1"}]
    assert "sha256:" + "a" * 64 in container["args"]
    fetch = deployment["spec"]["template"]["spec"]["initContainers"][0]["args"]
    assert fetch[fetch.index("--uri") + 1] == "gs://b/m.pkl"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)


def test_one_serving_revision_is_selected_alone() -> None:
    one = k8s.render_endpoint("d", namespace="ns", backends=[Backend(4, 100, {})])[0]
    assert one["spec"]["selector"]["paved.dev/revision"] == "4"
    two = k8s.render_endpoint("d", namespace="ns",
                              backends=[Backend(4, 75, {}), Backend(5, 25, {})])[0]  # fmt: skip
    assert "paved.dev/revision" not in two["spec"]["selector"]
    assert two["metadata"]["annotations"]["paved.dev/traffic"] == '{"4": 75, "5": 25}'


def test_long_ids_give_valid_unique_names() -> None:
    a = k8s.revision_name("x" * 120, 12)
    b = k8s.revision_name("x" * 119 + "y", 12)
    assert len(a) <= 63
    assert a.endswith("-r12")
    assert a != b
    assert k8s.dns_name("Paved", "A_b.c") == "paved-a-b-c"


def test_checked_in_example_is_current() -> None:
    assert k8s.main(["--check", str(REPO / "k8s" / "deployer")]) == 0
