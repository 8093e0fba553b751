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
