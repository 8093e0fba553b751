"""Events and commands: the registry, documentation, keys and the validation rules."""

from __future__ import annotations

import re
import types
from typing import Any, Union, get_args, get_origin

import pytest
from paved_schemas import CONTRACTS, EVENT_TYPES, Command, Contract, Event, limits
from paved_schemas.events import (
    EXAMPLE_DIGEST,
    ApprovalGranted,
    ApprovalRejected,
    DeadLetterRecorded,
    DeploymentSpec,
    ESignature,
    MetricThreshold,
    ModelVersionStateChanged,
    ModelVersionValidated,
    RegisterModelVersion,
    RequestDeployment,
)
from paved_schemas.jsonschema import example_data
from paved_schemas.topics import ALL_TOPICS
from pydantic import BaseModel, ValidationError

pytestmark = pytest.mark.unit


def _example(contract: type[Contract], **changes: Any) -> dict[str, Any]:
    return {**example_data(contract), **changes}


def test_every_contract_is_registered_once_under_a_versioned_type() -> None:
    types_ = [c.TYPE for c in CONTRACTS]
    assert len(types_) == len(set(types_)) == len(EVENT_TYPES) == len(CONTRACTS)
    for contract in CONTRACTS:
        pattern = rf"^dev\.paved\.[a-z]+(\.[a-z]+)*\.v{contract.SCHEMA_VERSION}$"
        assert re.match(pattern, contract.TYPE), contract.TYPE
        assert EVENT_TYPES[contract.TYPE] is contract


def test_every_contract_class_in_events_is_registered() -> None:
    import inspect

    from paved_schemas import events

    defined = {
        cls
        for _, cls in inspect.getmembers(events, inspect.isclass)
        if issubclass(cls, Contract)
        and cls not in {Contract, Event, Command}
        and cls.__module__ == events.__name__
    }
    assert defined == set(CONTRACTS), defined ^ set(CONTRACTS)


def test_every_contract_writes_to_a_declared_topic() -> None:
    names = {spec.name for spec in ALL_TOPICS}
    for contract in CONTRACTS:
        assert contract.TOPIC in names, contract


def test_events_are_past_tense_and_commands_imperative() -> None:
    for contract in CONTRACTS:
        if issubclass(contract, Event):
            assert contract.__name__.endswith("ed"), contract.__name__
        else:
            assert issubclass(contract, Command)
            assert not contract.__name__.endswith("ed"), contract.__name__


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType, list, dict) or get_args(annotation):
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    return []


def _all_models() -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    pending: list[type[BaseModel]] = list(CONTRACTS)
    while pending:
        model = pending.pop()
        if model in found:
            continue
        found.add(model)
        for info in model.model_fields.values():
            pending.extend(_models_in(info.annotation))
    return found


def test_every_field_of_every_model_is_documented_with_examples() -> None:
    models = _all_models()
    assert ESignature in models
    assert DeploymentSpec in models
    for model in models:
        assert model.__doc__, model
        assert model.model_config.get("extra") == "ignore", model
        assert model.model_config.get("frozen") is True, model
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"
            assert info.examples, f"{model.__name__}.{name} has no examples"


_KEY_FIELD = {
    "RequestDeployment": "deployment_id",
    "RequestUndeployment": "deployment_id",
    "DeploymentStatusChanged": "deployment_id",
    "AuditRecordSealed": "event_id",
    "AuditCheckpointSigned": "origin",
}


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.__name__)
def test_keys_are_the_aggregate(contract: type[Contract]) -> None:
    data = contract.model_validate(example_data(contract))
    if contract is DeadLetterRecorded:
        assert data.key() == "paved.registration.requests.v1/1"
    else:
        field = _KEY_FIELD.get(contract.__name__, "model_name")
        assert data.key() == getattr(data, field)


@pytest.mark.parametrize(
    ("changes", "field", "value"),
    [
        ({"model_name": "Churn"}, "model_name", "'Churn'"),
        ({"model_name": "a" * 129}, "model_name", "'aaaa"),
        ({"artifact_digest": "sha256:ABC"}, "artifact_digest", "'sha256:ABC'"),
        ({"artifact_digest": "md5:" + "0" * 64}, "artifact_digest", "'md5:"),
        ({"artifact_uri": "/no/scheme"}, "artifact_uri", "'/no/scheme'"),
        ({"framework": "tensorflow"}, "framework", "'tensorflow'"),
        ({"version": 0}, "version", "0"),
        ({"request_id": ""}, "request_id", "''"),
        ({"registered_by_name": "x" * 300}, "registered_by_name", "'xxxx"),
    ],
)
def test_registration_rejects_bad_values(changes: dict[str, Any], field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RegisterModelVersion.model_validate(_example(RegisterModelVersion, **changes))
    assert caught.value.errors()[0]["loc"][0] == field
    assert value in repr(caught.value.errors()[0]["input"])


def test_tensor_datatypes_are_kserve_v2() -> None:
    example = _example(RegisterModelVersion)
    example["signature"]["inputs"][0]["datatype"] = "float32"
    with pytest.raises(ValidationError, match="'BOOL', 'UINT8'"):
        RegisterModelVersion.model_validate(example)


def test_shapes_allow_minus_one_only_as_the_variable_marker() -> None:
    example = _example(RegisterModelVersion)
    example["signature"]["inputs"][0]["shape"] = [-2, 3]
    with pytest.raises(ValidationError, match="greater than or equal to -1"):
        RegisterModelVersion.model_validate(example)


def test_metric_thresholds_need_a_sane_bound() -> None:
    assert MetricThreshold(min=0.5).max is None
    with pytest.raises(ValidationError, match="needs 'min', 'max' or both"):
        MetricThreshold()
    with pytest.raises(ValidationError, match=r"min 2\.0 is greater than max 1\.0"):
        MetricThreshold(min=2, max=1)
    with pytest.raises(ValidationError, match="finite number"):
        MetricThreshold(min=float("nan"))


def test_deployment_spec_bounds() -> None:
    assert DeploymentSpec(min_replicas=0, max_replicas=3).canary_weight == 100
    with pytest.raises(ValidationError, match="min_replicas 4 is greater than max_replicas 2"):
        DeploymentSpec(min_replicas=4, max_replicas=2)
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        DeploymentSpec(canary_weight=101)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        DeploymentSpec(replicas=0)
    with pytest.raises(ValidationError, match="String should match pattern"):
        DeploymentSpec(memory="lots")
    with pytest.raises(ValidationError, match="String should match pattern"):
        DeploymentSpec(env={"1BAD": "x"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"replicas": 10**6}, "replicas 1000000 is above the limit of 64"),
        ({"max_replicas": 65}, "max_replicas 65 is above the limit of 64"),
        ({"min_replicas": 100, "max_replicas": 200}, "min_replicas 100 is above"),
        ({"cpu": "65"}, "cpu '65' is above the limit of 64000m"),
        ({"memory": "1Ti"}, "memory '1Ti' is above the limit of 256Gi"),
        ({"env": {"PYTHONSTARTUP": "/tmp/x.py"}}, "'PYTHONSTARTUP' is not allowed"),
        ({"env": {"PYTHONPATH": "/tmp"}}, "'PYTHONPATH' is not allowed"),
        ({"env": {"LD_PRELOAD": "/tmp/x.so"}}, "'LD_PRELOAD' is not allowed"),
        ({"env": {"PATH": "/tmp"}}, "'PATH' is not allowed"),
        ({"env": {"HOME": "/tmp"}}, "'HOME' is not allowed"),
        ({"env": {"HTTPS_PROXY": "http://x"}}, "'HTTPS_PROXY' is not allowed"),
        ({"env": {"LOG_LEVEL": "x" * 1025}}, "'LOG_LEVEL' has a 1025-character value"),
        ({"env": {"TZ": "UTC\x00"}}, "'TZ' contains a NUL character"),
    ],
)
def test_deployment_spec_hard_limits_name_the_offending_value(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        DeploymentSpec.model_validate(spec)


def test_deployment_spec_within_limits_is_accepted() -> None:
    spec = DeploymentSpec(
        replicas=64, max_replicas=64, cpu="64", memory="256Gi",
        env={"PAVED_MODEL_MODE": "fast", "OMP_NUM_THREADS": "2", "TZ": "UTC", "LOG_LEVEL": "info"},
    )  # fmt: skip
    assert spec.replicas == 64
    assert limits.cpu_millicores("500m") == 500
    assert limits.memory_bytes("1G") == 10**9


def test_deployment_target_is_one_of_the_three() -> None:
    with pytest.raises(ValidationError, match="'local', 'aws' or 'gcp'"):
        RequestDeployment.model_validate(_example(RequestDeployment, target="azure"))


def test_state_change_must_change_state() -> None:
    changes = {"from_state": "validated", "to_state": "validated"}
    with pytest.raises(ValidationError, match="both 'validated'"):
        ModelVersionStateChanged.model_validate(_example(ModelVersionStateChanged, **changes))
    first = _example(ModelVersionStateChanged, from_state=None, to_state="registered")
    assert ModelVersionStateChanged.model_validate(first).from_state is None


def test_validation_verdict_must_match_its_checks() -> None:
    failed_check = {"name": "malware_scan", "outcome": "error", "duration_ms": 3}
    with pytest.raises(ValidationError, match=r"checks \['malware_scan'\] failed or errored"):
        ModelVersionValidated.model_validate(
            _example(ModelVersionValidated, passed=True, checks=[failed_check])
        )
    with pytest.raises(ValidationError, match="passed is false but no reasons"):
        ModelVersionValidated.model_validate(
            _example(ModelVersionValidated, passed=False, reasons=[])
        )


def test_signatures_need_aware_times_and_a_version_hash() -> None:
    example = _example(ApprovalGranted)
    example["signatures"][0]["signed_at"] = "2025-03-14T09:26:53"
    example["signatures"][0]["version_hash"] = "abc"
    with pytest.raises(ValidationError) as caught:
        ApprovalGranted.model_validate(example)
    locs = {error["loc"] for error in caught.value.errors()}
    assert locs == {("signatures", 0, "signed_at"), ("signatures", 0, "version_hash")}


def test_approval_rules() -> None:
    with pytest.raises(ValidationError, match="at least one signature unless auto_approved"):
        ApprovalGranted.model_validate(_example(ApprovalGranted, signatures=[]))
    with pytest.raises(ValidationError, match="auto-approval carries no signatures"):
        ApprovalGranted.model_validate(_example(ApprovalGranted, auto_approved=True))
    with pytest.raises(ValidationError, match="'medium' cannot be auto-approved"):
        ApprovalGranted.model_validate(_example(ApprovalGranted, auto_approved=True, signatures=[]))
    auto = _example(ApprovalGranted, auto_approved=True, signatures=[], risk_tier="low")
    assert ApprovalGranted.model_validate(auto).auto_approved

    granted = _example(ApprovalGranted)
    granted["signatures"][0]["meaning"] = "rejection"
    with pytest.raises(ValidationError, match=r"rejection signatures \(from \['bob'\]\)"):
        ApprovalGranted.model_validate(granted)

    rejected = _example(ApprovalRejected)
    rejected["signatures"][0]["meaning"] = "review"
    with pytest.raises(ValidationError, match="meaning 'rejection'"):
        ApprovalRejected.model_validate(rejected)


def test_dead_letters_keep_bytes_as_base64() -> None:
    with pytest.raises(ValidationError, match="original_value"):
        DeadLetterRecorded.model_validate(_example(DeadLetterRecorded, original_value="not b64!"))
    letter = DeadLetterRecorded.model_validate(_example(DeadLetterRecorded, original_key=None))
    assert letter.default_subject() == (
        "topics/paved.registration.requests.v1/partitions/1/offsets/4711"
    )


def test_example_digest_is_well_formed() -> None:
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", EXAMPLE_DIGEST)
