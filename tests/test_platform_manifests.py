"""The platform's own Kubernetes manifests (k8s/base) are valid and locked down."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

BASE = Path(__file__).resolve().parents[1] / "k8s" / "base"


def _docs() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for path in sorted(BASE.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            out.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return out


def test_manifests_validate_strictly_offline() -> None:
    files = [str(p) for p in sorted(BASE.glob("*.yaml")) if p.name != "kustomization.yaml"]
    proc = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", *files],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_every_workload_runs_non_root_without_token_or_capabilities() -> None:
    deployments = [d for d in _docs() if d["kind"] == "Deployment"]
    assert len(deployments) == 5
    for d in deployments:
        pod = d["spec"]["template"]["spec"]  # type: ignore[index]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]


def test_each_service_runs_as_its_own_kafka_principal_and_database_role() -> None:
    """No shared credential: each Deployment names its own SCRAM user (the KafkaUser the
    ACL map generates) and its own database role, passwords only from Secrets."""
    from paved_schemas import topics

    deployments = {d["metadata"]["name"]: d for d in _docs() if d["kind"] == "Deployment"}  # type: ignore[index]
    seen = set()
    for name, d in deployments.items():
        principal = str(name).removeprefix("paved-")
        assert principal in topics.SERVICE_PRINCIPALS, name
        (container,) = d["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
        env = {e["name"]: e for e in container["env"]}
        assert env["PAVED_KAFKA_SASL_USERNAME"]["value"] == f"paved-{principal}"
        ref = env["PAVED_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": f"paved-{principal}", "key": "password"}
        role = "paved_" + principal.replace("-", "_")
        assert env["PAVED_DATABASE_URL"]["value"].startswith(f"postgresql://{role}@")
        assert "valueFrom" in env["PAVED_DATABASE_PASSWORD"]
        assert env["PAVED_DATABASE_MIGRATION_URL"]["value"].startswith("postgresql://paved_owner@")
        seen.add(principal)
    assert len(seen) == len(deployments) == 5


def test_strimzi_users_are_the_generated_acl_map() -> None:
    from paved_shared.kafka_acl import strimzi_yaml

    committed = (BASE.parent / "kafka" / "users.yaml").read_text()
    assert committed == strimzi_yaml(), "regenerate: python -m paved_shared.kafka_acl strimzi"
    users = {d["metadata"]["name"]: d for d in yaml.safe_load_all(committed)}
    approvals = [
        name
        for name, u in users.items()
        for acl in u["spec"]["authorization"]["acls"]
        if acl["resource"]["name"] == "paved.approval.events.v1" and "Write" in acl["operations"]
    ]
    assert approvals == ["paved-approver"]
