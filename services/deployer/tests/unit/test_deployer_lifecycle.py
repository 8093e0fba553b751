"""Status transition rules, the admission gate and the reconciler's plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from paved_deployer.domain.lifecycle import (
    Action,
    Admit,
    Approval,
    InvalidTransitionError,
    Probe,
    Refuse,
    Registration,
    Share,
    Validation,
    Wait,
    admission,
    check_transition,
    is_new_rollout,
    plan,
    replicas_for,
    split,
)
from paved_schemas.events import DeploymentStatus as S

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (None, S.PENDING),
        (S.PENDING, S.PROVISIONING),
        (S.PENDING, S.FAILED),
        (S.PROVISIONING, S.READY),
        (S.PROVISIONING, S.FAILED),
        (S.PROVISIONING, S.ROLLED_BACK),
        (S.PENDING, S.ROLLED_BACK),
        (S.READY, S.PENDING),
        (S.READY, S.FAILED),
        (S.READY, S.RETIRED),
        (S.ROLLED_BACK, S.PENDING),
        (S.ROLLED_BACK, S.RETIRED),
        (S.PENDING, S.RETIRED),
        (S.FAILED, S.PENDING),
        (S.RETIRED, S.PENDING),
    ],
)
def test_allowed_transitions(current: S | None, new: S) -> None:
    check_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (None, S.READY),
        (S.PENDING, S.READY),
        (S.FAILED, S.READY),
        (S.FAILED, S.PROVISIONING),
        (S.RETIRED, S.READY),
        (S.RETIRED, S.RETIRED),
        (S.READY, S.READY),
        (S.READY, S.PROVISIONING),
        (S.READY, S.ROLLED_BACK),
        (S.FAILED, S.ROLLED_BACK),
        (S.ROLLED_BACK, S.READY),
    ],
)
def test_forbidden_transitions_name_both_statuses(current: S | None, new: S) -> None:
    with pytest.raises(InvalidTransitionError, match=rf"to {new.value}; allowed"):
        check_transition(current, new)


def test_a_repeated_request_is_not_a_new_rollout() -> None:
    spec = {"replicas": 1}
    same = ("m", 3, DIGEST, spec)
    assert not is_new_rollout(same, same, S.READY, "running")
    assert is_new_rollout(same, ("m", 4, OTHER, spec), S.READY, "running")
    assert is_new_rollout(same, same, S.FAILED, "running")
    assert is_new_rollout(same, same, S.ROLLED_BACK, "running"), "a retry after a rollback"
    assert is_new_rollout(same, same, S.READY, "stopped")
    assert is_new_rollout(None, same, None, None)


def gate(**overrides: object) -> object:
    args: dict[str, object] = {
        "model_name": "churn",
        "version": 3,
        "digest": DIGEST,
        "registration": Registration("file:///m.pkl", DIGEST, "sklearn"),
        "approval": Approval("approved"),
        "validation": Validation(passed=True),
        "retired_reason": None,
        "waited_s": 0.0,
        "wait_limit_s": 120.0,
        "now": NOW,
        "frameworks": {"sklearn"},
        "target": "local",
    }
    args.update(overrides)
    return admission(**args)  # type: ignore[arg-type]


def test_admission_admits_only_a_registered_approved_digest() -> None:
    assert gate() == Admit()
    assert isinstance(gate(approval=None), Wait)
    assert isinstance(gate(registration=None), Wait)
    waiting = gate(validation=None)
    assert isinstance(waiting, Wait)
    assert "no passed validation seen" in waiting.reason


def test_admission_refusals_name_the_digest() -> None:
    cases = {
        "rejected": gate(approval=Approval("revoked", "rejected by Bob")),
        "timeout": gate(approval=None, waited_s=120.0),
        "mismatch": gate(registration=Registration("file:///m.pkl", OTHER, "sklearn")),
        "framework": gate(registration=Registration("file:///m.onnx", DIGEST, "onnx")),
        "expired": gate(approval=Approval("approved", None, NOW - timedelta(seconds=1))),
        "retired": gate(retired_reason="superseded"),
        "invalid": gate(validation=Validation(passed=False, reasons="scan: os.system")),
        "unvalidated": gate(validation=None, waited_s=120.0),
    }
    for name, verdict in cases.items():
        assert isinstance(verdict, Refuse), name
        assert DIGEST in verdict.reason, (name, verdict.reason)
    assert "rejected by Bob" in cases["rejected"].reason  # type: ignore[union-attr]
    assert "no approval seen within 120 s" in cases["timeout"].reason  # type: ignore[union-attr]
    assert OTHER in cases["mismatch"].reason  # type: ignore[union-attr]
    assert "'onnx'" in cases["framework"].reason  # type: ignore[union-attr]
    assert "did not pass validation: scan: os.system" in cases["invalid"].reason  # type: ignore[union-attr]
    assert "no passed validation seen within 120 s" in cases["unvalidated"].reason  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("desired", "status", "probe", "streak", "action"),
    [
        ("running", S.PENDING, Probe.NONE, 0, Action.ADMIT),
        ("running", S.PROVISIONING, Probe.READY, 0, Action.MARK_READY),
        ("running", S.PROVISIONING, Probe.GONE, 0, Action.REPROVISION),
        ("running", S.PROVISIONING, Probe.NONE, 0, Action.REPROVISION),
        ("running", S.READY, Probe.READY, 0, Action.KEEP),
        ("running", S.READY, Probe.GONE, 0, Action.RESTART),
        ("running", S.READY, Probe.NONE, 0, Action.RESTART),
        ("running", S.READY, Probe.NOT_READY, 1, Action.KEEP),
        ("running", S.READY, Probe.NOT_READY, 5, Action.RESTART),
        ("running", S.ROLLED_BACK, Probe.READY, 0, Action.KEEP),
        ("running", S.ROLLED_BACK, Probe.GONE, 0, Action.RESTART),
        ("stopped", S.ROLLED_BACK, Probe.READY, 0, Action.RETIRE),
        ("running", S.FAILED, Probe.NONE, 0, Action.KEEP),
        ("running", S.FAILED, Probe.READY, 0, Action.RELEASE),
        ("stopped", S.READY, Probe.READY, 0, Action.RETIRE),
        ("stopped", S.PENDING, Probe.NONE, 0, Action.RETIRE),
        ("stopped", S.RETIRED, Probe.NONE, 0, Action.KEEP),
        ("stopped", S.RETIRED, Probe.GONE, 0, Action.RELEASE),
    ],
)
def test_plan(desired: str, status: S, probe: Probe, streak: int, action: Action) -> None:
    assert plan(desired=desired, status=status, probe=probe, unready_streak=streak) is action


@pytest.mark.parametrize(
    ("current", "revision", "weight", "expected"),
    [
        ([], 1, 100, [(1, 100)]),
        ([], 1, 10, [(1, 100)]),  # a first rollout has nothing to share traffic with
        ([(1, 100)], 2, 100, [(2, 100)]),
        ([(1, 100)], 2, 10, [(1, 90), (2, 10)]),
        ([(1, 100)], 2, 0, [(1, 100), (2, 0)]),
        # a new canary replaces the previous canary, not the stable revision
        ([(1, 90), (2, 10)], 3, 25, [(1, 75), (3, 25)]),
        # promoting the canary (a new revision at 100) drops everything else
        ([(1, 90), (2, 10)], 3, 100, [(3, 100)]),
        # a restarted revision keeps its place
        ([(1, 80), (2, 20)], 2, 20, [(1, 80), (2, 20)]),
    ],
)
def test_traffic_split(
    current: list[tuple[int, int]], revision: int, weight: int, expected: list[tuple[int, int]]
) -> None:
    shares = split([Share(r, w) for r, w in current], revision, weight)
    assert [(s.revision, s.weight) for s in shares] == expected
    assert sum(s.weight for s in shares) == 100


def test_replicas_stay_within_the_autoscaling_bounds() -> None:
    assert replicas_for(3, None, None) == 3
    assert replicas_for(3, 1, 2) == 2
    assert replicas_for(1, 2, 5) == 2
    assert replicas_for(1, 0, None) == 1
