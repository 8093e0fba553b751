"""The GenAI path end to end: a GenAI version is deployed, gets a route in a real LiteLLM
proxy, answers an OpenAI client through it, and loses the route when its approval expires."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from paved_deployer.adapters.local import free_port
from paved_deployer.modelserver.loaders import load_tiny_lm
from paved_schemas.events import DeploymentStatus as S
from paved_schemas.events import Framework, ModelSignature
from paved_shared.artifacts import sha256_file
from paved_shared.testing import unique, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[4]
TEMPLATE = REPO / "infra" / "litellm" / "config.template.yaml"


@dataclass(frozen=True)
class Gateway:
    folder: Path
    url: str

    def models(self) -> list[str] | None:
        """Models the running LiteLLM proxy was started with (None before the first start)."""
        try:
            state = json.loads((self.folder / "state.json").read_text())
        except (OSError, ValueError):
            return None
        models: list[str] = state["models"]
        return models


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """The gateway supervisor (`python -m paved_deployer.gateway`) running LiteLLM."""
    folder = tmp_path / "gateway"
    port = free_port("127.0.0.1")
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "paved_deployer.gateway", "--dir", str(folder), "--port",
         str(port), "--template", str(TEMPLATE), "--poll-s", "0.2"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield Gateway(folder, f"http://127.0.0.1:{port}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@dataclass(frozen=True)
class TinyArtifact:
    path: Path
    digest: str

    @property
    def uri(self) -> str:
        return self.path.as_uri()


def tiny_lm(folder: Path) -> TinyArtifact:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny-lm.json"
    bigrams = {"hello": "paved", "paved": "road", "road": "to", "to": "production"}
    path.write_text(json.dumps({"format": "paved-tiny-lm/1", "max_tokens": 8, "bigrams": bigrams}))
    return TinyArtifact(path, sha256_file(path))


async def test_genai_version_gets_and_loses_a_gateway_route(
    stack: Any, kit: Any, tmp_path: Path, run_dir: Path, gateway: Gateway
) -> None:
    from openai import AsyncOpenAI, BadRequestError, NotFoundError

    model, dep = unique("tiny-chat").replace("_", "-"), unique("dep")
    artifact = tiny_lm(tmp_path / "artifacts")
    config = kit.settings(stack, run_dir, deployer_gateway_dir=gateway.folder)

    await kit.start_at_end(stack.bootstrap, config.consumer_group)

    deployer = kit.deployer(config)
    await deployer.start()
    try:
        await kit.publish(
            stack.bootstrap,
            kit.registered(artifact, model, framework=Framework.OPENAI_COMPATIBLE,
                           signature=ModelSignature(inputs=[], outputs=[]), genai=True),
            *kit.approved(model, artifact.digest),
            kit.request(dep, model, artifact.digest),
        )  # fmt: skip
        seen = await kit.statuses(
            stack.bootstrap, dep, lambda s: bool(s) and s[-1].status in (S.READY, S.FAILED)
        )
        assert [s.status for s in seen] == [S.PENDING, S.PROVISIONING, S.READY], seen
        endpoint = seen[-1].endpoint_url or ""
        assert endpoint.endswith("/v1")

        async def routed() -> bool:
            return model in (gateway.models() or [])

        await wait_for(routed, timeout_s=120, what="the gateway to route the model")
        prompt = "well hello"
        expected, _ = load_tiny_lm(artifact.path).generate(prompt)
        client = AsyncOpenAI(base_url=gateway.url, api_key="sk-paved-test", max_retries=0)
        answer = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}]
        )
        assert answer.choices[0].message.content == expected
        # The deployment's own endpoint answers the same, without the gateway.
        direct = AsyncOpenAI(base_url=endpoint, api_key="unused", max_retries=0)
        same = await direct.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}]
        )
        assert same.choices[0].message.content == expected

        # The approval expires: the deployment is retired and the route goes away.
        await kit.publish(stack.bootstrap, kit.expired(model, artifact.digest))
        seen = await kit.statuses(stack.bootstrap, dep, lambda s: s[-1].status is S.RETIRED)
        assert "no longer approved" in (seen[-1].reason or "")

        async def unrouted() -> bool:
            return gateway.models() == []

        await wait_for(unrouted, timeout_s=120, what="the gateway to drop the model")
        with pytest.raises((NotFoundError, BadRequestError)):
            await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": prompt}]
            )
        async with httpx.AsyncClient() as http:
            with pytest.raises(httpx.HTTPError):
                await http.get(endpoint.removesuffix("/v1") + "/v2/health/ready")
    finally:
        await deployer.stop_all()
