"""Version 1 of every event and command of the platform.

Events are named in the past tense (something happened, exactly one service writes the
topic); commands in the imperative (a request, exactly one service consumes it). Each
class declares its CloudEvents `TYPE`, its `TOPIC` and its Kafka `key()`.

Changes inside `.v1` are additive only (new optional fields, new enum values); see
docs/schemas.md. Anything else is a new class with a `.v2` type.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import Field, FiniteFloat, StringConstraints, model_validator

from paved_schemas import limits, topics
from paved_schemas._types import (
    Base64,
    HexSha256,
    Identifier,
    LongText,
    PositiveVersion,
    PrincipalId,
    PrintedName,
    Sha256Digest,
    ShortText,
    Slug,
    TagKey,
    TagValue,
    Uri,
    UtcDatetime,
)
from paved_schemas.base import Command, Event, Frozen

# Example values reused by many fields, so the generated documentation tells one story.
EXAMPLE_MODEL = "churn-classifier"
EXAMPLE_DIGEST = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
EXAMPLE_URI = "s3://paved-artifacts/churn-classifier/3/model.onnx"
EXAMPLE_TIME = "2025-03-14T09:26:53Z"
EXAMPLE_DEPLOYMENT = "churn-classifier-prod"

ModelName = Annotated[
    Slug,
    Field(
        description="Registered model name: lowercase letters, digits, '.', '_' or '-'.",
        examples=[EXAMPLE_MODEL],
    ),
]
Version = Annotated[
    PositiveVersion,
    Field(description="Model version number, assigned by the registry.", examples=[3]),
]
ArtifactDigest = Annotated[
    Sha256Digest,
    Field(
        description="SHA-256 of the artifact, 'sha256:' and 64 lowercase hex digits; "
        "every later step refers to and re-checks this digest.",
        examples=[EXAMPLE_DIGEST],
    ),
]
DeploymentId = Annotated[
    Slug,
    Field(
        description="Deployment id, the aggregate of deployment messages.",
        examples=[EXAMPLE_DEPLOYMENT],
    ),
]
Tags = Annotated[
    dict[TagKey, TagValue],
    Field(
        max_length=64,
        description="Free-form labels (at most 64).",
        examples=[{"team": "retention", "stage": "candidate"}],
    ),
]


def _model_version_subject(model_name: str, version: int | None) -> str:
    if version is None:
        return f"models/{model_name}"
    return f"models/{model_name}/versions/{version}"


# --------------------------------------------------------------------------- enums


class Framework(StrEnum):
    """The serialisation format / runtime family of a model artifact."""

    SKLEARN = "sklearn"
    ONNX = "onnx"
    SAFETENSORS = "safetensors"
    PYTORCH = "pytorch"
    XGBOOST = "xgboost"
    OPENAI_COMPATIBLE = "openai-compatible"
    OTHER = "other"


class Datatype(StrEnum):
    """Tensor element types of the KServe Open Inference Protocol v2."""

    BOOL = "BOOL"
    UINT8 = "UINT8"
    UINT16 = "UINT16"
    UINT32 = "UINT32"
    UINT64 = "UINT64"
    INT8 = "INT8"
    INT16 = "INT16"
    INT32 = "INT32"
    INT64 = "INT64"
    FP16 = "FP16"
    FP32 = "FP32"
    FP64 = "FP64"
    BYTES = "BYTES"


class RiskTier(StrEnum):
    """Model risk tier; the approval policy maps it to approvers and roles."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class DataClassification(StrEnum):
    """Most sensitive class of data the model was trained on or will see."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class ModelState(StrEnum):
    """Lifecycle state of a model version, owned by the registry."""

    REGISTERED = "registered"
    VALIDATING = "validating"
    VALIDATED = "validated"
    VALIDATION_FAILED = "validation_failed"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    DEPLOYED = "deployed"
    DEPRECATED = "deprecated"
    RETIRED = "retired"


class CheckOutcome(StrEnum):
    """Outcome of one validation check; `error` means the check could not run (fail closed)."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"


class SignatureMeaning(StrEnum):
    """The meaning of an electronic signature (21 CFR 11.50(a)(3))."""

    APPROVAL = "approval"
    REVIEW = "review"
    RESPONSIBILITY = "responsibility"
    REJECTION = "rejection"


class DeploymentTarget(StrEnum):
    """Where a deployment runs; each target has its own deployer process."""

    LOCAL = "local"
    AWS = "aws"
    GCP = "gcp"


class DeploymentStatus(StrEnum):
    """Status of a deployment, published on every transition."""

    PENDING = "pending"
    PROVISIONING = "provisioning"
    READY = "ready"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    RETIRED = "retired"


# --------------------------------------------------------------------------- value objects


class TensorSpec(Frozen):
    """One named input or output tensor of a model (Open Inference Protocol v2)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Tensor name as the model server expects it.", examples=["features"]
    )
    datatype: Datatype = Field(description="Element type.", examples=[Datatype.FP32])
    shape: list[Annotated[int, Field(ge=-1)]] = Field(
        max_length=32,
        description="Dimensions; -1 marks a variable dimension such as the batch size.",
        examples=[[-1, 12]],
    )


class ModelSignature(Frozen):
    """The declared inputs and outputs; validation runs a smoke inference against them."""

    inputs: list[TensorSpec] = Field(
        max_length=256,
        description="Input tensors. May be empty only for OpenAI-compatible (GenAI) models.",
        examples=[[{"name": "features", "datatype": "FP32", "shape": [-1, 12]}]],
    )
    outputs: list[TensorSpec] = Field(
        max_length=256,
        description="Output tensors. May be empty only for OpenAI-compatible (GenAI) models.",
        examples=[[{"name": "probability", "datatype": "FP32", "shape": [-1, 1]}]],
    )


class MetricThreshold(Frozen):
    """Acceptable range of one metric; at least one bound is set."""

    min: FiniteFloat | None = Field(
        default=None, description="Lowest acceptable value, inclusive.", examples=[0.8]
    )
    max: FiniteFloat | None = Field(
        default=None, description="Highest acceptable value, inclusive.", examples=[None]
    )

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("a metric threshold needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"threshold min {self.min} is greater than max {self.max}")
        return self


class ModelCard(Frozen):
    """What the model is for and how far it can be trusted; shown to approvers."""

    description: LongText = Field(
        description="What the model does.",
        examples=["Predicts the probability that a subscriber cancels within 30 days."],
    )
    intended_use: LongText = Field(
        description="Who may use it, for what decisions.",
        examples=["Prioritising retention offers; not for pricing or credit decisions."],
    )
    limitations: LongText = Field(
        description="Known weaknesses, out-of-scope populations, failure modes.",
        examples=["Trained on EU customers 2022-2024; untested on business accounts."],
    )
    risk_tier: RiskTier = Field(
        description="Risk tier; drives how many approvers and which roles sign.",
        examples=[RiskTier.MEDIUM],
    )
    data_classification: DataClassification = Field(
        description="Most sensitive data class involved.",
        examples=[DataClassification.CONFIDENTIAL],
    )
    license: ShortText = Field(
        description="License of the model, an SPDX identifier where one exists.",
        examples=["Apache-2.0"],
    )
    metrics: dict[TagKey, FiniteFloat] | None = Field(
        default=None,
        description="Offline evaluation metrics reported by the training run.",
        examples=[{"auc": 0.91, "f1": 0.78}],
    )
    metric_thresholds: dict[TagKey, MetricThreshold] | None = Field(
        default=None,
        description="Acceptable ranges that validation checks (reported and measured metrics, "
        "e.g. 'latency_p95_ms').",
        examples=[{"auc": {"min": 0.85}, "latency_p95_ms": {"max": 50.0}}],
    )
    genai: bool = Field(
        default=False,
        description="True for generative models served through the shared GenAI gateway.",
        examples=[False],
    )


class Lineage(Frozen):
    """Where a model version came from."""

    training_run: ShortText | None = Field(
        default=None,
        description="Id or URI of the training run.",
        examples=["mlflow-run:5f3c2a9e1b7d4e0f"],
    )
    code_commit: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{7,64}$")] | None = Field(
        default=None,
        description="Git commit of the training code (7 to 64 lowercase hex digits).",
        examples=["4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39"],
    )
    dataset_digests: list[Sha256Digest] = Field(
        default_factory=list,
        max_length=256,
        description="SHA-256 digests of the training and evaluation datasets.",
        examples=[[EXAMPLE_DIGEST]],
    )
    parent_model: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        default=None,
        description="The model this one was fine-tuned or derived from: "
        "'<name>/versions/<n>' in Paved, or an external reference.",
        examples=["churn-classifier/versions/2"],
    )


class ValidationCheck(Frozen):
    """One check the validator ran, with its outcome."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Check name.",
        examples=["digest", "malware_scan", "format_allowlist", "smoke_inference", "latency"],
    )
    outcome: CheckOutcome = Field(description="Outcome.", examples=[CheckOutcome.PASSED])
    detail: Annotated[str, StringConstraints(max_length=4000)] | None = Field(
        default=None,
        description="Human-readable detail: what was measured or why it failed.",
        examples=["p95 latency 12.4 ms over 200 requests (threshold 50 ms)"],
    )
    duration_ms: Annotated[int, Field(ge=0)] = Field(
        description="Wall-clock time the check took, in milliseconds.", examples=[1250]
    )


class ESignature(Frozen):
    """An electronic signature (21 CFR 11.50): who, when, meaning, bound to one version."""

    signer_id: PrincipalId = Field(
        description="Stable, never-reused user id of the signer.", examples=["bob"]
    )
    printed_name: PrintedName = Field(
        description="Printed name of the signer.", examples=["Bob Reviewer"]
    )
    signed_at: UtcDatetime = Field(description="When it was signed, UTC.", examples=[EXAMPLE_TIME])
    meaning: SignatureMeaning = Field(
        description="What the signature means.", examples=[SignatureMeaning.APPROVAL]
    )
    reason: LongText = Field(
        description="Why the signer signed, in their words.",
        examples=["Evidence reviewed; AUC and latency within policy."],
    )
    version_hash: Sha256Digest = Field(
        description="Hash of the signed model version (artifact digest + metadata); "
        "the signature does not verify against any other version.",
        examples=["sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"],
    )


class DeploymentSpec(Frozen):
    """How a deployment should run."""

    replicas: Annotated[int, Field(ge=1)] = Field(
        default=1, description="Replicas to start with.", examples=[2]
    )
    cpu: Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?m?$")] | None = Field(
        default=None,
        description="CPU per replica as a Kubernetes quantity.",
        examples=["500m", "2"],
    )
    memory: (
        Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?)?$")] | None
    ) = Field(
        default=None,
        description="Memory per replica as a Kubernetes quantity.",
        examples=["512Mi", "2Gi"],
    )
    min_replicas: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="Autoscaling lower bound (0 allows scale to zero).",
        examples=[1],
    )
    max_replicas: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Autoscaling upper bound.", examples=[5]
    )
    env: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")],
        Annotated[str, StringConstraints(max_length=4096)],
    ] = Field(
        default_factory=dict,
        max_length=128,
        description="Environment variables for the model server (never secrets).",
        examples=[{"LOG_LEVEL": "info"}],
    )
    canary_weight: Annotated[int, Field(ge=0, le=100)] = Field(
        default=100,
        description="Percent of the endpoint's traffic this version receives; "
        "100 is a full rollout.",
        examples=[10],
    )

    @model_validator(mode="after")
    def _autoscaling_bounds(self) -> Self:
        low, high = self.min_replicas, self.max_replicas
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_replicas {low} is greater than max_replicas {high}")
        return self

    @model_validator(mode="after")
    def _within_hard_limits(self) -> Self:
        # Semantic limits (paved_schemas.limits, ADR 0012): every replica is a process
        # or a pod, every variable reaches a process that loads untrusted model bytes.
        problems = self.limit_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def limit_problems(self, **policy: Any) -> list[str]:
        """Why this spec is over the hard limits, or over ``policy`` (keyword arguments of
        ``limits.spec_problems``, e.g. a deployer's ``max_replicas``); empty: it fits."""
        return limits.spec_problems(
            replicas={
                "replicas": self.replicas,
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
            },
            cpu=self.cpu,
            memory=self.memory,
            env=self.env,
            **policy,
        )


EXAMPLE_SIGNATURE: dict[str, Any] = {
    "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 12]}],
    "outputs": [{"name": "probability", "datatype": "FP32", "shape": [-1, 1]}],
}
EXAMPLE_MODEL_CARD: dict[str, Any] = {
    "description": "Predicts the probability that a subscriber cancels within 30 days.",
    "intended_use": "Prioritising retention offers; not for pricing or credit decisions.",
    "limitations": "Trained on EU customers 2022-2024; untested on business accounts.",
    "risk_tier": "medium",
    "data_classification": "confidential",
    "license": "Apache-2.0",
    "metrics": {"auc": 0.91},
    "metric_thresholds": {"auc": {"min": 0.85}, "latency_p95_ms": {"max": 50.0}},
    "genai": False,
}
EXAMPLE_LINEAGE: dict[str, Any] = {
    "training_run": "mlflow-run:5f3c2a9e1b7d4e0f",
    "code_commit": "4f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39",
    "dataset_digests": [EXAMPLE_DIGEST],
    "parent_model": "churn-classifier/versions/2",
}
EXAMPLE_E_SIGNATURE: dict[str, Any] = {
    "signer_id": "bob",
    "printed_name": "Bob Reviewer",
    "signed_at": EXAMPLE_TIME,
    "meaning": "approval",
    "reason": "Evidence reviewed; AUC and latency within policy.",
    "version_hash": "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
}

Signature = Annotated[
    ModelSignature,
    Field(description="Declared inputs and outputs.", examples=[EXAMPLE_SIGNATURE]),
]
Card = Annotated[
    ModelCard, Field(description="Model card shown to approvers.", examples=[EXAMPLE_MODEL_CARD])
]
OptionalLineage = Annotated[
    Lineage | None, Field(description="Provenance, if known.", examples=[EXAMPLE_LINEAGE])
]


# --------------------------------------------------------------------------- registration


class RegisterModelVersion(Command):
    """Command: register a new model version (from a pipeline, the API, the CLI or the SDK)."""

    TYPE: ClassVar[str] = "dev.paved.model.version.register.v1"
    TOPIC: ClassVar[str] = topics.REGISTRATION_REQUESTS

    request_id: Identifier = Field(
        description="Idempotency key chosen by the sender; a repeated request registers once.",
        examples=["0b7e6a1c-3f2e-4d7a-9a51-2f0c6f9d8e11"],
    )
    model_name: ModelName
    version: PositiveVersion | None = Field(
        default=None,
        description="Requested version number; the registry assigns the next one if absent.",
        examples=[None, 3],
    )
    artifact_uri: Uri = Field(
        description="Where the artifact is stored (file://, s3://, gs://, https://).",
        examples=[EXAMPLE_URI],
    )
    artifact_digest: ArtifactDigest
    framework: Framework = Field(description="Artifact format.", examples=[Framework.ONNX])
    signature: Signature
    model_card: Card
    lineage: OptionalLineage = None
    tags: Tags = Field(default_factory=dict)
    registered_by: PrincipalId = Field(
        description="User id of the person registering the version.", examples=["alice"]
    )
    registered_by_name: PrintedName = Field(
        description="Printed name of that person.", examples=["Alice Scientist"]
    )

    def key(self) -> str:
        """The model name: one model's registrations are handled in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>` or `models/<name>/versions/<n>` when a version is requested."""
        return _model_version_subject(self.model_name, self.version)


class ModelVersionRegistered(Event):
    """The registry stored a new model version (its artifact digest is now immutable)."""

    TYPE: ClassVar[str] = "dev.paved.model.version.registered.v1"
    TOPIC: ClassVar[str] = topics.MODEL_EVENTS

    model_name: ModelName
    version: Version
    artifact_uri: Uri = Field(description="Where the artifact is stored.", examples=[EXAMPLE_URI])
    artifact_digest: ArtifactDigest
    framework: Framework = Field(description="Artifact format.", examples=[Framework.ONNX])
    signature: Signature
    model_card: Card
    lineage: OptionalLineage = None
    tags: Tags = Field(default_factory=dict)
    registered_by: PrincipalId = Field(
        description="User id of the registrant (who may never approve this version).",
        examples=["alice"],
    )
    registered_by_name: PrintedName = Field(
        description="Printed name of the registrant.", examples=["Alice Scientist"]
    )
    request_id: Identifier = Field(
        description="The `request_id` of the RegisterModelVersion command this answers.",
        examples=["0b7e6a1c-3f2e-4d7a-9a51-2f0c6f9d8e11"],
    )

    def key(self) -> str:
        """The model name, so one model's lifecycle events stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>/versions/<n>`."""
        return _model_version_subject(self.model_name, self.version)


class ModelVersionStateChanged(Event):
    """The registry moved a model version from one lifecycle state to another."""

    TYPE: ClassVar[str] = "dev.paved.model.version.state.changed.v1"
    TOPIC: ClassVar[str] = topics.MODEL_EVENTS

    model_name: ModelName
    version: Version
    from_state: ModelState | None = Field(
        description="State before the transition; null for the version's first state.",
        examples=[ModelState.VALIDATED],
    )
    to_state: ModelState = Field(
        description="State after the transition.", examples=[ModelState.PENDING_APPROVAL]
    )
    reason: Annotated[str, StringConstraints(max_length=4000)] | None = Field(
        default=None,
        description="Why the state changed (the triggering event, or the user's reason).",
        examples=["validation passed"],
    )

    @model_validator(mode="after")
    def _is_a_transition(self) -> Self:
        if self.from_state == self.to_state:
            raise ValueError(f"from_state and to_state are both {self.to_state.value!r}")
        return self

    def key(self) -> str:
        """The model name, so one model's lifecycle events stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>/versions/<n>`."""
        return _model_version_subject(self.model_name, self.version)


# --------------------------------------------------------------------------- validation


class ModelVersionValidated(Event):
    """The validator finished validating a model version (passed or not)."""

    TYPE: ClassVar[str] = "dev.paved.model.version.validated.v1"
    TOPIC: ClassVar[str] = topics.VALIDATION_EVENTS

    model_name: ModelName
    version: Version
    artifact_digest: ArtifactDigest
    passed: bool = Field(description="True only if no check failed or errored.", examples=[True])
    reasons: list[Annotated[str, StringConstraints(min_length=1, max_length=4000)]] = Field(
        default_factory=list,
        max_length=256,
        description="Why validation failed; empty when it passed.",
        examples=[["smoke_inference: output 'probability' has shape [1] not [-1, 1]"]],
    )
    checks: list[ValidationCheck] = Field(
        max_length=256,
        description="Every check that ran, in order.",
        examples=[
            [
                {"name": "digest", "outcome": "passed", "duration_ms": 180},
                {"name": "smoke_inference", "outcome": "passed", "duration_ms": 1250},
            ]
        ],
    )
    evidence_uri: Uri = Field(
        description="Where the full evidence report is stored.",
        examples=["s3://paved-evidence/churn-classifier/3/validation.json"],
    )
    evidence_digest: Sha256Digest = Field(
        description="SHA-256 of the evidence report.", examples=[EXAMPLE_DIGEST]
    )
    validator_version: ShortText = Field(
        description="Version of the validator that produced this result.", examples=["0.1.0"]
    )

    @model_validator(mode="after")
    def _verdict_matches_checks(self) -> Self:
        failing = (CheckOutcome.FAILED, CheckOutcome.ERROR)
        bad = [c.name for c in self.checks if c.outcome in failing]
        if self.passed and bad:
            raise ValueError(f"passed is true but checks {bad} failed or errored")
        if not self.passed and not self.reasons:
            raise ValueError("passed is false but no reasons are given")
        return self

    def key(self) -> str:
        """The model name, so one model's lifecycle events stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>/versions/<n>`."""
        return _model_version_subject(self.model_name, self.version)


# --------------------------------------------------------------------------- approval

ApprovalId = Annotated[
    Identifier,
    Field(description="Id of the approval case.", examples=["apr-7d1f3c2b"]),
]
PolicyVersion = Annotated[
    ShortText,
    Field(description="Version of the approval policy that was applied.", examples=["2025-03-01"]),
]
RiskTierField = Annotated[
    RiskTier, Field(description="Risk tier of the model version.", examples=[RiskTier.MEDIUM])
]


class ApprovalRequested(Event):
    """The approver opened an approval case for a validated model version."""

    TYPE: ClassVar[str] = "dev.paved.approval.requested.v1"
    TOPIC: ClassVar[str] = topics.APPROVAL_EVENTS

    model_name: ModelName
    version: Version
    artifact_digest: ArtifactDigest
    approval_id: ApprovalId
    risk_tier: RiskTierField
    policy_version: PolicyVersion
    required_approvals: Annotated[int, Field(ge=0, le=100)] = Field(
        description="Distinct approvers needed; 0 means the policy auto-approves.",
        examples=[2],
    )
    required_roles: list[ShortText] = Field(
        default_factory=list,
        max_length=32,
        description="Roles that must each be held by at least one approver.",
        examples=[["qa", "model-risk"]],
    )

    def key(self) -> str:
        """The model name, so one model's lifecycle events stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>/versions/<n>`."""
        return _model_version_subject(self.model_name, self.version)


class ApprovalGranted(Event):
    """The approval policy is satisfied: the model version is approved."""

    TYPE: ClassVar[str] = "dev.paved.approval.granted.v1"
    TOPIC: ClassVar[str] = topics.APPROVAL_EVENTS

    model_name: ModelName
    version: Version
    artifact_digest: ArtifactDigest
    approval_id: ApprovalId
    risk_tier: RiskTierField
    policy_version: PolicyVersion
    signatures: list[ESignature] = Field(
        max_length=100,
        description="The e-signatures that satisfied the policy; empty only when auto-approved.",
        examples=[[EXAMPLE_E_SIGNATURE]],
    )
    auto_approved: bool = Field(
        default=False,
        description="True when the policy approved without signatures (lowest risk tier only).",
        examples=[False],
    )
    expires_at: UtcDatetime | None = Field(
        default=None,
        description="When the approval lapses and the version must be revalidated; "
        "null if it does not expire.",
        examples=["2025-09-14T09:26:53Z"],
    )

    @model_validator(mode="after")
    def _signed_or_auto(self) -> Self:
        if self.auto_approved and self.signatures:
            raise ValueError("an auto-approval carries no signatures")
        if not self.auto_approved and not self.signatures:
            raise ValueError("an approval needs at least one signature unless auto_approved")
        if self.auto_approved and self.risk_tier is not RiskTier.LOW:
            raise ValueError(f"risk tier {self.risk_tier.value!r} cannot be auto-approved")
        rejecting = [
            s.signer_id for s in self.signatures if s.meaning is SignatureMeaning.REJECTION
        ]
        if rejecting:
            raise ValueError(f"an approval cannot carry rejection signatures (from {rejecting})")
        return self

    def key(self) -> str:
        """The model name, so one model's lifecycle events stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>/versions/<n>`."""
        return _model_version_subject(self.model_name, self.version)


class ApprovalRejected(Event):
    """An approver rejected the model version; it cannot be deployed."""

    TYPE: ClassVar[str] = "dev.paved.approval.rejected.v1"
    TOPIC: ClassVar[str] = topics.APPROVAL_EVENTS

    model_name: ModelName
    version: Version
    artifact_digest: ArtifactDigest
    approval_id: ApprovalId
    risk_tier: RiskTierField
    policy_version: PolicyVersion
    signatures: list[ESignature] = Field(
        min_length=1,
        max_length=100,
        description="The signatures collected, including at least one with meaning 'rejection'.",
        examples=[
            [
                {
                    **EXAMPLE_E_SIGNATURE,
                    "meaning": "rejection",
                    "reason": "Limitations do not cover the intended population.",
                }
            ]
        ],
    )

    @model_validator(mode="after")
    def _has_a_rejection(self) -> Self:
        if not any(s.meaning is SignatureMeaning.REJECTION for s in self.signatures):
            raise ValueError("a rejection needs at least one signature with meaning 'rejection'")
        return self

    def key(self) -> str:
        """The model name, so one model's lifecycle events stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>/versions/<n>`."""
        return _model_version_subject(self.model_name, self.version)


class ApprovalExpired(Event):
    """An approval case or a granted approval lapsed; the version must be revalidated."""

    TYPE: ClassVar[str] = "dev.paved.approval.expired.v1"
    TOPIC: ClassVar[str] = topics.APPROVAL_EVENTS

    model_name: ModelName
    version: Version
    artifact_digest: ArtifactDigest
    approval_id: ApprovalId
    risk_tier: RiskTierField
    policy_version: PolicyVersion
    expired_at: UtcDatetime = Field(description="When it expired, UTC.", examples=[EXAMPLE_TIME])

    def key(self) -> str:
        """The model name, so one model's lifecycle events stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>/versions/<n>`."""
        return _model_version_subject(self.model_name, self.version)


class AuthorizationOutcome(StrEnum):
    """Whether an authorisation decision allowed the action."""

    ALLOWED = "allowed"
    REFUSED = "refused"


class ApprovalDecisionRecorded(Event):
    """Someone tried to sign an approval case; the authorisation decision and its reason.

    One per attempt, allowed or refused (separation of duties, administrator, second
    signature, role, team, stale login, wrong version hash, closed case), so the audit
    trail holds every authorisation decision: who, what, under which policy, outcome.
    """

    TYPE: ClassVar[str] = "dev.paved.approval.decision.recorded.v1"
    TOPIC: ClassVar[str] = topics.APPROVAL_EVENTS

    model_name: ModelName
    version: Version
    artifact_digest: ArtifactDigest
    approval_id: ApprovalId
    policy_version: PolicyVersion
    actor_id: PrincipalId = Field(
        description="Stable user id of the person who attempted the decision.", examples=["bob"]
    )
    actor_name: PrintedName = Field(
        description="Printed name of that person.", examples=["Bob Reviewer"]
    )
    actor_roles: list[ShortText] = Field(
        default_factory=list,
        max_length=32,
        description="Roles the person's login carried.",
        examples=[["approver"]],
    )
    auth_mode: ShortText = Field(
        description="How the person authenticated: 'oidc' or 'dev-headers'.", examples=["oidc"]
    )
    auth_time: UtcDatetime | None = Field(
        default=None,
        description="When the person last entered credentials (OIDC auth_time), UTC.",
        examples=[EXAMPLE_TIME],
    )
    action: ShortText = Field(description="'approve' or 'reject'.", examples=["approve"])
    meaning: SignatureMeaning | None = Field(
        default=None,
        description="Meaning of the signature asked for, if any.",
        examples=[SignatureMeaning.APPROVAL],
    )
    signed_version_hash: Sha256Digest | None = Field(
        default=None,
        description="The version hash the person said they signed, if sent.",
        examples=["sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"],
    )
    outcome: AuthorizationOutcome = Field(
        description="allowed (the signature was recorded) or refused.",
        examples=[AuthorizationOutcome.REFUSED],
    )
    rule: ShortText | None = Field(
        default=None,
        description="The rule that refused it (e.g. 'separation-of-duties'); null if allowed.",
        examples=["separation-of-duties"],
    )
    detail: LongText = Field(
        description="The decision in words, with the offending value.",
        examples=[
            "separation of duties: alice registered churn-classifier v3 and cannot approve it"
        ],
    )

    def key(self) -> str:
        """The model name, so one model's lifecycle events stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>/versions/<n>`."""
        return _model_version_subject(self.model_name, self.version)


# --------------------------------------------------------------------------- deployment


class RequestDeployment(Command):
    """Command: deploy an approved model version to a target."""

    TYPE: ClassVar[str] = "dev.paved.deployment.request.v1"
    TOPIC: ClassVar[str] = topics.DEPLOYMENT_REQUESTS

    deployment_id: DeploymentId
    model_name: ModelName
    version: Version
    artifact_digest: ArtifactDigest
    target: DeploymentTarget = Field(
        description="Which deployer acts on this request.", examples=[DeploymentTarget.AWS]
    )
    spec: DeploymentSpec = Field(
        default_factory=DeploymentSpec,
        description="Replicas, resources, rollout.",
        examples=[{"replicas": 2, "cpu": "500m", "memory": "512Mi", "canary_weight": 100}],
    )
    requested_by: PrincipalId = Field(description="User id of the requester.", examples=["carol"])

    def key(self) -> str:
        """The deployment id, so one deployment's messages stay in order."""
        return self.deployment_id

    def default_subject(self) -> str:
        """`deployments/<id>`."""
        return f"deployments/{self.deployment_id}"


class RequestUndeployment(Command):
    """Command: take one deployment down (its servers stop; status becomes retired)."""

    TYPE: ClassVar[str] = "dev.paved.deployment.undeploy.v1"
    TOPIC: ClassVar[str] = topics.DEPLOYMENT_REQUESTS

    deployment_id: DeploymentId
    target: DeploymentTarget = Field(
        description="Which deployer acts on this request.", examples=[DeploymentTarget.LOCAL]
    )
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)] = Field(
        description="Why it is taken down (recorded in the audit trail).",
        examples=["replaced by the champion deployment"],
    )
    requested_by: PrincipalId = Field(description="User id of the requester.", examples=["carol"])

    def key(self) -> str:
        """The deployment id, so one deployment's messages stay in order."""
        return self.deployment_id

    def default_subject(self) -> str:
        """`deployments/<id>`."""
        return f"deployments/{self.deployment_id}"


class DeploymentStatusChanged(Event):
    """A deployer moved a deployment to a new status."""

    TYPE: ClassVar[str] = "dev.paved.deployment.status.changed.v1"
    TOPIC: ClassVar[str] = topics.DEPLOYMENT_STATUS

    deployment_id: DeploymentId
    model_name: ModelName
    version: Version
    artifact_digest: ArtifactDigest
    target: DeploymentTarget = Field(
        description="The deployer that owns this deployment.", examples=[DeploymentTarget.AWS]
    )
    status: DeploymentStatus = Field(description="New status.", examples=[DeploymentStatus.READY])
    revision: Annotated[int, Field(ge=1)] = Field(
        description="Deployment revision; grows by one with every spec change.", examples=[1]
    )
    endpoint_url: Uri | None = Field(
        default=None,
        description="Inference endpoint once ready "
        "(Open Inference Protocol v2 or OpenAI-compatible).",
        examples=["https://models.example.com/v2/models/churn-classifier"],
    )
    reason: Annotated[str, StringConstraints(max_length=4000)] | None = Field(
        default=None,
        description="Why the status changed, mandatory in spirit for failed and rolled_back.",
        examples=["readiness probe failed 3 times"],
    )

    def key(self) -> str:
        """The deployment id, so one deployment's messages stay in order."""
        return self.deployment_id

    def default_subject(self) -> str:
        """`deployments/<id>`."""
        return f"deployments/{self.deployment_id}"


# --------------------------------------------------------------------------- retirement

RetireReason = Annotated[
    LongText,
    Field(description="Why the version is retired.", examples=["superseded by version 4"]),
]


class RetireModelVersion(Command):
    """Command: retire a model version (its deployments are torn down)."""

    TYPE: ClassVar[str] = "dev.paved.model.version.retire.v1"
    TOPIC: ClassVar[str] = topics.RETIREMENT_REQUESTS

    model_name: ModelName
    version: Version
    reason: RetireReason
    retired_by: PrincipalId = Field(description="User id of the requester.", examples=["alice"])

    def key(self) -> str:
        """The model name, so one model's lifecycle messages stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>/versions/<n>`."""
        return _model_version_subject(self.model_name, self.version)


class ModelVersionRetired(Event):
    """The registry retired a model version; deployers remove it everywhere."""

    TYPE: ClassVar[str] = "dev.paved.model.version.retired.v1"
    TOPIC: ClassVar[str] = topics.MODEL_EVENTS

    model_name: ModelName
    version: Version
    reason: RetireReason
    retired_by: PrincipalId = Field(description="User id of the requester.", examples=["alice"])

    def key(self) -> str:
        """The model name, so one model's lifecycle events stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>/versions/<n>`."""
        return _model_version_subject(self.model_name, self.version)


# --------------------------------------------------------------------------- catalog metadata

AliasName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$"),
    Field(
        description="Alias of a model version: a lowercase letter, then letters, digits, "
        "'_' or '-' (at most 64).",
        examples=["champion"],
    ),
]
ChangeReason = Annotated[str, StringConstraints(max_length=4000)]


class FieldChange(Frozen):
    """One field of a catalog record before and after a change (the audit trail's old/new)."""

    field: ShortText = Field(
        description="The changed field: 'description', 'owner_team', or 'tags.<key>'.",
        examples=["tags.stage"],
    )
    old: Annotated[str, StringConstraints(max_length=10_000)] | None = Field(
        default=None,
        description="Value before the change; null if it was absent.",
        examples=["candidate"],
    )
    new: Annotated[str, StringConstraints(max_length=10_000)] | None = Field(
        default=None,
        description="Value after the change; null if it was removed.",
        examples=["production"],
    )


class RegisteredModelCreated(Event):
    """The registry created a registered model (the name its versions share)."""

    TYPE: ClassVar[str] = "dev.paved.model.created.v1"
    TOPIC: ClassVar[str] = topics.MODEL_EVENTS

    model_name: ModelName
    description: Annotated[str, StringConstraints(max_length=10_000)] = Field(
        default="", description="What the model is for.", examples=["Churn risk of subscribers."]
    )
    owner_team: ShortText = Field(description="Team that owns the model.", examples=["retention"])
    tags: Tags = Field(default_factory=dict)
    created_via: ShortText = Field(
        description="How it was created: 'api' (Paved API), 'mlflow' (MLflow-compatible API) "
        "or 'registration' (implicitly, by a pipeline's RegisterModelVersion).",
        examples=["api"],
    )
    created_by: PrincipalId = Field(description="User id of the creator.", examples=["alice"])
    created_by_name: PrintedName = Field(
        description="Printed name of the creator.", examples=["Alice Scientist"]
    )

    def key(self) -> str:
        """The model name, so one model's lifecycle events stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>`."""
        return _model_version_subject(self.model_name, None)


class RegisteredModelUpdated(Event):
    """The registry changed a registered model's metadata (description, owner team, tags)."""

    TYPE: ClassVar[str] = "dev.paved.model.updated.v1"
    TOPIC: ClassVar[str] = topics.MODEL_EVENTS

    model_name: ModelName
    changes: list[FieldChange] = Field(
        min_length=1,
        max_length=256,
        description="Every changed field with its old and new value.",
        examples=[[{"field": "owner_team", "old": "retention", "new": "growth"}]],
    )
    revision: Annotated[int, Field(ge=1)] = Field(
        description="The model's revision after the change (its ETag).", examples=[2]
    )
    reason: ChangeReason | None = Field(
        default=None,
        description="Why the record changed, as the actor gave it (or how it was changed).",
        examples=["owner team renamed"],
    )
    updated_by: PrincipalId = Field(description="User id of the editor.", examples=["alice"])

    def key(self) -> str:
        """The model name, so one model's lifecycle events stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>`."""
        return _model_version_subject(self.model_name, None)


class ModelVersionUpdated(Event):
    """The registry changed a version's annotations (description, tags); never its artifact."""

    TYPE: ClassVar[str] = "dev.paved.model.version.updated.v1"
    TOPIC: ClassVar[str] = topics.MODEL_EVENTS

    model_name: ModelName
    version: Version
    changes: list[FieldChange] = Field(
        min_length=1,
        max_length=256,
        description="Every changed field with its old and new value.",
        examples=[[{"field": "tags.stage", "old": "candidate", "new": "production"}]],
    )
    revision: Annotated[int, Field(ge=1)] = Field(
        description="The version's revision after the change (its ETag).", examples=[2]
    )
    reason: ChangeReason | None = Field(
        default=None,
        description="Why the record changed, as the actor gave it (or how it was changed).",
        examples=["owner team renamed"],
    )
    updated_by: PrincipalId = Field(description="User id of the editor.", examples=["alice"])

    def key(self) -> str:
        """The model name, so one model's lifecycle events stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>/versions/<n>`."""
        return _model_version_subject(self.model_name, self.version)


class ModelAliasChanged(Event):
    """An alias of a registered model was set, moved to another version, or removed."""

    TYPE: ClassVar[str] = "dev.paved.model.alias.changed.v1"
    TOPIC: ClassVar[str] = topics.MODEL_EVENTS

    model_name: ModelName
    alias: AliasName
    from_version: PositiveVersion | None = Field(
        description="Version the alias pointed to before; null if it is new.", examples=[2]
    )
    to_version: PositiveVersion | None = Field(
        description="Version it points to now; null if it was removed.", examples=[3]
    )
    to_digest: Sha256Digest | None = Field(
        default=None,
        description="Artifact digest of `to_version` (what consumers of the alias now get).",
        examples=[EXAMPLE_DIGEST],
    )
    protected: bool = Field(
        description="A protected alias only ever points to an approved (or deployed) version.",
        examples=[True],
    )
    reason: ChangeReason | None = Field(
        default=None,
        description="Why the record changed, as the actor gave it (or how it was changed).",
        examples=["owner team renamed"],
    )
    changed_by: PrincipalId = Field(description="User id of who moved it.", examples=["alice"])

    @model_validator(mode="after")
    def _is_a_change(self) -> Self:
        if self.from_version is None and self.to_version is None:
            raise ValueError("an alias change needs from_version, to_version or both")
        if self.from_version == self.to_version:
            raise ValueError(f"from_version and to_version are both {self.to_version}")
        return self

    def key(self) -> str:
        """The model name, so one model's lifecycle events stay in order."""
        return self.model_name

    def default_subject(self) -> str:
        """`models/<name>/aliases/<alias>`."""
        return f"models/{self.model_name}/aliases/{self.alias}"


# --------------------------------------------------------------------------- dead letters and audit

TopicName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,249}$")]
Partition = Annotated[int, Field(ge=0)]
Offset = Annotated[int, Field(ge=0)]


class DeadLetterRecorded(Event):
    """A consumer could not process a message; the original bytes are kept here, never lost."""

    TYPE: ClassVar[str] = "dev.paved.deadletter.recorded.v1"
    TOPIC: ClassVar[str] = topics.DEAD_LETTER

    reason: LongText = Field(
        description="What was wrong, with the offending value.",
        examples=["data.artifact_digest: String should match pattern (got 'md5:abc')"],
    )
    error_type: ShortText = Field(
        description="Class of the error.", examples=["ContractError", "DigestMismatch"]
    )
    source_topic: TopicName = Field(
        description="Topic the message was read from.", examples=[topics.REGISTRATION_REQUESTS]
    )
    source_partition: Partition = Field(description="Its partition.", examples=[1])
    source_offset: Offset = Field(description="Its offset.", examples=[4711])
    consumer_group: ShortText = Field(
        description="Consumer group that gave up on it.", examples=[topics.GROUP_REGISTRY]
    )
    original_key: Base64 | None = Field(
        default=None,
        description="The message key, base64; null if it had none.",
        examples=["Y2h1cm4tY2xhc3NpZmllcg=="],
    )
    original_value: Base64 = Field(
        description="The message value, base64 (possibly truncated, see original_value_truncated).",
        examples=["eyJub3QiOiAiYW4gZW52ZWxvcGUifQ=="],
    )
    original_value_truncated: bool = Field(
        default=False,
        description="True if original_value holds only a prefix because the message was too big.",
        examples=[False],
    )
    original_headers: dict[ShortText, Base64] = Field(
        default_factory=dict,
        max_length=256,
        description="The message headers; values base64 (header values are bytes).",
        examples=[{"content-type": "YXBwbGljYXRpb24vanNvbg=="}],
    )
    original_event_id: Identifier | None = Field(
        default=None,
        description="The original envelope's `id`, if it could be read.",
        examples=["7f1b8f52-8c2b-4c8a-9a3e-5d2f1c0b9e77"],
    )
    original_event_type: ShortText | None = Field(
        default=None,
        description="The original envelope's `type`, if it could be read.",
        examples=[RegisterModelVersion.TYPE],
    )

    def key(self) -> str:
        """`<source_topic>/<source_partition>`: dead letters of one partition stay in order."""
        return f"{self.source_topic}/{self.source_partition}"

    def default_subject(self) -> str:
        """`topics/<topic>/partitions/<p>/offsets/<o>`."""
        return (
            f"topics/{self.source_topic}/partitions/{self.source_partition}"
            f"/offsets/{self.source_offset}"
        )


class AuditRecordKind(StrEnum):
    """What an audit record stands for."""

    EVENT = "event"
    """A lifecycle event or command, sealed as received."""
    GAP = "gap"
    """A message some consumer could not process (a sealed `DeadLetterRecorded`): the trail
    shows that something is missing there, and where the original bytes are kept."""


class AuditRecordSealed(Event):
    """The audit service appended an event to the hash-chained audit trail."""

    TYPE: ClassVar[str] = "dev.paved.audit.record.sealed.v1"
    TOPIC: ClassVar[str] = topics.AUDIT

    sequence: Annotated[int, Field(ge=0)] = Field(
        description="Position in the audit trail, from 0, without gaps.", examples=[41]
    )
    event_id: Identifier = Field(
        description="`id` of the audited envelope (the audit trail holds each id once).",
        examples=["7f1b8f52-8c2b-4c8a-9a3e-5d2f1c0b9e77"],
    )
    event_type: ShortText = Field(
        description="`type` of the audited envelope.", examples=[ModelVersionRegistered.TYPE]
    )
    event_time: UtcDatetime = Field(
        description="`time` of the audited envelope, UTC.", examples=[EXAMPLE_TIME]
    )
    subject: Annotated[str, StringConstraints(max_length=512)] | None = Field(
        default=None,
        description="`subject` of the audited envelope.",
        examples=["models/churn-classifier/versions/3"],
    )
    source_topic: TopicName = Field(
        description="Topic the audited event was read from.", examples=[topics.MODEL_EVENTS]
    )
    source_partition: Partition = Field(description="Its partition.", examples=[0])
    source_offset: Offset = Field(description="Its offset.", examples=[128])
    record: Annotated[str, StringConstraints(min_length=2)] = Field(
        description="Canonical JSON (RFC 8785) of the audited envelope, exactly as hashed.",
        examples=['{"data":{},"id":"7f1b8f52-8c2b-4c8a-9a3e-5d2f1c0b9e77"}'],
    )
    prev_hash: HexSha256 = Field(
        description="record_hash of the previous record; 64 zeros for sequence 0.",
        examples=["0" * 64],
    )
    record_hash: HexSha256 = Field(
        description="SHA-256 (hex) chaining this record to prev_hash, "
        "as defined by the audit service.",
        examples=["2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"],
    )
    sealed_at: UtcDatetime = Field(
        description="When the record was appended, UTC.", examples=[EXAMPLE_TIME]
    )
    kind: AuditRecordKind = Field(
        default=AuditRecordKind.EVENT,
        description="`gap` when the audited envelope is a `DeadLetterRecorded` (a message some "
        "consumer could not process), else `event`. Derived from `record`, so verifiable.",
        examples=[AuditRecordKind.EVENT],
    )

    def key(self) -> str:
        """The audited event id (the audit topic has one partition, so order is total anyway)."""
        return self.event_id


Base64Signature = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{86}==$")]


class AuditCheckpointSigned(Event):
    """The audit service signed a checkpoint: the Merkle root of the first `tree_size` records.

    `signed_body` is the exact RFC 8785 JSON that was signed; the other fields repeat parts
    of it for convenience and must equal it. Each checkpoint's body embeds the previous
    checkpoint's signature, so checkpoints form a chain of their own.
    """

    TYPE: ClassVar[str] = "dev.paved.audit.checkpoint.signed.v1"
    TOPIC: ClassVar[str] = topics.AUDIT

    origin: TopicName = Field(
        description="Which audit trail: the audit topic it is published on.",
        examples=[topics.AUDIT],
    )
    checkpoint_index: Annotated[int, Field(ge=0)] = Field(
        description="Position among the checkpoints of this trail, from 0, without gaps.",
        examples=[12],
    )
    tree_size: Annotated[int, Field(ge=0)] = Field(
        description="Number of audit records covered (sequences 0 to tree_size - 1).",
        examples=[1000],
    )
    root_hash: HexSha256 = Field(
        description="RFC 6962 Merkle tree hash over the canonical records, hex.",
        examples=["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
    )
    chain_head: HexSha256 = Field(
        description="record_hash of record tree_size - 1 (64 zeros when tree_size is 0).",
        examples=["2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"],
    )
    key_id: ShortText = Field(
        description="Which key signed: `ed25519:` and the first 16 hex digits of the SHA-256 "
        "of its raw public key.",
        examples=["ed25519:3b6a27bcceb6a42d"],
    )
    public_key: Base64 = Field(
        description="Raw Ed25519 public key, base64 (informative: verifiers pin their own copy).",
        examples=["GbxrzMNsPbQeVNlhyVsLzqQQDP3kTaIXqWIH7pW6O4g="],
    )
    signed_body: Annotated[str, StringConstraints(min_length=2)] = Field(
        description="The checkpoint body, RFC 8785 JSON, exactly the bytes that were signed.",
        examples=['{"chain_head":"...","format":"paved.audit.checkpoint.v1","tree_size":1000}'],
    )
    signature: Base64Signature = Field(
        description="Ed25519 signature over signed_body, base64 (64 bytes).",
        examples=["A" * 86 + "=="],
    )
    issued_at: UtcDatetime = Field(
        description="When the checkpoint was signed, UTC (also inside signed_body).",
        examples=[EXAMPLE_TIME],
    )
    frontier: list[HexSha256] = Field(
        default_factory=list,
        max_length=64,
        description="Roots of the perfect subtrees of the first tree_size records, largest "
        "first (one per set bit of tree_size). Not signed, but they must fold into root_hash; "
        "a verifier can start from this checkpoint instead of from record 0.",
        examples=[["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]],
    )

    def key(self) -> str:
        """The origin: one trail's checkpoints share a key (and the topic has one partition)."""
        return self.origin
