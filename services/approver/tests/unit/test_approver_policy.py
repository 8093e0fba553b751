"""The builtin approval policy and the policy value's own rules."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from paved_approver.domain.policy import (
    BUILTIN_POLICY,
    ApprovalPolicy,
    PolicyError,
    TierRule,
    load_policy,
    load_policy_file,
)
from paved_schemas.events import RiskTier

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("tier", "required", "auto"),
    [
        (RiskTier.LOW, 0, True),
        (RiskTier.MEDIUM, 1, False),
        (RiskTier.HIGH, 2, False),
        (RiskTier.CRITICAL, 2, False),
    ],
)
def test_builtin_policy_per_tier(tier: RiskTier, required: int, auto: bool) -> None:
    rule = BUILTIN_POLICY.rule_for(tier)
    assert rule.required_approvals == required
    assert rule.auto_approve is auto
    assert rule.required_roles == ()


def test_builtin_policy_has_a_version() -> None:
    assert BUILTIN_POLICY.version == "builtin-1"


def test_policy_must_cover_every_tier() -> None:
    with pytest.raises(PolicyError, match=r"no rule for risk tiers \['high', 'critical'\]"):
        ApprovalPolicy(
            version="p1",
            rules={RiskTier.LOW: TierRule(0), RiskTier.MEDIUM: TierRule(1)},
        )


def test_only_the_low_tier_may_auto_approve() -> None:
    rules = {tier: TierRule(0) for tier in RiskTier}
    with pytest.raises(
        PolicyError, match=r"auto-approves risk tiers \['medium', 'high', 'critical'\]"
    ):
        ApprovalPolicy(version="lenient", rules=rules)


def test_a_low_tier_with_a_role_is_not_automatic() -> None:
    assert TierRule(0, ("approver",)).auto_approve is False


def test_rule_bounds_and_version_are_checked() -> None:
    with pytest.raises(PolicyError, match=r"between 0 and 100, got -1"):
        TierRule(-1)
    with pytest.raises(PolicyError, match=r"non-empty version"):
        ApprovalPolicy(version=" ", rules={t: TierRule(1) for t in RiskTier})


def test_policy_rules_cannot_be_changed_after_creation() -> None:
    with pytest.raises(TypeError):
        BUILTIN_POLICY.rules[RiskTier.HIGH] = TierRule(0)  # type: ignore[index]


def test_the_packaged_yaml_policy() -> None:
    policy = load_policy_file(None)
    assert policy.version == "paved-default-1"
    assert policy.digest is not None
    assert policy.digest.startswith("sha256:")
    assert policy.rule_for(RiskTier.LOW).auto_approve
    assert policy.rule_for(RiskTier.HIGH).required_approvals == 2
    assert policy.rule_for(RiskTier.MEDIUM).eligible_roles == ("approver",)
    assert policy.rule_for(RiskTier.CRITICAL).valid_for == timedelta(days=30)


GOOD = """
version: p-7
tiers:
  low: {auto_approve: true, valid_for: 30d}
  medium: {approvers: 1, valid_for: 12h}
  high: {approvers: 2, signer_roles: [approver, auditor], required_roles: [auditor]}
  critical: {approvers: 3, valid_for: 3600}
"""


def test_a_yaml_policy_is_versioned_data(tmp_path: Path) -> None:
    f = tmp_path / "policy.yaml"
    f.write_text(GOOD)
    policy = load_policy_file(f)
    assert policy.version == "p-7"
    assert policy.rule_for(RiskTier.MEDIUM).valid_for == timedelta(hours=12)
    assert policy.rule_for(RiskTier.HIGH).required_roles == ("auditor",)
    assert policy.rule_for(RiskTier.HIGH).valid_for is None
    assert policy.rule_for(RiskTier.CRITICAL).valid_for == timedelta(hours=1)
    # Same version, different text: the digest tells them apart.
    assert load_policy(GOOD.replace("3600", "7200")).digest != policy.digest


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ("medium: {approvers: 1", "medium: {approvers: 0", r"tiers.medium: approvers must be"),
        ("low: {auto_approve: true", "low: {auto_approve: yes please", r"auto_approve must be"),
        ("critical: {approvers: 3", "critical: {approvers: three", r"approvers must be an int"),
        ("12h", "12 fortnights", r"tiers.medium.valid_for must be a positive duration"),
        ("[approver, auditor]", "[admin]", r"\['admin'\] are not signing roles"),
        ("  critical:", "  extreme:", r"tiers.extreme: unknown risk tier"),
        ("version: p-7", "version: ''", r"'version' must be a non-empty string"),
        (
            "medium: {approvers: 1,",
            "medium: {approvers: 1, quorum: 2,",
            r"unknown keys \['quorum'\]",
        ),
    ],
)
def test_bad_policies_are_refused_naming_the_key(replace: str, by: str, message: str) -> None:
    assert replace in GOOD
    with pytest.raises(PolicyError, match=message):
        load_policy(GOOD.replace(replace, by), source="p.yaml")


def test_a_policy_file_that_is_missing_or_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy_file(tmp_path / "nope.yaml")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy("tiers: [", source="x")
