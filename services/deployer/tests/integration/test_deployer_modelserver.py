"""The model server as a real process: health, metadata, inference, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, kit: Any) -> Iterator[tuple[Any, Any]]:
    folder = tmp_path_factory.mktemp("modelserver")
    trained = kit.train(folder)
    server = kit.start_server(folder, trained)
    try:
        kit.wait_ready(server)
        yield server, trained
    finally:
        kit.stop_server(server)


def test_health_and_metadata(served: tuple[Any, Any]) -> None:
    server, _ = served
    assert httpx.get(f"{server.base}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server.base}/v2/health/ready").status_code == 200
    assert httpx.get(f"{server.base}/v2/models/iris/ready").json()["ready"] is True
    meta = httpx.get(f"{server.base}/v2/models/iris").json()
    assert meta["name"] == "iris"
    assert meta["versions"] == ["3"]
    assert meta["platform"] == "sklearn"
    assert meta["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
    missing = httpx.get(f"{server.base}/v2/models/other")
    assert missing.status_code == 404
    assert "'other' is not served here" in missing.json()["error"]


def test_infer_equals_predict(served: tuple[Any, Any]) -> None:
    server, trained = served
    x = trained.sample
    body = {
        "id": "req-1",
        "inputs": [
            {"name": "features", "shape": list(x.shape), "datatype": "FP64", "data": x.tolist()}
        ],
    }
    for path in ("/v2/models/iris/infer", "/v2/models/iris/versions/3/infer"):
        response = httpx.post(server.base + path, json=body)
        assert response.status_code == 200, response.text
        out = response.json()
        assert out["model_name"] == "iris"
        assert out["id"] == "req-1"
        label, proba = out["outputs"]
        assert label["name"] == "label"
        assert label["shape"] == [len(x)]
        assert label["data"] == trained.model.predict(x).tolist()
        assert proba["shape"] == [len(x), 3]
        np.testing.assert_allclose(
            np.array(proba["data"]).reshape(len(x), 3), trained.model.predict_proba(x)
        )
    # Flat data is the same tensor; one output may be asked for alone.
    flat = {
        "inputs": [{"name": "features", "shape": [len(x), 4], "datatype": "FP64",
                    "data": x.reshape(-1).tolist()}],
        "outputs": [{"name": "label"}],
    }  # fmt: skip
    out = httpx.post(f"{server.base}/v2/models/iris/infer", json=flat).json()
    assert [o["name"] for o in out["outputs"]] == ["label"]
    assert out["outputs"][0]["data"] == trained.model.predict(x).tolist()
    wrong_version = httpx.post(f"{server.base}/v2/models/iris/versions/9/infer", json=flat)
    assert wrong_version.status_code == 404


@pytest.mark.parametrize(
    ("tensor", "problem"),
    [
        ({"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]},
         "input 'features' has shape [1, 3] but the model expects [-1, 4]"),
        ({"name": "features", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
         "input 'features' has datatype 'FP32' but the model expects FP64"),
        ({"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]},
         "input 'x' is not an input of model 'iris'"),
        ({"name": "features", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3, 4]},
         "input 'features' has 4 elements but shape [2, 4] needs 8"),
    ],
)  # fmt: skip
def test_bad_inputs_are_400_naming_the_input(
    served: tuple[Any, Any], tensor: dict[str, object], problem: str
) -> None:
    server, _ = served
    response = httpx.post(f"{server.base}/v2/models/iris/infer", json={"inputs": [tensor]})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem in response.json()["error"], response.json()
    assert response.json()["status"] == 400


def test_malformed_requests_are_400(served: tuple[Any, Any]) -> None:
    server, _ = served
    url = f"{server.base}/v2/models/iris/infer"
    not_json = httpx.post(url, content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]
    no_inputs = httpx.post(url, json={"inputs": []})
    assert no_inputs.status_code == 400
    assert "inputs" in no_inputs.json()["error"]
    bad_output = httpx.post(
        url,
        json={"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP64",
                          "data": [1, 2, 3, 4]}], "outputs": [{"name": "score"}]},
    )  # fmt: skip
    assert bad_output.status_code == 400
    assert "output 'score' is not an output" in bad_output.json()["error"]


def test_refuses_to_start_on_digest_mismatch(tmp_path: Path, kit: Any) -> None:
    trained = kit.train(tmp_path)
    wrong = "sha256:" + "0" * 64
    server = kit.start_server(tmp_path, trained, digest=wrong)
    try:
        assert server.proc.wait(timeout=60) == 2
    finally:
        kit.stop_server(server)
    log = server.log.read_text()
    assert "refusing to start" in log
    assert trained.digest in log
    assert wrong in log
