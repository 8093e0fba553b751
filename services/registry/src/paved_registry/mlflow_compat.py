"""Translation between MLflow's model-registry vocabulary and Paved's catalog.

An MLflow client registers a version with only a ``source`` URI, a run id, tags and a
description. Paved pins more: the artifact's SHA-256, its framework, its signature and
a model card. This module fills them in, in order of precedence:

1. ``paved.*`` tags on the version (``paved.artifact_digest``, ``paved.framework``,
   ``paved.signature`` / ``paved.model_card`` as JSON, or single card fields such as
   ``paved.risk_tier``), then the same tags on the registered model (set once per team);
2. what the registry can learn itself: the digest by reading the artifact through the
   artifact store of its scheme, the framework from the file name;
3. conservative defaults: risk tier ``high`` and classification ``confidential`` (a
   person must approve it), licence ``NOASSERTION``, an empty signature.

It also parses the subset of MLflow's search filter language the client sends.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final
from urllib.parse import unquote, urlparse

from paved_schemas.events import (
    Framework,
    Lineage,
    ModelCard,
    ModelSignature,
    ModelState,
    RegisterModelVersion,
)
from paved_shared.artifacts import ArtifactError, ArtifactStoreConfig, store_for
from pydantic import ValidationError

from paved_registry.catalog import Actor
from paved_registry.domain.errors import InvalidParameterError

PAVED_PREFIX: Final = "paved."
"""Tags under this prefix are Paved's: read at registration, computed in responses."""

CARD_TAGS: Final = (
    "description",
    "intended_use",
    "limitations",
    "risk_tier",
    "data_classification",
    "license",
)
DEFAULT_CARD: Final[Mapping[str, str]] = {
    "intended_use": "Not declared: registered through the MLflow-compatible API.",
    "limitations": "Not declared: registered through the MLflow-compatible API.",
    "risk_tier": "high",
    "data_classification": "confidential",
    "license": "NOASSERTION",
}
_SUFFIX_FRAMEWORK: Final[Mapping[str, Framework]] = {
    ".onnx": Framework.ONNX,
    ".safetensors": Framework.SAFETENSORS,
    ".pkl": Framework.SKLEARN,
    ".pickle": Framework.SKLEARN,
    ".joblib": Framework.SKLEARN,
    ".skops": Framework.SKLEARN,
    ".pt": Framework.PYTORCH,
    ".pth": Framework.PYTORCH,
    ".ubj": Framework.XGBOOST,
    ".xgb": Framework.XGBOOST,
}
TRACKING_SCHEMES: Final = frozenset({"runs", "models", "mlflow-artifacts", "dbfs"})

STAGE_OF: Final[Mapping[ModelState, str]] = {
    ModelState.APPROVED: "Staging",
    ModelState.DEPLOYED: "Production",
    ModelState.DEPRECATED: "Archived",
    ModelState.RETIRED: "Archived",
}
"""MLflow's legacy stage shown for a Paved state (read only; stages follow the lifecycle)."""


def stage_of(state: ModelState) -> str:
    """The MLflow stage a version in ``state`` shows."""
    return STAGE_OF.get(state, "None")


def split_tags(tags: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain tags, ``paved.*`` tags without their prefix)."""
    plain = {k: v for k, v in tags.items() if not k.startswith(PAVED_PREFIX)}
    paved = {k[len(PAVED_PREFIX) :]: v for k, v in tags.items() if k.startswith(PAVED_PREFIX)}
    return plain, paved


def normalise_source(source: str) -> str:
    """An artifact URI from an MLflow ``source``; tracking-server URIs are refused."""
    if not source.strip():
        raise InvalidParameterError("source", source, "the artifact URI is empty")
    scheme = urlparse(source).scheme
    if scheme in TRACKING_SCHEMES:
        raise InvalidParameterError(
            "source",
            source,
            f"{scheme}:/ URIs are resolved by an MLflow tracking server, which Paved does not "
            "run; register the artifact's own URI (file://, s3:// or gs://)",
        )
    if not scheme and source.startswith("/"):
        return Path(source).as_uri()
    if not scheme:
        raise InvalidParameterError(
            "source", source, "give an absolute path or a file://, s3:// or gs:// URI"
        )
    return source


def _framework(uri: str, paved: Mapping[str, str]) -> Framework:
    if "framework" in paved:
        try:
            return Framework(paved["framework"])
        except ValueError as exc:
            raise InvalidParameterError(
                "tags.paved.framework",
                paved["framework"],
                f"one of {', '.join(f.value for f in Framework)}",
            ) from exc
    suffix = PurePosixPath(unquote(urlparse(uri).path)).suffix.lower()
    return _SUFFIX_FRAMEWORK.get(suffix, Framework.OTHER)


def _json_tag(paved: Mapping[str, str], key: str) -> Any:
    try:
        return json.loads(paved[key])
    except ValueError as exc:
        raise InvalidParameterError(f"tags.paved.{key}", paved[key], "must be JSON") from exc


def _validated(model: Any, data: Any, parameter: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidParameterError(parameter, data, problems) from exc


@dataclass(frozen=True)
class MlflowVersionRequest:
    """What an MLflow client sent to create a model version."""

    name: str
    source: str
    run_id: str | None = None
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


async def artifact_digest(
    uri: str, declared: str | None, *, local_root: Path | None, config: ArtifactStoreConfig
) -> str:
    """The artifact's SHA-256, read through its store; a declared one must match it.

    When the registry cannot read the artifact, a declared digest is taken as given
    (the validator re-checks it against the bytes before anything else happens).
    """
    parameter = "tags.paved.artifact_digest"
    if declared is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", declared):
        raise InvalidParameterError(parameter, declared, "expected 'sha256:' and 64 hex digits")
    if urlparse(uri).scheme == "file":
        path = Path(unquote(urlparse(uri).path))
        if await asyncio.to_thread(path.is_dir):
            raise InvalidParameterError(
                "source",
                uri,
                "is a directory; Paved pins one artifact file by its SHA-256: register the "
                "model file itself (e.g. .../model.pkl or .../model.onnx)",
            )
    try:
        computed = await store_for(uri, local_root=local_root, config=config).sha256(uri)
    except (ArtifactError, OSError) as exc:
        if declared is not None:
            return declared
        raise InvalidParameterError(
            "source",
            uri,
            f"the registry cannot read the artifact to pin its digest ({exc}); make it "
            "readable by the registry or set tag paved.artifact_digest",
        ) from exc
    if declared is not None and declared != computed:
        raise InvalidParameterError(
            parameter, declared, f"the artifact at {uri} has digest {computed}"
        )
    return computed


async def registration_command(
    request: MlflowVersionRequest,
    *,
    model_description: str,
    model_tags: Mapping[str, str],
    actor: Actor,
    local_root: Path | None,
    config: ArtifactStoreConfig,
) -> RegisterModelVersion:
    """The ``RegisterModelVersion`` an MLflow ``CreateModelVersion`` stands for."""
    plain, paved = split_tags(request.tags)
    _, model_paved = split_tags(model_tags)
    settings = {**model_paved, **paved}
    uri = normalise_source(request.source)
    digest = await artifact_digest(
        uri, paved.get("artifact_digest"), local_root=local_root, config=config
    )
    signature: ModelSignature = (
        _validated(ModelSignature, _json_tag(settings, "signature"), "tags.paved.signature")
        if "signature" in settings
        else ModelSignature(inputs=[], outputs=[])
    )
    card_data: dict[str, Any] = dict(DEFAULT_CARD)
    card_data["description"] = (
        request.description or model_description or f"{request.name}: registered through MLflow"
    )
    if "model_card" in settings:
        card_json = _json_tag(settings, "model_card")
        if not isinstance(card_json, dict):
            raise InvalidParameterError("tags.paved.model_card", card_json, "must be an object")
        card_data.update(card_json)
    card_data.update({k: settings[k] for k in CARD_TAGS if k in settings})
    card: ModelCard = _validated(ModelCard, card_data, "tags.paved.model_card")
    lineage_data: dict[str, Any] = {}
    if request.run_id:
        lineage_data["training_run"] = f"mlflow-run:{request.run_id}"
    for key in ("code_commit", "parent_model"):
        if key in paved:
            lineage_data[key] = paved[key]
    if "dataset_digests" in paved:
        lineage_data["dataset_digests"] = [
            d.strip() for d in paved["dataset_digests"].split(",") if d.strip()
        ]
    lineage = _validated(Lineage, lineage_data, "tags.paved.lineage") if lineage_data else None
    if len(plain) > 64:
        raise InvalidParameterError("tags", len(plain), "at most 64 tags per version")
    for key, value in plain.items():
        if len(key) > 128 or len(value) > 1024:
            raise InvalidParameterError(
                f"tags.{key[:40]}", value[:40], "keys up to 128 and values up to 1024 characters"
            )
    return RegisterModelVersion(
        request_id=f"mlflow-{uuid.uuid4()}",
        model_name=request.name,
        artifact_uri=uri,
        artifact_digest=digest,
        framework=_framework(uri, settings),
        signature=signature,
        model_card=card,
        lineage=lineage,
        tags=plain,
        registered_by=actor.id,
        registered_by_name=actor.name,
    )


# --------------------------------------------------------------------------- search filters

_CLAUSE = re.compile(
    r"""\s*(?P<key>tags?\.`[^`]+`|tags?\."[^"]+"|tags?\.[\w.-]+|`[^`]+`|[A-Za-z_][\w.]*)\s*
        (?P<op>!=|=|(?i:ilike)|(?i:like)|(?i:in))\s*
        (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\((?:[^()'"]|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")*\)|-?\d+)
        \s*(?P<rest>(?i:and)\s+|$)""",
    re.VERBOSE,
)
_QUOTED = re.compile(r"""'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|(-?\d+)""")


@dataclass(frozen=True)
class Clause:
    """One ``key op value`` condition of an MLflow filter string."""

    key: str
    op: str
    values: tuple[str, ...]


def _unquote(token: str) -> str:
    if token[:1] in "'\"" and token[-1:] == token[:1]:
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def parse_filter(text: str | None) -> list[Clause]:
    """The clauses of an MLflow filter (``a = 'x' AND tags.k = 'v'``); refuses what it
    cannot read, naming the part."""
    if not text or not text.strip():
        return []
    clauses: list[Clause] = []
    pos = 0
    while pos < len(text):
        match = _CLAUSE.match(text, pos)
        if match is None:
            raise InvalidParameterError(
                "filter",
                text,
                f"cannot parse from {text[pos:][:60]!r}; Paved supports "
                "\"<key> <op> '<value>'\" clauses joined by AND",
            )
        key = match["key"]
        if key.startswith(("tags.", "tag.")):
            key = "tags." + _unquote(key.split(".", 1)[1].strip("`"))
        key = key.strip("`")
        op = match["op"].upper()
        raw = match["value"]
        if raw.startswith("("):
            values = tuple(
                next(v for v in m.groups() if v is not None) for m in _QUOTED.finditer(raw)
            )
        else:
            values = (_unquote(raw),)
        clauses.append(Clause(key, op, values))
        pos = match.end()
    return clauses


def parse_order_by(
    order_by: list[str], mapping: Mapping[str, tuple[str, str]], default: str
) -> str:
    """The Paved sort for MLflow ``order_by`` (the first key decides; ties go by name).

    ``mapping`` maps an MLflow key to (ascending sort, descending sort).
    """
    if not order_by:
        return default
    first = order_by[0].strip()
    parts = first.split()
    key = parts[0].strip("`") if parts else ""
    direction = parts[1].upper() if len(parts) > 1 else "ASC"
    if key not in mapping or direction not in {"ASC", "DESC"} or len(parts) > 2:
        raise InvalidParameterError(
            "order_by",
            first,
            f"order by one of {', '.join(sorted(mapping))}, optionally followed by ASC or DESC",
        )
    ascending, descending = mapping[key]
    return descending if direction == "DESC" else ascending
