"""The sandbox as a Kubernetes Job: manifests validated offline (kubernetes-validate
--strict), and the validator's Job runner driven through kubernetes-asyncio against
kmock (an in-memory Kubernetes API on loopback; no controllers, no kubelet, watch not
served, so the runner polls). A small "kubelet" in the test plays the node: it runs
the Job's own command with the Job's own mounts, then reports the Job's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kmock import KubernetesEmulator, Server
from kubernetes_asyncio import client
from paved_validator.adapters import kubernetes as k8s
from paved_validator.adapters.kubernetes import KubernetesJobSandbox, job_manifest
from paved_validator.domain.smoke import runner_request
from paved_validator.ports import INPUT_DIR, SandboxStatus

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]
MANIFESTS = REPO / "k8s" / "validator"
NAMESPACE = "paved"


def _example() -> dict[str, Any]:
    return job_manifest(
        name="paved-validate-example",
        namespace=NAMESPACE,
        image="ghcr.io/paved/validator:0.1.0",
        claim="paved-validation-scratch",
        sub_path="paved-validate-example",
        timeout_s=60,
        memory_mb=1024,
        runtime_class="gvisor",
    )


def test_the_committed_job_example_is_what_the_validator_creates() -> None:
    committed = yaml.safe_load((MANIFESTS / "job-example.yaml").read_text())
    assert committed == _example(), (
        "k8s/validator/job-example.yaml drifted from adapters/kubernetes.job_manifest; "
        "regenerate it (docs/runbooks/validator-kubernetes.md)"
    )


def test_manifests_validate_strictly_offline() -> None:
    skip = {"kustomization.yaml", "validator-deployment-patch.yaml"}  # kustomize inputs
    files = sorted(str(p) for p in MANIFESTS.rglob("*.yaml") if p.name not in skip)
    assert len(files) >= 6
    exe = Path(sys.executable).parent / "kubernetes-validate"
    done = subprocess.run(
        [str(exe), "--strict", *files], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") >= len(files)


def test_manifest_validation_can_fail() -> None:
    """The positive control for the check above: a Job with a misspelt field is refused."""
    bad = _example()
    bad["spec"]["template"]["spec"]["automountServiceAccountTokn"] = False
    exe = Path(sys.executable).parent / "kubernetes-validate"
    done = subprocess.run(
        [str(exe), "--strict", "-"],
        input=yaml.safe_dump(bad),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "automountServiceAccountTokn" in done.stdout + done.stderr


def test_the_job_is_locked_down_and_under_the_deny_all_policy() -> None:
    job = _example()
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsUser"] == 65534
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 60
    assert {e["name"] for e in container["env"]} == {
        "PATH",
        "HOME",
        "PYTHONDONTWRITEBYTECODE",
        "OMP_NUM_THREADS",
    }
    assert [m["readOnly"] for m in container["volumeMounts"] if m["mountPath"] == "/tmp/input"] == [
        True
    ]

    policy = yaml.safe_load((MANIFESTS / "networkpolicy.yaml").read_text())
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert policy["spec"]["ingress"] == []
    assert policy["spec"]["egress"] == []
    selector = policy["spec"]["podSelector"]["matchLabels"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items(), "the policy must select the sandbox pods"
    assert (
        "runtimeClassName"
        not in job_manifest(
            name="j", namespace="n", image="i", claim="c", sub_path="s", timeout_s=1, memory_mb=128
        )["spec"]["template"]["spec"]
    )


# ------------------------------------------------------------------ against kmock


@contextlib.asynccontextmanager
async def _api() -> AsyncIterator[tuple[KubernetesEmulator, str]]:
    async with KubernetesEmulator() as kmock, Server(kmock) as server:
        kmock.resources["batch/v1/jobs"] = {}  # so that the test's kubelet can list Jobs
        yield kmock, str(server.url).rstrip("/")


def _jobs(kmock: KubernetesEmulator) -> list[tuple[str, Any]]:
    """(name, history) of every Job the API has seen, deleted ones included."""
    return [
        (key[2], kmock.objects[key])
        for key in list(kmock.objects.keys())
        if key[0].plural == "jobs"
    ]


def _sandbox(host: str, scratch_root: Path, **kw: Any) -> KubernetesJobSandbox:
    def api_client() -> client.ApiClient:
        return client.ApiClient(client.Configuration(host=host))

    options: dict[str, Any] = {"timeout_s": 30, "memory_mb": 1024, "cpu_s": 30, "poll_s": 0.05}
    options.update(kw)
    return KubernetesJobSandbox(
        api_client=api_client,
        namespace=NAMESPACE,
        image="paved:test",
        claim="paved-validation-scratch",
        scratch_root=scratch_root,
        **options,
    )


async def _kubelet(host: str, scratch_root: Path, *, outcome: str = "run") -> list[str]:
    """Play the node for the first Job that appears: run its command with its mounts (the
    scratch subPaths mapped to the host folder), then write the Job's status."""
    seen: list[str] = []
    async with client.ApiClient(client.Configuration(host=host)) as api:
        batch = client.BatchV1Api(api)
        while True:
            jobs = await batch.list_namespaced_job(NAMESPACE)
            if jobs.items:
                break
            await asyncio.sleep(0.05)
        job = jobs.items[0]
        seen.append(job.metadata.name)
        if outcome == "deadline":
            failed = {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}
            status = {"conditions": [failed]}
        else:
            container = job.spec.template.spec.containers[0]
            mounts = {
                m.mount_path: scratch_root / m.sub_path
                for m in container.volume_mounts
                if m.sub_path
            }
            argv = [sys.executable if a == "python" else a for a in container.command]
            for inside, outside in mounts.items():
                argv = [a.replace(inside, str(outside)) for a in argv]
            proc = await asyncio.create_subprocess_exec(*argv)
            code = await proc.wait()
            kind = "Complete" if code == 0 else "Failed"
            status = {"conditions": [{"type": kind, "status": "True", "reason": "Done"}]}
        await batch.patch_namespaced_job_status(job.metadata.name, NAMESPACE, {"status": status})
    return seen


def _scratch(root: Path, vt, name: str = "paved-validate-t1") -> tuple[Path, dict[str, Any]]:
    scratch = root / name
    (scratch / INPUT_DIR).mkdir(parents=True)
    path, _ = vt.write_artifact(scratch / INPUT_DIR, vt.train_model())
    request = runner_request(
        model_file=path.name,
        framework="sklearn",
        signature=vt.registration("file:///m.pkl", "sha256:" + "0" * 64).signature,
        latency_calls=3,
        memory_mb=1024,
        cpu_s=30,
    )
    return scratch, request


async def test_the_job_runs_the_runner_and_is_deleted_afterwards(tmp_path, vt) -> None:
    root = tmp_path / "scratch"
    scratch, request = _scratch(root, vt)
    async with _api() as (kmock, host):
        node = asyncio.create_task(_kubelet(host, root))
        run = await _sandbox(host, root).run(scratch, request)
        [name] = await node
        [(created, history)] = _jobs(kmock)
        body = history.history[0].raw
        assert created == name
        assert body["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
        assert body["spec"]["template"]["metadata"]["labels"]["paved.dev/sandbox"] == "true"
        assert history.deleted, "the Job is deleted once it is done"
    assert run.status is SandboxStatus.COMPLETED, run.detail
    assert run.report is not None
    assert run.report.load is not None
    assert run.report.load.ok
    assert run.report.inference is not None
    assert [o.shape for o in run.report.inference.outputs] == [[1], [1, 2]]
    assert name == "paved-validate-paved-validate-t1"


async def test_a_job_past_its_deadline_is_a_timeout(tmp_path, vt) -> None:
    root = tmp_path / "scratch"
    scratch, request = _scratch(root, vt)
    async with _api() as (kmock, host):
        node = asyncio.create_task(_kubelet(host, root, outcome="deadline"))
        run = await _sandbox(host, root, timeout_s=5).run(scratch, request)
        await node
        [(_, history)] = _jobs(kmock)
    assert run.status is SandboxStatus.TIMEOUT
    assert "DeadlineExceeded" in run.detail
    assert history.deleted


async def test_a_job_nobody_runs_is_given_up_and_deleted(tmp_path, vt, monkeypatch) -> None:
    monkeypatch.setattr(k8s, "GRACE_S", 0.2)
    root = tmp_path / "scratch"
    scratch, request = _scratch(root, vt)
    async with _api() as (kmock, host):
        run = await _sandbox(host, root, timeout_s=0.3).run(scratch, request)
        [(_, history)] = _jobs(kmock)
    assert run.status is SandboxStatus.TIMEOUT
    assert "did not finish within the 0.3 s limit" in run.detail
    assert history.deleted


async def test_a_refused_job_fails_closed(tmp_path, vt) -> None:
    root = tmp_path / "scratch"
    scratch, request = _scratch(root, vt)
    async with _api() as (kmock, host):
        kmock["post", kmock.resource("batch", "v1", "jobs")] << 403
        run = await _sandbox(host, root).run(scratch, request)
    assert run.status is SandboxStatus.UNAVAILABLE
    assert "refused Job paved-validate-paved-validate-t1 in 'paved': 403" in run.detail
    assert "nothing was run" in run.detail


async def test_a_scratch_dir_off_the_shared_volume_is_refused(tmp_path, vt) -> None:
    scratch, request = _scratch(tmp_path / "elsewhere", vt)
    run = await _sandbox("http://127.0.0.1:9", tmp_path / "scratch").run(scratch, request)
    assert run.status is SandboxStatus.UNAVAILABLE
    assert "is not on the shared volume" in run.detail
