"""The validation steps, their order, the skip rule and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from paved_schemas.events import CheckOutcome, ValidationCheck

SIZE = "size"
DIGEST = "digest"
SIGNATURE = "signature"
FORMAT = "format"
SCAN = "scan"
SMOKE_INFERENCE = "smoke_inference"
LATENCY = "latency"
METRICS = "metrics"
STEPS = (SIZE, DIGEST, SIGNATURE, FORMAT, SCAN, SMOKE_INFERENCE, LATENCY, METRICS)
"""Every check, in the order it runs; a failure skips all later ones."""

MAX_DETAIL_CHARS = 4000
_BAD = frozenset({CheckOutcome.FAILED, CheckOutcome.ERROR})


def digest_problem(registered: str, observed: str) -> str | None:
    """Why the fetched bytes do not match the registered digest (None when they do)."""
    if observed == registered:
        return None
    return f"fetched artifact has digest {observed}, but the registered digest is {registered}"


@dataclass
class CheckLog:
    """The checks of one validation, in order; once one fails the rest are skipped."""

    checks: list[ValidationCheck] = field(default_factory=list)

    @property
    def stopped(self) -> bool:
        """True once a check failed or errored: later steps must not run."""
        return any(c.outcome in _BAD for c in self.checks)

    def record(self, name: str, outcome: CheckOutcome, detail: str, duration_ms: float) -> None:
        if detail and len(detail) > MAX_DETAIL_CHARS:
            detail = detail[: MAX_DETAIL_CHARS - 3] + "..."
        self.checks.append(
            ValidationCheck(
                name=name,
                outcome=outcome,
                detail=detail or None,
                duration_ms=max(0, round(duration_ms)),
            )
        )

    def skip_rest(self) -> None:
        """Mark every step not yet recorded as skipped, naming the check that stopped them."""
        done = {c.name for c in self.checks}
        culprit = next((c.name for c in self.checks if c.outcome in _BAD), None)
        why = f"skipped because {culprit} did not pass" if culprit else "skipped"
        for name in STEPS:
            if name not in done:
                self.record(name, CheckOutcome.SKIPPED, why, 0)

    @property
    def passed(self) -> bool:
        """The verdict: every step ran and none failed or errored."""
        return not self.stopped and {c.name for c in self.checks} >= set(STEPS)

    @property
    def reasons(self) -> list[str]:
        """`<check>: <detail>` for every failed or errored check."""
        return [
            f"{c.name}: {c.detail or c.outcome.value}" for c in self.checks if c.outcome in _BAD
        ]
