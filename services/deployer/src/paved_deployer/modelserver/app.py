"""The model server's request handling: OIP v2 (JSON and Triton's binary extension),
the OpenAI-compatible chat endpoint for GenAI models, and Prometheus metrics.

Errors are RFC 9457 problem documents that also carry OIP's `error` member (a string)
or, on `/v1/...`, OpenAI's `error` object, so KServe clients, OpenAI clients and
generic HTTP clients all understand them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paved_schemas.events import ModelSignature
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from paved_deployer.domain.tensors import (
    RequestTensor,
    TensorError,
    check_binary,
    check_inputs,
    encode_binary,
    encode_output,
)
from paved_deployer.modelserver.http import Request, Response
from paved_deployer.modelserver.loaders import (
    ModelLoadError,
    PredictError,
    Predictor,
    TinyLM,
    load,
)

PROBLEM_JSON = "application/problem+json"
BINARY_HEADER = "inference-header-content-length"

__all__ = ["ModelLoadError", "ModelServer", "ServedModel", "load_model"]


@dataclass(frozen=True)
class ServedModel:
    """The one model version a server process serves."""

    name: str
    version: str
    signature: ModelSignature
    model: Predictor
    genai: bool = False


def load_model(
    model_file: Path, *, expected_digest: str, signature: ModelSignature, framework: str = "sklearn"
) -> Predictor:
    """Load `model_file` after re-checking its digest (see `loaders.load`)."""
    return load(framework, model_file, expected_digest=expected_digest, signature=signature)


class BadRequestError(Exception):
    """Input a client can fix; answered 4xx with the message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _problem(status: int, title: str, detail: str, *, openai: bool = False) -> Response:
    error: Any = detail
    if openai:
        error = {"message": detail, "type": "invalid_request_error", "param": None, "code": None}
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "error": error}  # fmt: skip
    return Response(status, _dumps(body), PROBLEM_JSON)


class _Metrics:
    def __init__(self, registry: CollectorRegistry, served: ServedModel) -> None:
        labels = {"model": served.name, "version": served.version}
        self.requests = Counter(
            "paved_model_requests",
            "Requests answered by the model server, by route kind and status code.",
            ["model", "version", "route", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "paved_model_request_duration_seconds",
            "Time to answer an inference request (parse, check, predict, encode).",
            ["model", "version", "route"],
            buckets=(
                0.0001,
                0.00025,
                0.0005,
                0.001,
                0.0025,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1.0,
                2.5,
            ),
            registry=registry,
        )
        self.rows = Counter(
            "paved_model_inference_rows",
            "Rows (first dimension of the first input) predicted.",
            ["model", "version"],
            registry=registry,
        )
        self.rows_child = self.rows.labels(**labels)
        self.labels = labels
        self._codes: dict[tuple[str, int], Any] = {}
        self._latency: dict[str, Any] = {}

    def observe(self, route: str, code: int, seconds: float) -> None:
        child = self._codes.get((route, code))
        if child is None:
            child = self._codes[(route, code)] = self.requests.labels(
                route=route, code=str(code), **self.labels
            )
        child.inc()
        hist = self._latency.get(route)
        if hist is None:
            hist = self._latency[route] = self.latency.labels(route=route, **self.labels)
        hist.observe(seconds)


class ModelServer:
    """Routes requests for one served model; `handle` is the HTTP handler (synchronous)."""

    def __init__(self, served: ServedModel, registry: CollectorRegistry | None = None) -> None:
        self.served = served
        self.sig = served.signature
        self.registry = registry or CollectorRegistry()
        self.metrics = _Metrics(self.registry, served)
        self.declared = {spec.name: i for i, spec in enumerate(self.sig.outputs)}
        self.inputs = {spec.name: spec for spec in self.sig.inputs}
        name = served.name
        self.model_paths = {f"/v2/models/{name}", f"/v2/models/{name}/versions/{served.version}"}
        self._static: dict[tuple[str, str], Callable[[], Response]] = {
            ("GET", "/v2/health/live"): lambda: Response(200, b'{"live":true}'),
            ("GET", "/v2/health/ready"): lambda: Response(200, b'{"ready":true}'),
            ("GET", "/v2"): self._server_metadata,
            ("GET", "/metrics"): self._metrics,
            ("GET", "/v1/models"): self._openai_models,
        }

    # -- routing -----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request."""
        static = self._static.get((request.method, request.path))
        if static is not None:
            return static()
        path = request.path
        if path.startswith("/v2/models/"):
            return self._model_route(request)
        if path == "/v1/chat/completions":
            return self._timed("chat", request, self._chat)
        return _problem(404, "Not found", f"no route {request.method} {path}")

    def _model_route(self, request: Request) -> Response:  # noqa: PLR0911 - a route table
        path = request.path
        base, _, action = path.rpartition("/")
        if action in ("infer", "ready") and base in self.model_paths:
            if action == "ready" and request.method == "GET":
                return Response(200, _dumps({"name": self.served.name, "ready": True}))
            if action == "infer" and request.method == "POST":
                return self._timed("infer", request, self._infer)
            return _problem(405, "Method not allowed", f"{request.method} {path} is not allowed")
        if path in self.model_paths and request.method == "GET":
            return Response(200, _dumps(self._model_metadata()))
        rest = path[len("/v2/models/") :].split("/")
        name = rest[0]
        if name != self.served.name:
            return _problem(
                404,
                "HTTP error",
                f"model {name!r} is not served here (this is {self.served.name!r})",
            )
        if len(rest) >= 3 and rest[1] == "versions" and rest[2] != self.served.version:
            return _problem(
                404,
                "HTTP error",
                f"model {name!r} has no version {rest[2]!r} here (serving {self.served.version!r})",
            )
        return _problem(404, "Not found", f"no route {request.method} {path}")

    def _timed(self, route: str, request: Request, call: Callable[[Request], Response]) -> Response:
        started = time.perf_counter()
        openai = route == "chat"
        try:
            response = call(request)
        except BadRequestError as exc:
            response = _problem(exc.status, "Bad inference request", str(exc), openai=openai)
        self.metrics.observe(route, response.status, time.perf_counter() - started)
        return response

    # -- metadata and metrics --------------------------------------------------------------

    def _server_metadata(self) -> Response:
        extensions = ["binary_tensor_data"]
        if self.served.genai:
            extensions.append("openai_chat_completions")
        body = {"name": "paved-modelserver", "version": "2", "extensions": extensions}
        return Response(200, _dumps(body))

    def _model_metadata(self) -> dict[str, Any]:
        def tensors(specs: Any) -> list[dict[str, Any]]:
            return [{"name": t.name, "datatype": t.datatype.value, "shape": t.shape} for t in specs]

        return {
            "name": self.served.name,
            "versions": [self.served.version],
            "platform": self.served.model.platform,
            "inputs": tensors(self.sig.inputs),
            "outputs": tensors(self.sig.outputs),
        }

    def _metrics(self) -> Response:
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    # -- OIP v2 inference ----------------------------------------------------------------

    def _infer(self, request: Request) -> Response:
        if self.served.genai:
            raise BadRequestError(
                f"model {self.served.name!r} is a GenAI model; use POST /v1/chat/completions"
            )
        raw = request.body
        header_length = request.headers.get(BINARY_HEADER)
        blob = b""
        if header_length is not None:
            try:
                cut = int(header_length)
            except ValueError:
                raise BadRequestError(
                    f"{BINARY_HEADER} {header_length!r} is not a number"
                ) from None
            if not 0 <= cut <= len(raw):
                raise BadRequestError(
                    f"{BINARY_HEADER} {cut} is outside the body of {len(raw)} bytes"
                )
            raw, blob = raw[:cut], raw[cut:]
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequestError(f"request body is not valid JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise BadRequestError("invalid inference request: body must be a JSON object")
        arrays = self._inputs(document, blob, fast=b"true" not in raw and b"false" not in raw)
        wanted, binary = self._wanted(document)
        try:
            results = self.served.model.predict(arrays, wanted)
        except PredictError as exc:
            raise BadRequestError(str(exc)) from exc
        first = next(iter(arrays.values()))
        self.metrics.rows_child.inc(first.shape[0] if first.ndim else 1)
        outputs: list[dict[str, Any]] = []
        blobs: list[bytes] = []
        for name in wanted:
            spec = self.sig.outputs[self.declared[name]]
            if name in binary:
                header, data = encode_binary(spec, results[name])
                outputs.append(header)
                blobs.append(data)
            else:
                outputs.append(encode_output(spec, results[name]))
        body: dict[str, Any] = {
            "model_name": self.served.name,
            "model_version": self.served.version,
            "outputs": outputs,
        }
        if isinstance(document.get("id"), str):
            body["id"] = document["id"]
        encoded = _dumps(body)
        if not blobs:
            return Response(200, encoded)
        return Response(
            200,
            encoded + b"".join(blobs),
            "application/octet-stream",
            [("Inference-Header-Content-Length", str(len(encoded)))],
        )

    def _inputs(  # noqa: PLR0912 - each branch is one check with its own message
        self, document: dict[str, Any], blob: bytes, *, fast: bool
    ) -> dict[str, Any]:
        inputs = document.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise BadRequestError("invalid inference request: inputs: must be a non-empty list")
        json_tensors: list[RequestTensor] = []
        binary_arrays: dict[str, Any] = {}
        offset = 0
        for index, item in enumerate(inputs):
            if not isinstance(item, dict):
                raise BadRequestError(f"invalid inference request: inputs.{index}: not an object")
            name, shape, datatype = item.get("name"), item.get("shape"), item.get("datatype")
            if not isinstance(name, str) or not name:
                raise BadRequestError(f"invalid inference request: inputs.{index}.name: missing")
            if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) for d in shape
            ):
                raise BadRequestError(
                    f"invalid inference request: inputs.{index}.shape: must be a list of integers"
                )
            if not isinstance(datatype, str):
                raise BadRequestError(
                    f"invalid inference request: inputs.{index}.datatype: missing"
                )
            params = item.get("parameters") or {}
            size = params.get("binary_data_size") if isinstance(params, dict) else None
            if size is not None:
                if name not in self.inputs:
                    raise BadRequestError(
                        f"input {name!r} is not an input of model {self.served.name!r}; "
                        f"expected {sorted(self.inputs)}"
                    )
                if not isinstance(size, int) or size < 0 or offset + size > len(blob):
                    raise BadRequestError(
                        f"input {name!r}: binary_data_size {size!r} exceeds the binary data "
                        f"({len(blob) - offset} bytes left)"
                    )
                try:
                    binary_arrays[name] = check_binary(
                        self.inputs[name], name, datatype, shape, blob[offset : offset + size]
                    )
                except TensorError as exc:
                    raise BadRequestError(str(exc)) from exc
                offset += size
                continue
            if "data" not in item:
                raise BadRequestError(f"invalid inference request: inputs.{index}.data: missing")
            json_tensors.append(RequestTensor(name, shape, datatype, item["data"]))
        if binary_arrays:
            given = [t.name for t in json_tensors] + list(binary_arrays)
            duplicated = {n for n in given if given.count(n) > 1}
            if duplicated:
                raise BadRequestError(f"input {sorted(duplicated)[0]!r} is given more than once")
            missing = [n for n in self.inputs if n not in given]
            if missing:
                raise BadRequestError(
                    f"input {missing[0]!r} is missing (the model expects {list(self.inputs)})"
                )
            partial = ModelSignature(
                inputs=[self.inputs[t.name] for t in json_tensors if t.name in self.inputs],
                outputs=[],
            )
            try:
                arrays = check_inputs(
                    partial, json_tensors, model=f"model {self.served.name!r}", fast=fast
                )
            except TensorError as exc:
                raise BadRequestError(str(exc)) from exc
            return {n: (arrays[n] if n in arrays else binary_arrays[n]) for n in self.inputs}
        try:
            return check_inputs(
                self.sig, json_tensors, model=f"model {self.served.name!r}", fast=fast
            )
        except TensorError as exc:
            raise BadRequestError(str(exc)) from exc

    def _wanted(self, document: dict[str, Any]) -> tuple[list[str], set[str]]:
        params = document.get("parameters") if isinstance(document.get("parameters"), dict) else {}
        binary_all = bool(params and params.get("binary_data_output"))
        requested = document.get("outputs")
        if not requested:
            names = list(self.declared)
            return names, set(names) if binary_all else set()
        if not isinstance(requested, list):
            raise BadRequestError("invalid inference request: outputs: must be a list")
        wanted: list[str] = []
        binary: set[str] = set()
        for item in requested:
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or name not in self.declared:
                raise BadRequestError(
                    f"output {name!r} is not an output of model {self.served.name!r}; "
                    f"available: {list(self.declared)}"
                )
            wanted.append(name)
            out_params = item.get("parameters") or {}
            if out_params.get("binary_data", binary_all):
                binary.add(name)
        return wanted, binary

    # -- OpenAI-compatible chat -----------------------------------------------------------

    def _openai_models(self) -> Response:
        if not self.served.genai:
            return _problem(404, "Not found", "this model is not a GenAI model", openai=True)
        data = [{"id": self.served.name, "object": "model", "created": 0, "owned_by": "paved"}]
        return Response(200, _dumps({"object": "list", "data": data}))

    def _chat(self, request: Request) -> Response:
        model = self.served.model
        if not self.served.genai or not isinstance(model, TinyLM):
            raise BadRequestError(
                f"model {self.served.name!r} is not a GenAI model; use OIP v2 inference", 404
            )
        if request.method != "POST":
            raise BadRequestError("use POST /v1/chat/completions", 405)
        try:
            body = json.loads(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequestError(f"request body is not valid JSON: {exc}") from exc
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            raise BadRequestError("'messages' must be a non-empty list of {role, content}")
        prompt = ""
        prompt_words = 0
        for index, message in enumerate(messages):
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, str):
                raise BadRequestError(f"messages[{index}].content must be a string")
            prompt_words += len(TinyLM.words(content))
            if message.get("role") == "user":
                prompt = content
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise BadRequestError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        text, finish = model.generate(prompt, max_tokens)
        completion_words = len(text.split())
        created = int(time.time())
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        usage = {"prompt_tokens": prompt_words, "completion_tokens": completion_words,
                 "total_tokens": prompt_words + completion_words}  # fmt: skip
        if body.get("stream"):
            chunks = [
                {"id": ident, "object": "chat.completion.chunk", "created": created,
                 "model": self.served.name,
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": text},
                              "finish_reason": None}]},
                {"id": ident, "object": "chat.completion.chunk", "created": created,
                 "model": self.served.name,
                 "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
            ]  # fmt: skip
            stream = b"".join(b"data: " + _dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
            return Response(200, stream, "text/event-stream")
        answer = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": self.served.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
        }
        return Response(200, _dumps(answer))
