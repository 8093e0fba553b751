"""The approval policy: what each risk tier needs before a model version is approved.

A policy is versioned data (YAML, see ``policies/default.yaml``): per risk tier, how
many distinct approvers, which roles may sign, which roles must be among the signers,
whether the tier is approved automatically, and how long an approval stays valid.
Every case records the policy version (and the digest of its text) it was opened under.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from paved_schemas.events import RiskTier
from paved_shared.auth import Role


class PolicyError(ValueError):
    """A policy definition is inconsistent; the message names the offending rule."""


SIGNING_ROLES = frozenset(r.value for r in Role) - {Role.ADMIN.value}
"""Roles a policy may let sign. Never admin: an administrator acting as such never approves."""


@dataclass(frozen=True)
class TierRule:
    """What one risk tier requires: distinct approvers and roles, or auto-approval."""

    required_approvals: int
    required_roles: tuple[str, ...] = ()
    """Roles that must each be held by at least one of the approving signers."""
    eligible_roles: tuple[str, ...] = (Role.APPROVER.value,)
    """A signer must hold at least one of these roles."""
    valid_for: timedelta | None = None
    """How long a granted approval stays valid; None: it does not expire."""

    def __post_init__(self) -> None:
        if not 0 <= self.required_approvals <= 100:
            raise PolicyError(
                f"required_approvals must be between 0 and 100, got {self.required_approvals}"
            )
        for name, roles in (("signer_roles", self.eligible_roles),
                            ("required_roles", self.required_roles)):  # fmt: skip
            bad = [r for r in roles if r not in SIGNING_ROLES]
            if bad:
                raise PolicyError(
                    f"{name} {bad} are not signing roles; use some of {sorted(SIGNING_ROLES)}"
                )
        if not self.eligible_roles:
            raise PolicyError("signer_roles must name at least one role")
        if self.valid_for is not None and self.valid_for.total_seconds() <= 0:
            raise PolicyError(f"valid_for must be positive, got {self.valid_for}")

    @property
    def auto_approve(self) -> bool:
        """A tier that needs no approver is approved as soon as the case opens."""
        return self.required_approvals == 0 and not self.required_roles


@dataclass(frozen=True)
class ApprovalPolicy:
    """A versioned mapping from risk tier to the rule that applies to it."""

    version: str
    rules: Mapping[RiskTier, TierRule] = field(default_factory=dict)
    digest: str | None = None
    """``sha256:`` of the YAML text it was loaded from (None for a policy built in code)."""

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
"""A policy in code for unit tests; processes load ``policies/default.yaml`` or a file."""


# --------------------------------------------------------------------------- YAML

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TIER_KEYS = {"auto_approve", "approvers", "signer_roles", "required_roles", "valid_for"}


def parse_duration(value: Any, where: str) -> timedelta | None:
    """``30d``, ``12h``, ``45m``, ``90s``, ``2w``, seconds as an int, or null (no expiry)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    m = _DURATION.match(str(value)) if isinstance(value, str) else None
    if m is None or int(m.group(1)) == 0:
        raise PolicyError(
            f"{where} must be a positive duration like 90d, 12h, 30m, 45s or seconds; got {value!r}"
        )
    return timedelta(seconds=int(m.group(1)) * _UNIT_S[m.group(2)])


def _roles(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise PolicyError(f"{where} must be a list of role names, got {value!r}")
    return tuple(value)


def policy_from_mapping(
    doc: Any, *, digest: str | None = None, source: str = "policy"
) -> ApprovalPolicy:
    """Build a policy from parsed YAML; ``PolicyError`` names the file and the bad key."""
    if not isinstance(doc, dict):
        raise PolicyError(f"{source}: expected a mapping with 'version' and 'tiers'")
    unknown = set(doc) - {"version", "tiers", "description"}
    if unknown:
        raise PolicyError(f"{source}: unknown keys {sorted(unknown)}")
    version = doc.get("version")
    if not isinstance(version, str | int) or not str(version).strip():
        raise PolicyError(f"{source}: 'version' must be a non-empty string, got {version!r}")
    tiers = doc.get("tiers")
    if not isinstance(tiers, dict):
        raise PolicyError(f"{source}: 'tiers' must map each risk tier to its rule")
    rules: dict[RiskTier, TierRule] = {}
    for name, spec in tiers.items():
        where = f"{source}: tiers.{name}"
        try:
            tier = RiskTier(name)
        except ValueError:
            raise PolicyError(
                f"{where}: unknown risk tier; use {[t.value for t in RiskTier]}"
            ) from None
        rules[tier] = _tier_rule(spec, where)
    return ApprovalPolicy(version=str(version), rules=rules, digest=digest)


def _tier_rule(spec: Any, where: str) -> TierRule:
    if not isinstance(spec, dict):
        raise PolicyError(f"{where} must be a mapping")
    bad = set(spec) - _TIER_KEYS
    if bad:
        raise PolicyError(f"{where}: unknown keys {sorted(bad)}; known {sorted(_TIER_KEYS)}")
    auto = spec.get("auto_approve", False)
    if not isinstance(auto, bool):
        raise PolicyError(f"{where}.auto_approve must be true or false, got {auto!r}")
    approvers = spec.get("approvers", 0 if auto else None)
    if not isinstance(approvers, int) or isinstance(approvers, bool):
        raise PolicyError(f"{where}.approvers must be an integer, got {approvers!r}")
    if auto and approvers != 0:
        raise PolicyError(f"{where}: auto_approve needs approvers: 0, got {approvers}")
    if not auto and approvers < 1:
        raise PolicyError(f"{where}: approvers must be at least 1 unless auto_approve")
    signer_roles = spec.get("signer_roles", [Role.APPROVER.value])
    try:
        return TierRule(
            required_approvals=approvers,
            required_roles=_roles(spec.get("required_roles"), f"{where}.required_roles"),
            eligible_roles=_roles(signer_roles, f"{where}.signer_roles"),
            valid_for=parse_duration(spec.get("valid_for"), f"{where}.valid_for"),
        )
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc}") from None


def load_policy(text: str, *, source: str = "policy") -> ApprovalPolicy:
    """Parse a YAML policy; its digest is the SHA-256 of the exact text."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from exc
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return policy_from_mapping(doc, digest=digest, source=source)


def load_policy_file(path: Path | None) -> ApprovalPolicy:
    """The policy in ``path``, or the packaged ``policies/default.yaml`` when None."""
    if path is None:
        text = (resources.files("paved_approver") / "policies" / "default.yaml").read_text()
        return load_policy(text, source="policies/default.yaml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {str(path)!r}: {exc.strerror}") from exc
    return load_policy(text, source=str(path))
