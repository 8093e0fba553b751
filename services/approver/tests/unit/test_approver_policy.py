"""The builtin approval policy and the policy value's own rules."""

from __future__ import annotations

import pytest
from paved_approver.domain.policy import BUILTIN_POLICY, ApprovalPolicy, PolicyError, TierRule
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
    assert TierRule(0, ("qa",)).auto_approve is False


def test_rule_bounds_and_version_are_checked() -> None:
    with pytest.raises(PolicyError, match=r"between 0 and 100, got -1"):
        TierRule(-1)
    with pytest.raises(PolicyError, match=r"non-empty version"):
        ApprovalPolicy(version=" ", rules={t: TierRule(1) for t in RiskTier})


def test_policy_rules_cannot_be_changed_after_creation() -> None:
    with pytest.raises(TypeError):
        BUILTIN_POLICY.rules[RiskTier.HIGH] = TierRule(0)  # type: ignore[index]
