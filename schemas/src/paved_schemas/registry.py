"""Every event and command type of this release, by CloudEvents `type` string."""

from __future__ import annotations

from typing import Final

from paved_schemas.base import Contract
from paved_schemas.events import (
    ApprovalDecisionRecorded,
    ApprovalExpired,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalRequested,
    AuditCheckpointSigned,
    AuditRecordSealed,
    DeadLetterRecorded,
    DeploymentStatusChanged,
    ModelAliasChanged,
    ModelVersionRegistered,
    ModelVersionRetired,
    ModelVersionStateChanged,
    ModelVersionUpdated,
    ModelVersionValidated,
    RegisteredModelCreated,
    RegisteredModelUpdated,
    RegisterModelVersion,
    RequestDeployment,
    RequestUndeployment,
    RetireModelVersion,
)

CONTRACTS: Final[tuple[type[Contract], ...]] = (
    RegisterModelVersion,
    ModelVersionRegistered,
    ModelVersionStateChanged,
    ModelVersionValidated,
    ApprovalRequested,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalExpired,
    ApprovalDecisionRecorded,
    RequestDeployment,
    RequestUndeployment,
    DeploymentStatusChanged,
    RetireModelVersion,
    ModelVersionRetired,
    DeadLetterRecorded,
    AuditRecordSealed,
    AuditCheckpointSigned,
    RegisteredModelCreated,
    RegisteredModelUpdated,
    ModelVersionUpdated,
    ModelAliasChanged,
)
"""Every event and command class. A type, once released, is never removed (replay)."""

EVENT_TYPES: Final[dict[str, type[Contract]]] = {c.TYPE: c for c in CONTRACTS}
"""CloudEvents `type` -> payload class; `parse_envelope` dispatches on it."""
