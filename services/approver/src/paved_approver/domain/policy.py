"""The approval policy: what each risk tier needs before a model version is approved.

A policy is a small immutable value. The builtin one is the walking skeleton's; a
later issue loads the same shape from YAML, and every event records which version
of the policy was applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from paved_schemas.events import RiskTier


class PolicyError(ValueError):
    """A policy definition is inconsistent; the message names the offending rule."""


@dataclass(frozen=True)
class TierRule:
    """What one risk tier requires: distinct approvers and roles, or auto-approval."""

    required_approvals: int
    required_roles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.required_approvals <= 100:
            raise PolicyError(
                f"required_approvals must be between 0 and 100, got {self.required_approvals}"
            )

    @property
    def auto_approve(self) -> bool:
        """A tier that needs no approver is approved as soon as the case opens."""
        return self.required_approvals == 0 and not self.required_roles


@dataclass(frozen=True)
class ApprovalPolicy:
    """A versioned mapping from risk tier to the rule that applies to it."""

    version: str
    rules: Mapping[RiskTier, TierRule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.version.strip():
            raise PolicyError("a policy needs a non-empty version")
        missing = [tier.value for tier in RiskTier if tier not in self.rules]
        if missing:
            raise PolicyError(f"policy {self.version!r} has no rule for risk tiers {missing}")
        # The event contract allows auto-approval for the lowest tier only.
        auto = [t.value for t, r in self.rules.items() if r.auto_approve and t is not RiskTier.LOW]
        if auto:
            raise PolicyError(
                f"policy {self.version!r} auto-approves risk tiers {auto}; only 'low' may be"
            )
        object.__setattr__(self, "rules", MappingProxyType(dict(self.rules)))

    def rule_for(self, tier: RiskTier) -> TierRule:
        """The rule for ``tier``."""
        return self.rules[tier]


BUILTIN_POLICY = ApprovalPolicy(
    version="builtin-1",
    rules={
        RiskTier.LOW: TierRule(required_approvals=0),
        RiskTier.MEDIUM: TierRule(required_approvals=1),
        RiskTier.HIGH: TierRule(required_approvals=2),
        RiskTier.CRITICAL: TierRule(required_approvals=2),
    },
)
"""The walking skeleton's policy. Roles stay empty until approvers carry verified role
claims (OIDC): a role requirement nobody can check would be a promise, not a control."""
