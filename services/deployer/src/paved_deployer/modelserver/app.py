"""The model server's FastAPI app: OIP v2 health, metadata and inference for one model.

Errors are RFC 9457 problem documents that also carry OIP's `error` member, so both
KServe clients (which read `error`) and generic HTTP clients understand them.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from paved_schemas.events import ModelSignature
from paved_shared.artifacts import sha256_file
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

from paved_deployer.domain.tensors import RequestTensor, TensorError, check_inputs, encode_output

PROBLEM_JSON = "application/problem+json"
PLATFORM = "sklearn"


class ModelLoadError(RuntimeError):
    """The model file cannot be served; the message says why (the server refuses to start)."""


@dataclass(frozen=True)
class ServedModel:
    """The one model version a server process serves."""

    name: str
    version: str
    signature: ModelSignature
    model: Any


def load_model(model_file: Path, *, expected_digest: str, signature: ModelSignature) -> Any:
    """Unpickle a scikit-learn model after re-checking its digest against the approved one."""
    digest = sha256_file(model_file)
    if digest != expected_digest:
        raise ModelLoadError(
            f"model file {model_file} has digest {digest}, not the approved {expected_digest}"
        )
    with model_file.open("rb") as f:
        # Only an approved digest reaches this point: the validator scanned and smoke-tested
        # this exact artifact in its sandbox before approval was possible.
        model = pickle.load(f)  # noqa: S301
    if not callable(getattr(model, "predict", None)):
        raise ModelLoadError(f"{model_file}: {type(model).__name__} has no predict()")
    if len(signature.outputs) > 1 and not callable(getattr(model, "predict_proba", None)):
        raise ModelLoadError(
            f"{model_file}: the signature declares output {signature.outputs[1].name!r} "
            f"(predict_proba) but {type(model).__name__} has no predict_proba()"
        )
    if not signature.inputs or not signature.outputs:
        raise ModelLoadError("the signature declares no inputs or no outputs")
    if len(signature.outputs) > 2:
        raise ModelLoadError(
            f"the signature declares {len(signature.outputs)} outputs; a scikit-learn model "
            "serves at most two (predict, predict_proba)"
        )
    return model


# --------------------------------------------------------------------------- request models


class _InferInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1)
    shape: list[int]
    datatype: str
    data: Any
    parameters: dict[str, Any] | None = None


class _RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    parameters: dict[str, Any] | None = None


class _InferRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[_InferInput] = Field(min_length=1)
    outputs: list[_RequestedOutput] | None = None


class BadRequestError(Exception):
    """Input a client can fix; answered 400 with the message."""


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail,
         "error": detail},
        status_code=status,
        media_type=PROBLEM_JSON,
    )  # fmt: skip


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "invalid inference request: " + "; ".join(parts)


def _features(arrays: dict[str, npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """One 2-D feature matrix: the single input, or the inputs side by side per row."""
    values = list(arrays.values())
    if len(values) == 1:
        return values[0]
    rows = {a.shape[0] if a.ndim else 1 for a in values}
    if len(rows) != 1:
        raise BadRequestError(f"inputs have different batch sizes {sorted(rows)}")
    return np.hstack([a.reshape(a.shape[0], -1) for a in values])


class _Model:
    """The served model's OIP v2 operations (routes call these)."""

    def __init__(self, served: ServedModel) -> None:
        self.served = served
        self.sig = served.signature

    def check(self, name: str, version: str | None = None) -> None:
        """404 unless the URL names this model (and version)."""
        served = self.served
        if name != served.name:
            raise HTTPException(404, f"model {name!r} is not served here (this is {served.name!r})")
        if version is not None and version != served.version:
            raise HTTPException(
                404, f"model {name!r} has no version {version!r} here (serving {served.version!r})"
            )

    def metadata(self) -> dict[str, Any]:
        """OIP v2 model metadata."""

        def tensors(specs: Any) -> list[dict[str, Any]]:
            return [{"name": t.name, "datatype": t.datatype.value, "shape": t.shape} for t in specs]

        return {
            "name": self.served.name,
            "versions": [self.served.version],
            "platform": PLATFORM,
            "inputs": tensors(self.sig.inputs),
            "outputs": tensors(self.sig.outputs),
        }

    async def infer(self, request: Request) -> dict[str, Any]:
        """Check the request against the signature, predict, encode the outputs."""
        served, sig = self.served, self.sig
        raw = await request.body()
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequestError(f"request body is not valid JSON: {exc}") from exc
        try:
            body = _InferRequest.model_validate(document)
        except ValidationError as exc:
            raise BadRequestError(_describe(exc)) from exc
        tensors = [RequestTensor(i.name, i.shape, i.datatype, i.data) for i in body.inputs]
        try:
            arrays = check_inputs(sig, tensors, model=f"model {served.name!r}")
        except TensorError as exc:
            raise BadRequestError(str(exc)) from exc
        declared = {spec.name: index for index, spec in enumerate(sig.outputs)}
        wanted = [o.name for o in body.outputs] if body.outputs else list(declared)
        for name in wanted:
            if name not in declared:
                raise BadRequestError(
                    f"output {name!r} is not an output of model {served.name!r}; "
                    f"available: {list(declared)}"
                )
        features = _features(arrays)
        try:
            results = await run_in_threadpool(_predict, served.model, features, wanted, declared)
        except (ValueError, TypeError) as exc:
            raise BadRequestError(f"the model rejected the input: {exc}") from exc
        response: dict[str, Any] = {
            "model_name": served.name,
            "model_version": served.version,
            "outputs": [
                encode_output(sig.outputs[declared[name]], results[name]) for name in wanted
            ],
        }
        if body.id is not None:
            response["id"] = body.id
        return response


def create_app(served: ServedModel) -> FastAPI:
    """The OIP v2 app serving `served`."""
    app = FastAPI(title=f"paved model server: {served.name}", version=served.version)
    model = _Model(served)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return _problem(exc.status_code, "HTTP error", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _problem(400, "Bad request", str(exc))

    @app.exception_handler(BadRequestError)
    async def _bad_request(_: Request, exc: BadRequestError) -> JSONResponse:
        return _problem(400, "Bad inference request", str(exc))

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        # The model is loaded before the server accepts connections.
        return {"ready": True}

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "paved-modelserver", "version": "1", "extensions": []}

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str) -> dict[str, Any]:
        model.check(name)
        return model.metadata()

    @app.get("/v2/models/{name}/versions/{version}")
    async def version_metadata(name: str, version: str) -> dict[str, Any]:
        model.check(name, version)
        return model.metadata()

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> dict[str, Any]:
        model.check(name)
        return {"name": served.name, "ready": True}

    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def version_ready(name: str, version: str) -> dict[str, Any]:
        model.check(name, version)
        return {"name": served.name, "ready": True}

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> dict[str, Any]:
        model.check(name)
        return await model.infer(request)

    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer_version(name: str, version: str, request: Request) -> dict[str, Any]:
        model.check(name, version)
        return await model.infer(request)

    return app


def _predict(
    model: Any, features: npt.NDArray[Any], wanted: list[str], declared: dict[str, int]
) -> dict[str, npt.NDArray[Any]]:
    """`predict` for the first declared output, `predict_proba` for the second."""
    out: dict[str, npt.NDArray[Any]] = {}
    for name in wanted:
        method = model.predict if declared[name] == 0 else model.predict_proba
        out[name] = np.asarray(method(features))
    return out
