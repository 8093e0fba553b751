"""The model server as a real process: health, metadata, inference, refusals."""

from __future__ import annotations

import json
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


# --------------------------------------------------------------------------- more servers


def start(folder: Path, model_file: Path, signature: Any, *, framework: str, name: str,
          genai: bool = False) -> Any:  # fmt: skip
    """A model server process for any framework (not waited for)."""
    import subprocess
    import sys

    from paved_deployer.adapters.local import free_port
    from paved_shared.artifacts import sha256_file

    signature_file = folder / "signature.json"
    signature_file.write_text(signature.model_dump_json())
    port = free_port("127.0.0.1")
    log = folder / f"{name}.log"
    args = [sys.executable, "-m", "paved_deployer.modelserver", "--name", name, "--version", "1",
            "--model-file", str(model_file), "--signature-file", str(signature_file),
            "--digest", sha256_file(model_file), "--framework", framework,
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    if genai:
        args.append("--genai")
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    from dataclasses import dataclass

    @dataclass
    class Running:
        base: str
        proc: Any
        log: Path

    return Running(f"http://127.0.0.1:{port}", proc, log)


ONNX_SIGNATURE = {
    "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}],
    "outputs": [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ],
}


@pytest.fixture(scope="module")
def onnx_served(tmp_path_factory: pytest.TempPathFactory, kit: Any) -> Iterator[tuple[Any, Any]]:
    from paved_schemas.events import ModelSignature
    from skl2onnx import to_onnx

    folder = tmp_path_factory.mktemp("onnx")
    trained = kit.train(folder)
    x32 = trained.sample.astype(np.float32)
    onnx_model = to_onnx(
        trained.model, x32[:1], options={id(trained.model): {"zipmap": False}},
        final_types=None, target_opset=17,
    )  # fmt: skip
    model_file = folder / "model.onnx"
    model_file.write_bytes(onnx_model.SerializeToString())
    signature = ModelSignature.model_validate(ONNX_SIGNATURE)
    server = start(folder, model_file, signature, framework="onnx", name="iris-onnx")
    try:
        kit.wait_ready(server)
        yield server, trained
    finally:
        kit.stop_server(server)


def test_onnx_model_serves_what_sklearn_predicts(onnx_served: tuple[Any, Any]) -> None:
    server, trained = onnx_served
    meta = httpx.get(f"{server.base}/v2/models/iris-onnx").json()
    assert meta["platform"] == "onnxruntime_onnx"
    x = trained.sample.astype(np.float32)
    body = {"inputs": [{"name": "features", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.tolist()}]}  # fmt: skip
    out = httpx.post(f"{server.base}/v2/models/iris-onnx/infer", json=body).json()
    label, proba = out["outputs"]
    assert label["data"] == trained.model.predict(trained.sample).tolist()
    np.testing.assert_allclose(
        np.array(proba["data"]).reshape(len(x), 3),
        trained.model.predict_proba(trained.sample),
        rtol=1e-4, atol=1e-5,
    )  # fmt: skip
    wrong = {"inputs": [{"name": "features", "shape": list(x.shape), "datatype": "FP64",
                         "data": x.tolist()}]}  # fmt: skip
    refused = httpx.post(f"{server.base}/v2/models/iris-onnx/infer", json=wrong)
    assert refused.status_code == 400
    assert "datatype 'FP64' but the model expects FP32" in refused.json()["error"]


def test_tritonclient_binary_and_json_tensors(
    served: tuple[Any, Any], onnx_served: tuple[Any, Any]
) -> None:
    import tritonclient.http as triton

    for server, trained, name, dtype, np_type in (
        (*served, "iris", "FP64", np.float64),
        (*onnx_served, "iris-onnx", "FP32", np.float32),
    ):
        client = triton.InferenceServerClient(url=server.base.removeprefix("http://"))
        try:
            assert client.is_server_live()
            assert client.is_model_ready(name)
            assert client.get_model_metadata(name)["inputs"][0]["datatype"] == dtype
            x = trained.sample.astype(np_type)
            for binary in (True, False):
                given = triton.InferInput("features", list(x.shape), dtype)
                given.set_data_from_numpy(x, binary_data=binary)
                wanted = [
                    triton.InferRequestedOutput("label", binary_data=binary),
                    triton.InferRequestedOutput("probabilities", binary_data=binary),
                ]
                result = client.infer(name, [given], outputs=wanted)  # fmt: skip
                assert result.as_numpy("label").tolist() == trained.model.predict(
                    trained.sample).tolist()  # fmt: skip
                np.testing.assert_allclose(
                    result.as_numpy("probabilities"), trained.model.predict_proba(trained.sample),
                    rtol=1e-4, atol=1e-5,
                )  # fmt: skip
            # No outputs named: tritonclient asks for every output in binary.
            given = triton.InferInput("features", list(x.shape), dtype)
            given.set_data_from_numpy(x, binary_data=True)
            result = client.infer(name, [given])
            assert result.as_numpy("label").shape == (len(x),)
        finally:
            client.close()


def test_binary_tensor_that_does_not_fit_is_400(served: tuple[Any, Any]) -> None:
    server, _ = served
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [2, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": 8 * 4},
                }
            ]
        }
    ).encode()
    blob = np.zeros(4, dtype=np.float64).tobytes()
    response = httpx.post(
        f"{server.base}/v2/models/iris/infer", content=header + blob,
        headers={"Inference-Header-Content-Length": str(len(header)),
                 "Content-Type": "application/octet-stream"},
    )  # fmt: skip
    assert response.status_code == 400
    assert "input 'features' has 32 bytes of binary data but shape [2, 4]" in response.json()[
        "error"]  # fmt: skip


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_prometheus_metrics_count_requests(served: tuple[Any, Any]) -> None:
    server, trained = served
    before = httpx.get(f"{server.base}/metrics").text
    x = trained.sample
    body = {"inputs": [{"name": "features", "shape": list(x.shape), "datatype": "FP64",
                        "data": x.tolist()}]}  # fmt: skip
    for _ in range(3):
        assert httpx.post(f"{server.base}/v2/models/iris/infer", json=body).status_code == 200
    bad = {"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}
    assert httpx.post(f"{server.base}/v2/models/iris/infer", json=bad).status_code == 400
    after = httpx.get(f"{server.base}/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    ok = ("paved_model_requests_total", {"route": "infer", "code": "200", "model": "iris"})
    refused = ("paved_model_requests_total", {"route": "infer", "code": "400"})
    rows = ("paved_model_inference_rows_total", {"model": "iris"})

    def delta(name: str, labels: dict[str, str]) -> float:
        return _metric(after.text, name, **labels) - _metric(before, name, **labels)

    assert delta(*ok) == 3
    assert delta(*refused) == 1
    assert delta(*rows) == 3 * len(x)
    assert "paved_model_request_duration_seconds_bucket" in after.text


def tiny_lm(folder: Path) -> Path:
    document = {
        "format": "paved-tiny-lm/1",
        "max_tokens": 6,
        "bigrams": {"hello": "paved", "paved": "road", "road": "to", "to": "production"},
    }
    path = folder / "tiny-lm.json"
    path.write_text(json.dumps(document))
    return path


def test_genai_model_answers_openai_chat_completions(tmp_path: Path, kit: Any) -> None:
    from openai import BadRequestError as OpenAIBadRequest
    from openai import OpenAI
    from paved_deployer.modelserver.loaders import load_tiny_lm
    from paved_schemas.events import ModelSignature

    model_file = tiny_lm(tmp_path)
    empty = ModelSignature(inputs=[], outputs=[])
    server = start(tmp_path, model_file, empty, framework="openai-compatible", name="tiny",
                   genai=True)  # fmt: skip
    try:
        kit.wait_ready(server)
        client = OpenAI(base_url=f"{server.base}/v1", api_key="unused")
        assert [m.id for m in client.models.list()] == ["tiny"]
        prompt = "Say hello"
        answer = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": prompt}]
        )
        expected, finish = load_tiny_lm(model_file).generate(prompt)
        assert answer.choices[0].message.content == expected
        assert answer.choices[0].finish_reason == finish
        assert answer.usage is not None
        assert answer.usage.completion_tokens == len(expected.split())
        with pytest.raises(OpenAIBadRequest, match="messages"):
            client.chat.completions.create(model="tiny", messages=[])
        refused = httpx.post(f"{server.base}/v2/models/tiny/infer", json={"inputs": []})
        assert refused.status_code == 400
        assert "GenAI model" in refused.json()["error"]
    finally:
        kit.stop_server(server)
