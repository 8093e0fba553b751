"""Attack matrix of the deployer and model serving (issue 11): each walk-around is refused
AND leaves nothing changed (no server process, no `ready`), with positive controls that
the right path still deploys and serves.

Runs a real local deployer (in this process) on the session's Kafka and PostgreSQL; the
model servers it starts are real processes under the bubblewrap sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from paved_deployer.adapters.local import stop_servers_under
from paved_schemas import topics
from paved_schemas.envelope import parse_envelope_as
from paved_schemas.events import DeadLetterRecorded, DeploymentStatusChanged
from paved_shared.artifacts import sha256_file
from paved_shared.kafka import kafka_auth, make_broker
from paved_shared.testing import unique
from prometheus_client import CollectorRegistry

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _load_kit() -> Any:
    """The deployer tests' helpers (events, settings, a trained model), loaded by path:
    one set of fixtures for the deployer's own tests and this matrix."""
    path = REPO / "services" / "deployer" / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("paved_deployer_test_kit", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.Kit


kit = _load_kit()


def _terminal(seen: list[DeploymentStatusChanged]) -> bool:
    return bool(seen) and seen[-1].status.value in ("ready", "failed", "retired")


def _statuses(seen: list[DeploymentStatusChanged]) -> list[str]:
    return [s.status.value for s in seen]


def _servers(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("*/*/*.pid"))


async def _publish_raw(bootstrap: str, topic: str, key: str, value: bytes) -> None:
    broker = make_broker(bootstrap, client_id="attack-test", metrics_registry=CollectorRegistry())
    await broker.start()
    try:
        await broker.publish(value, topic=topic, key=key.encode())
    finally:
        await broker.stop()


async def _dead_letter_of(
    bootstrap: str, group: str, key: str, timeout_s: float = 30
) -> DeadLetterRecorded:
    consumer = AIOKafkaConsumer(
        topics.DEAD_LETTER, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, **kafka_auth().aiokafka(),
    )  # fmt: skip
    await consumer.start()
    wanted = base64.b64encode(key.encode()).decode()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    letter = parse_envelope_as(record.value, DeadLetterRecorded).data
                    if letter.consumer_group == group and letter.original_key == wanted:
                        return letter
    finally:
        await consumer.stop()
    raise AssertionError(f"no dead letter from {group} for {key} within {timeout_s} s")


async def _row_count(deployer: Any, deployment_id: str) -> int:
    async with deployer.runtime.pool.acquire() as conn:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM deployments WHERE deployment_id = $1", deployment_id
        )
    return count


@pytest.fixture
async def world(stack: Any, tmp_path: Path) -> Any:
    """A started local deployer with a short approval wait, its run dir and a model."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = kit.settings(stack, run_dir, deployer_approval_wait_s=3)
    await kit.start_at_end(stack.bootstrap, config.consumer_group)
    deployer = kit.deployer(config)
    await deployer.start()
    try:
        yield SimpleNamespace(
            stack=stack, run_dir=run_dir, config=config, deployer=deployer,
            trained=kit.train(tmp_path / "artifacts"),
        )  # fmt: skip
    finally:
        await deployer.stop_all()
        await asyncio.to_thread(stop_servers_under, run_dir)


# --------------------------------------------------------------------------- refused at the door


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"env": {"PYTHONSTARTUP": "/tmp/x.py", "PYTHONINSPECT": "1"}}, "'PYTHONSTARTUP'"),
        ({"env": {"PYTHONPATH": "/tmp/evil"}}, "'PYTHONPATH'"),
        ({"env": {"LD_PRELOAD": "/tmp/evil.so"}}, "'LD_PRELOAD'"),
        ({"replicas": 10**6}, "replicas 1000000 is above the limit of 64"),
        ({"memory": "100Ei"}, "memory '100Ei' is above the limit"),
    ],
    ids=["pythonstartup", "pythonpath", "ld_preload", "million-replicas", "memory"],
)
async def test_request_over_the_contract_is_dead_lettered_and_starts_nothing(
    world: Any, spec: dict[str, Any], named: str
) -> None:
    """Sent straight to Kafka (bypassing the registry's 422): the deployer dead-letters it
    with a reason naming the variable or the limit; no row, no status, no process."""
    dep, model = unique("dep"), unique("atk")
    trained = world.trained
    await kit.publish(world.stack.bootstrap, kit.registered(trained, model),
                      *kit.approved(model, trained.digest))  # fmt: skip
    valid = json.loads(kit.request(dep, model, trained.digest).to_json_bytes())
    valid["data"]["spec"].update(spec)
    await _publish_raw(
        world.stack.bootstrap, topics.DEPLOYMENT_REQUESTS, dep, json.dumps(valid).encode()
    )
    letter = await _dead_letter_of(world.stack.bootstrap, world.config.consumer_group, dep)
    assert named in letter.reason, letter.reason
    assert letter.error_type == "ContractError"
    assert await _row_count(world.deployer, dep) == 0
    assert _servers(world.run_dir) == []


def test_registry_api_body_refuses_the_same_spec_with_422_detail() -> None:
    """The registry's request body embeds the shared `DeploymentSpec`: FastAPI answers 422
    with the same sentence (checked on the body model, no registry process needed)."""
    from paved_registry.api import RequestDeploymentBody
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="'PYTHONSTARTUP' is not allowed"):
        RequestDeploymentBody.model_validate(
            {"target": "local", "spec": {"env": {"PYTHONSTARTUP": "/tmp/x.py"}}}
        )
    with pytest.raises(ValidationError, match="replicas 1000000 is above the limit of 64"):
        RequestDeploymentBody.model_validate({"target": "local", "spec": {"replicas": 10**6}})


async def test_request_over_this_deployers_policy_fails_before_anything_starts(
    world: Any,
) -> None:
    dep, model = unique("dep"), unique("atk")
    trained = world.trained
    await kit.publish(
        world.stack.bootstrap, kit.registered(trained, model),
        *kit.approved(model, trained.digest), kit.request(dep, model, trained.digest, replicas=9),
    )  # fmt: skip
    seen = await kit.statuses(world.stack.bootstrap, dep, _terminal)
    assert _statuses(seen) == ["pending", "failed"]
    assert "replicas 9 is above the local deployer's policy limit of 8" in (seen[-1].reason or "")
    assert _servers(world.run_dir) == []


async def test_deployment_without_validation_is_refused(world: Any) -> None:
    """Approved but never validated: refused once the wait is over; validated as failed:
    refused at once. Neither starts a server."""
    trained = world.trained
    unvalidated, dep1 = unique("atk"), unique("dep")
    await kit.publish(
        world.stack.bootstrap, kit.registered(trained, unvalidated),
        kit.granted(unvalidated, trained.digest), kit.request(dep1, unvalidated, trained.digest),
    )  # fmt: skip
    seen = await kit.statuses(world.stack.bootstrap, dep1, _terminal)
    assert _statuses(seen) == ["pending", "failed"]
    assert "no passed validation seen within 3 s" in (seen[-1].reason or "")

    failed, dep2 = unique("atk"), unique("dep")
    await kit.publish(
        world.stack.bootstrap, kit.registered(trained, failed),
        kit.validated(failed, trained.digest, passed=False), kit.granted(failed, trained.digest),
    )  # fmt: skip

    async def known() -> bool:
        async with world.deployer.runtime.pool.acquire() as conn:
            sql = "SELECT 1 FROM validations WHERE model_name = $1 AND NOT passed"
            return bool(await conn.fetchval(sql, failed))

    deadline = time.monotonic() + 30
    while not await known():
        assert time.monotonic() < deadline, "the failed validation was never recorded"
        await asyncio.sleep(0.1)
    await kit.publish(world.stack.bootstrap, kit.request(dep2, failed, trained.digest))
    seen = await kit.statuses(world.stack.bootstrap, dep2, _terminal)
    assert _statuses(seen) == ["pending", "failed"]
    assert "did not pass validation: scan: os.system" in (seen[-1].reason or "")
    assert _servers(world.run_dir) == []


# --------------------------------------------------------------------------- the right path


async def _deploy(
    world: Any, trained: Any, model: str
) -> tuple[str, list[DeploymentStatusChanged]]:
    dep = unique("dep")
    await kit.publish(
        world.stack.bootstrap, kit.registered(trained, model),
        *kit.approved(model, trained.digest),
        kit.request(dep, model, trained.digest, env={"OMP_NUM_THREADS": "1"}),
    )  # fmt: skip
    return dep, await kit.statuses(world.stack.bootstrap, dep, _terminal, timeout_s=90)


def _raw(port: int, data: bytes, timeout_s: float = 5.0) -> tuple[int, float]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), time.monotonic() - started


async def test_valid_request_is_admitted_serves_and_survives_hostile_http(world: Any) -> None:
    """Positive control, then the parser attacks against the real endpoint and replica."""
    model = unique("ok")
    dep, seen = await _deploy(world, world.trained, model)
    assert _statuses(seen) == ["pending", "provisioning", "ready"], seen[-1].reason
    endpoint = seen[-1].endpoint_url
    assert endpoint is not None
    x = world.trained.sample
    body = {"inputs": [{"name": "features", "datatype": "FP64", "shape": list(x.shape),
                        "data": x.flatten().tolist()}]}  # fmt: skip
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(f"{endpoint}/infer", json=body)
    assert answer.status_code == 200, answer.text
    labels = next(o for o in answer.json()["outputs"] if o["name"] == "label")["data"]
    assert labels == world.trained.model.predict(x).tolist()

    async with world.deployer.runtime.pool.acquire() as conn:
        serving = await conn.fetchval(
            "SELECT serving FROM deployments WHERE deployment_id = $1", dep
        )
    replica = serving[0]["handle"]["replicas"][0]["port"]
    router = int(endpoint.split(":")[2].split("/")[0])
    head = f"POST /v2/models/{model}/infer HTTP/1.1\r\nhost: x\r\n".encode()
    for port in (router, replica):
        status, took = await asyncio.to_thread(
            _raw, port, head + b"transfer-encoding: chunked\r\n\r\n-6\r\nabcdef\r\n0\r\n\r\n"
        )
        assert (status, took < 2) == (400, True), (port, status, took)
        status, took = await asyncio.to_thread(
            _raw, port, head + b"content-length: 1000000000\r\n\r\n"
        )
        assert (status, took < 2) == (413, True), (port, status, took)
    async with httpx.AsyncClient(timeout=10) as client:
        again = await client.post(f"{endpoint}/infer", json=body)
    assert again.status_code == 200, "the server must keep serving after the attacks"


# --------------------------------------------------------------------------- sandbox escapes

PROBE = r"""
import json, os, socket
report = {"uid": os.getuid(), "gid": os.getgid(), "env": sorted(os.environ),
          "secret": os.environ.get("PAVED_ATTACK_SECRET")}
try:
    socket.create_connection(("127.0.0.1", CANARY_PORT), timeout=2).close()
    report["connect"] = "connected"
except OSError as exc:
    report["connect"] = repr(exc)
report["writes"] = {}
for path in TARGETS:
    try:
        with open(path, "w") as f:
            f.write("pwned")
        report["writes"][path] = "written"
    except OSError as exc:
        report["writes"][path] = repr(exc)
try:
    report["deployer_environ"] = open("/proc/DEPLOYER_PID/environ", "rb").read().decode("latin-1")
except OSError as exc:
    report["deployer_environ"] = repr(exc)
try:
    report["capabilities"] = [l for l in open("/proc/self/status") if l.startswith("CapEff")][0]
except OSError as exc:
    report["capabilities"] = repr(exc)
print("PAVED-PROBE " + json.dumps(report), flush=True)
"""


class _Canary:
    """A TCP listener on the host's loopback that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class _Hostile:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (self.code,))


def _report(text: str) -> dict[str, Any]:
    for line in text.splitlines():
        if line.startswith("PAVED-PROBE "):
            return dict(json.loads(line.removeprefix("PAVED-PROBE ")))
    raise AssertionError(f"no probe report in: {text[-2000:]}")


async def test_hostile_model_cannot_escape_the_serving_sandbox(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pickle whose load probes env, network, writes and identity from inside the served
    model: no secret, no connection arrives at the canary, no host write, uid 65534, no
    capabilities. Positive control: the same probe outside the sandbox does connect."""
    monkeypatch.setenv("PAVED_ATTACK_SECRET", "s3cr3t-canary")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-canary")
    canary = _Canary()
    marker = unique("pwned")
    targets = [str(world.run_dir / marker), str(REPO / marker), f"/root/{marker}",
               str(tmp_path / marker)]  # fmt: skip
    code = PROBE.replace("CANARY_PORT", str(canary.port)).replace("TARGETS", repr(targets))
    code = code.replace("DEPLOYER_PID", str(os.getpid()))
    folder = tmp_path / "hostile"
    folder.mkdir()
    path = folder / "model.pkl"
    path.write_bytes(pickle.dumps(_Hostile(code)))
    hostile = SimpleNamespace(uri=path.as_uri(), digest=sha256_file(path))
    try:
        # The control writes nothing: it only shows the probe connects when unsandboxed.
        control_code = code.replace(repr(targets), "[]")
        control = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", control_code],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert _report(control.stdout)["connect"] == "connected", "the control must connect"
        assert canary.accepted == 1
        assert _report(control.stdout)["secret"] == "s3cr3t-canary"

        model = unique("hostile")
        dep, seen = await _deploy(world, hostile, model)
        assert _statuses(seen) == ["pending", "provisioning", "failed"], seen[-1].reason
        logs = "\n".join(p.read_text(errors="replace") for p in world.run_dir.glob("*/*/*.log"))
        report = _report(logs)
    finally:
        canary.close()
    assert (report["uid"], report["gid"]) == (65534, 65534), report
    assert report["secret"] is None, report
    assert "AWS_SECRET_ACCESS_KEY" not in report["env"], report["env"]
    # PWD comes from bwrap's --chdir, LC_CTYPE from Python's own locale coercion (PEP 538).
    allowed = {"PATH", "HOME", "OMP_NUM_THREADS", "PWD", "LC_CTYPE"}
    assert set(report["env"]) <= allowed, report["env"]
    assert report["connect"] != "connected", report["connect"]
    assert canary.accepted == 1, "no connection may arrive from inside the sandbox"
    assert "s3cr3t-canary" not in report["deployer_environ"], "the deployer's environ leaked"
    assert report["capabilities"].split()[-1] == "0000000000000000", report["capabilities"]
    written = [t for t in targets if await asyncio.to_thread(Path(t).exists)]
    assert written == [], f"written on the host: {report['writes']}"
    if not REPO.is_relative_to("/tmp"):
        # The read-only root refuses it. (A checkout under /tmp is shadowed by the sandbox's
        # private /tmp instead: the write lands there, and the check above shows the host
        # never sees it.)
        assert "Read-only file system" in report["writes"][str(REPO / marker)], report["writes"]
    assert _servers(world.run_dir), "the server was started (and exited): the probe ran inside"
    assert not any(s.status.value == "ready" for s in seen), (
        "a model that fails to load never becomes ready"
    )
    assert dep
