"""Constrained scalar types shared by the envelope and the events.

Every constraint here is part of the wire contract: loosening one later is a compatible
change, tightening one (or changing a pattern) is a breaking change that needs a `.v2`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints


def _as_utc(value: datetime) -> datetime:
    # Aware values in another zone are the same instant; store them as UTC so that
    # the wire form (and every hash over it) has one spelling.
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
"""An aware datetime, normalised to UTC. Naive datetimes are rejected."""

SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
SHA256_DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
HEX_SHA256_PATTERN = r"^[0-9a-f]{64}$"
BASE64_PATTERN = r"^[A-Za-z0-9+/]*={0,2}$"

Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, min_length=1, max_length=128)]
Sha256Digest = Annotated[str, StringConstraints(pattern=SHA256_DIGEST_PATTERN)]
HexSha256 = Annotated[str, StringConstraints(pattern=HEX_SHA256_PATTERN)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128)]
PrincipalId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
PrintedName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
Uri = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048, pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$"),
]
Base64 = Annotated[str, StringConstraints(pattern=BASE64_PATTERN)]
PositiveVersion = Annotated[int, Field(ge=1)]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TagValue = Annotated[str, StringConstraints(max_length=1024)]
