"""The local router's traffic split and the gateway's LiteLLM config, as pure logic."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from paved_deployer.gateway import GatewayRoutes, render_config
from paved_deployer.router import RouteTable

pytestmark = pytest.mark.unit
TEMPLATE = Path(__file__).resolve().parents[4] / "infra" / "litellm" / "config.template.yaml"


def table(tmp_path: Path, routes: list[dict[str, object]]) -> RouteTable:
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"generation": 3, "routes": routes}))
    return RouteTable.load(path)


@pytest.mark.parametrize(
    ("weights", "window"),
    [((90, 10), 10), ((75, 25), 4), ((50, 50), 2), ((100, 0), 1), ((34, 33, 33), 100)],
)
def test_smooth_weighted_round_robin_is_exact_in_every_window(
    tmp_path: Path, weights: tuple[int, ...], window: int
) -> None:
    routes = table(tmp_path, [
        {"revision": i + 1, "weight": w, "backends": ["127.0.0.1:1"]}
        for i, w in enumerate(weights)
    ])  # fmt: skip
    total = sum(weights)
    for _ in range(3):  # three windows in a row
        picked = Counter(routes.pick().revision for _ in range(window))  # type: ignore[union-attr]
        expected = {i + 1: w * window // total for i, w in enumerate(weights) if w}
        assert dict(picked) == expected


def test_zero_weight_and_empty_routes_are_skipped(tmp_path: Path) -> None:
    routes = table(tmp_path, [
        {"revision": 1, "weight": 0, "backends": ["127.0.0.1:1"]},
        {"revision": 2, "weight": 100, "backends": []},
    ])  # fmt: skip
    assert routes.pick() is None
    assert RouteTable.load(tmp_path / "missing.json").generation == 0


async def test_gateway_routes_render_a_litellm_config(tmp_path: Path) -> None:
    gateway = GatewayRoutes(tmp_path)
    await gateway.add("dep-a", "tiny-chat", "http://127.0.0.1:5001/v1")
    await gateway.add("dep-b", "tiny-chat", "http://127.0.0.1:5002/v1")
    await gateway.add("dep-c", "other", "http://127.0.0.1:5003/v1")
    await gateway.remove("dep-c")
    await gateway.remove("dep-never")
    template = yaml.safe_load(TEMPLATE.read_text())
    config = render_config(gateway.routes(), template)
    assert config["litellm_settings"]["drop_params"] is True
    assert config["model_list"] == [
        {"model_name": "tiny-chat",
         "litellm_params": {"model": "openai/tiny-chat", "api_base": "http://127.0.0.1:5001/v1",
                            "api_key": "paved-no-key"},
         "model_info": {"id": "dep-a"}},
        {"model_name": "tiny-chat",
         "litellm_params": {"model": "openai/tiny-chat", "api_base": "http://127.0.0.1:5002/v1",
                            "api_key": "paved-no-key"},
         "model_info": {"id": "dep-b"}},
    ]  # fmt: skip
