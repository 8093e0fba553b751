"""The local deployer on the real stack: Kafka in, real model servers, statuses out."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from paved_deployer.adapters.local import is_server, stop_servers_under
from paved_schemas.events import DeploymentStatus as S
from paved_shared.testing import unique, wait_for

pytestmark = pytest.mark.integration


def statuses_of(seen: list[Any]) -> list[tuple[str, int]]:
    return [(s.status.value, s.revision) for s in seen]


def settled(seen: list[Any]) -> bool:
    return bool(seen) and seen[-1].status in (S.READY, S.FAILED, S.RETIRED)


async def infer(endpoint: str, trained: Any) -> list[int]:
    x = trained.sample
    body = {"inputs": [{"name": "features", "shape": list(x.shape), "datatype": "FP64",
                        "data": x.tolist()}]}  # fmt: skip
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{endpoint}/infer", json=body)
    assert response.status_code == 200, response.text
    label: list[int] = response.json()["outputs"][0]["data"]
    return label


def triton_infer(endpoint: str, model: str, trained: Any) -> tuple[Any, Any]:
    """`tritonclient.http` against a deployment's endpoint (Triton's binary extension)."""
    import tritonclient.http as triton

    url = endpoint.removeprefix("http://").split("/", 1)[0]
    client = triton.InferenceServerClient(url=url)
    try:
        assert client.is_server_ready()
        assert client.is_model_ready(model)
        x = trained.sample
        given = triton.InferInput("features", list(x.shape), "FP64")
        given.set_data_from_numpy(x, binary_data=True)
        wanted = [triton.InferRequestedOutput("label", binary_data=True),
                  triton.InferRequestedOutput("probabilities", binary_data=True)]  # fmt: skip
        result = client.infer(model, [given], outputs=wanted)
        return result.as_numpy("label"), result.as_numpy("probabilities")
    finally:
        client.close()


async def handle_of(deployer: Any, deployment_id: str) -> dict[str, Any]:
    """The one replica of the one serving revision, as {pid, port, dir}."""
    async with deployer.runtime.pool.acquire() as conn:
        serving: list[dict[str, Any]] = await conn.fetchval(
            "SELECT serving FROM deployments WHERE deployment_id = $1", deployment_id
        )
    assert len(serving) == 1, serving
    handle = serving[0]["handle"]
    assert len(handle["replicas"]) == 1, handle
    return {**handle["replicas"][0], "dir": handle["dir"]}


async def test_request_before_approval_deploys_serves_and_retires(
    stack: Any, kit: Any, trained: Any, run_dir: Path
) -> None:
    model, dep = unique("iris"), unique("dep")
    config = kit.settings(stack, run_dir)

    await kit.start_at_end(stack.bootstrap, config.consumer_group)

    deployer = kit.deployer(config)
    await deployer.start()
    try:
        # The request arrives before anything is known about the version: it waits.
        await kit.publish(stack.bootstrap, kit.request(dep, model, trained.digest))
        seen = await kit.statuses(stack.bootstrap, dep, lambda s: len(s) >= 1)
        assert statuses_of(seen) == [("pending", 1)]

        await kit.publish(
            stack.bootstrap, kit.registered(trained, model), *kit.approved(model, trained.digest)
        )
        seen = await kit.statuses(stack.bootstrap, dep, settled)
        assert statuses_of(seen) == [("pending", 1), ("provisioning", 1), ("ready", 1)], seen
        ready = seen[-1]
        assert ready.artifact_digest == trained.digest
        assert ready.endpoint_url is not None
        assert ready.endpoint_url.endswith(f"/v2/models/{model}")
        assert (
            await infer(ready.endpoint_url, trained)
            == trained.model.predict(trained.sample).tolist()
        )
        # A KServe/Triton client, binary tensors both ways, through the endpoint.
        labels, proba = await asyncio.to_thread(triton_infer, ready.endpoint_url, model, trained)
        assert labels.tolist() == trained.model.predict(trained.sample).tolist()
        np.testing.assert_allclose(proba, trained.model.predict_proba(trained.sample))

        handle = await handle_of(deployer, dep)
        assert is_server(handle["pid"], handle["dir"])
        # The served file is a verified copy inside the deployment folder.
        assert Path(handle["dir"]).is_relative_to(await asyncio.to_thread(run_dir.resolve))

        await kit.publish(stack.bootstrap, kit.retired(model))
        seen = await kit.statuses(stack.bootstrap, dep, lambda s: s[-1].status is S.RETIRED)
        assert statuses_of(seen)[-1] == ("retired", 1)
        assert "superseded by version 2" in (seen[-1].reason or "")
        assert not is_server(handle["pid"], handle["dir"])
        with pytest.raises(httpx.HTTPError):
            await infer(ready.endpoint_url, trained)
    finally:
        await deployer.stop_all()


async def test_unapproved_digests_fail_with_a_reason_naming_them(
    stack: Any, kit: Any, trained: Any, run_dir: Path
) -> None:
    config = kit.settings(stack, run_dir, deployer_approval_wait_s=2)

    await kit.start_at_end(stack.bootstrap, config.consumer_group)

    deployer = kit.deployer(config)
    await deployer.start()
    try:
        # Never approved: fails once the wait is over.
        silent, dep_silent = unique("silent"), unique("dep")
        other_target = kit.request(unique("dep"), silent, trained.digest, target="aws")
        await kit.publish(
            stack.bootstrap, other_target, kit.request(dep_silent, silent, trained.digest)
        )
        seen = await kit.statuses(stack.bootstrap, dep_silent, settled)
        assert statuses_of(seen) == [("pending", 1), ("failed", 1)]
        assert trained.digest in (seen[-1].reason or "")
        assert "no approval seen" in (seen[-1].reason or "")

        # Explicitly rejected: fails at once, with the rejection.
        refused, dep_refused = unique("refused"), unique("dep")
        await kit.publish(
            stack.bootstrap,
            kit.registered(trained, refused),
            kit.rejected(refused, trained.digest),
        )

        async def rejection_known() -> bool:
            async with deployer.runtime.pool.acquire() as conn:
                return bool(
                    await conn.fetchval("SELECT 1 FROM approvals WHERE model_name = $1", refused)
                )

        await wait_for(rejection_known, what="the rejection to be recorded")
        await kit.publish(stack.bootstrap, kit.request(dep_refused, refused, trained.digest))
        seen = await kit.statuses(stack.bootstrap, dep_refused, settled)
        assert statuses_of(seen) == [("pending", 1), ("failed", 1)]
        assert trained.digest in (seen[-1].reason or "")
        assert "rejected by Bob Reviewer" in (seen[-1].reason or "")

        # A request for another target was consumed and ignored.
        async with deployer.runtime.pool.acquire() as conn:
            consumed = await conn.fetchval(
                "SELECT count(*) FROM processed_events WHERE event_id = $1", other_target.id
            )
            rows = await conn.fetchval(
                "SELECT count(*) FROM deployments WHERE deployment_id = $1",
                other_target.data.deployment_id,
            )
        assert consumed == 1
        assert rows == 0
        started = await asyncio.to_thread(lambda: list(run_dir.glob("*/*/*.pid")))
        assert not started, "no server may start for these"
    finally:
        await deployer.stop_all()


async def _true(value: bool) -> bool:
    return value


async def test_deployer_process_killed_with_sigkill_leaves_a_server_that_is_adopted(
    stack: Any, kit: Any, trained: Any, run_dir: Path
) -> None:
    model, dep = unique("iris"), unique("dep")
    config = kit.settings(stack, run_dir)
    await kit.start_at_end(stack.bootstrap, config.consumer_group)
    env = {
        **os.environ,
        "PAVED_ENVIRONMENT": "test",
        "PAVED_LOG_JSON": "false",
        "PAVED_KAFKA_BOOTSTRAP": stack.bootstrap,
        "PAVED_DATABASE_URL": stack.dsn,
        "PAVED_DEPLOYER_DB_SCHEMA": config.db_schema,
        "PAVED_DEPLOYER_CONSUMER_GROUP": config.consumer_group,
        "PAVED_DEPLOYER_RUN_DIR": str(run_dir),
    }
    log_path = run_dir.parent / "deployer.log"
    log = await asyncio.to_thread(log_path.open, "wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "paved_deployer", env=env, stdout=log, stderr=log
    )
    try:
        await kit.publish(
            stack.bootstrap,
            kit.registered(trained, model),
            *kit.approved(model, trained.digest),
            kit.request(dep, model, trained.digest),
        )
        seen = await kit.statuses(stack.bootstrap, dep, settled)
        assert statuses_of(seen) == [("pending", 1), ("provisioning", 1), ("ready", 1)], seen
    finally:
        process.kill()  # SIGKILL: no shutdown code runs
        await process.wait()
        log.close()
    assert process.returncode == -signal.SIGKILL
    second = kit.deployer(config)
    try:
        await second.start()
        await wait_for(
            lambda: _true(dep in second.reconciler.adopted), what="the live server to be adopted"
        )
        async with second.runtime.pool.acquire() as conn:
            transitions = await conn.fetchval(
                "SELECT count(*) FROM deployment_transitions WHERE deployment_id = $1", dep
            )
        assert transitions == 3, "adoption must not publish anything"
        expected = trained.model.predict(trained.sample).tolist()
        assert await infer(seen[-1].endpoint_url, trained) == expected
    finally:
        await second.stop_all()
    leftover = await asyncio.to_thread(stop_servers_under, run_dir)
    assert leftover == [], f"stop_all left servers running: {leftover}"
