"""The hash an e-signature binds to: one exact model version, content and metadata."""

from __future__ import annotations

import hashlib
from typing import Any

from paved_schemas.events import ModelVersionRegistered

from paved_approver.domain.canonical import canonical_json

VERSION_HASH_FIELDS = ("model_name", "version", "artifact_digest", "model_card", "signature")
"""What a signature covers: the artifact (by digest) and what approvers were shown."""


def version_document(registered: ModelVersionRegistered) -> dict[str, Any]:
    """The JSON document whose canonical form is hashed."""
    dumped = registered.model_dump(mode="json", include=set(VERSION_HASH_FIELDS))
    return {name: dumped[name] for name in VERSION_HASH_FIELDS}


def version_hash(registered: ModelVersionRegistered) -> str:
    """``sha256:<hex>`` over the RFC 8785 canonical JSON of the version's document."""
    digest = hashlib.sha256(canonical_json(version_document(registered))).hexdigest()
    return f"sha256:{digest}"
