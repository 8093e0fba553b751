"""Generate the AsyncAPI 3 documents of the services from their faststream apps.

``python -m paved_cli.asyncapi`` writes ``schemas/asyncapi/<service>.json``;
``--check`` writes nothing and fails when a committed document is stale.
Building a runtime does no I/O, so this needs no Kafka or database.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paved_shared.service import ServiceRuntime
from prometheus_client import CollectorRegistry

OUT_DIR = Path(__file__).resolve().parents[4] / "schemas" / "asyncapi"
# The documents must not depend on who generates them: pin what settings would read.
# Every Paved broker takes SCRAM over TLS (ADR 0013): the documents say so; the principal
# named here is only what the generator builds the broker with (no secret is written).
FIXED: dict[str, Any] = {
    "kafka_bootstrap": "kafka:9093",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "paved-service",
    "kafka_sasl_password": "not-a-secret-documentation-only",
    "kafka_sasl_password_file": None,
}


def _registry() -> ServiceRuntime:
    from paved_registry.bootstrap import create_runtime
    from paved_registry.settings import RegistrySettings

    return create_runtime(RegistrySettings(**FIXED), metrics_registry=CollectorRegistry())


def _validator() -> ServiceRuntime:
    from paved_validator.bootstrap import create_runtime
    from paved_validator.settings import ValidatorSettings

    return create_runtime(ValidatorSettings(**FIXED), metrics_registry=CollectorRegistry())


def _approver() -> ServiceRuntime:
    from paved_approver.bootstrap import create_runtime
    from paved_approver.settings import ApproverSettings

    return create_runtime(ApproverSettings(**FIXED), metrics_registry=CollectorRegistry())


def _deployer_local() -> ServiceRuntime:
    from paved_deployer.bootstrap import create_runtime
    from paved_deployer.settings import DeployerSettings

    runtime, _ = create_runtime(
        DeployerSettings(deployer_target="local", **FIXED), metrics_registry=CollectorRegistry()
    )
    return runtime


def _audit() -> ServiceRuntime:
    from paved_audit.bootstrap import create_runtime
    from paved_audit.settings import AuditSettings

    return create_runtime(AuditSettings(**FIXED), metrics_registry=CollectorRegistry())


SERVICES: dict[str, Callable[[], ServiceRuntime]] = {
    "registry": _registry,
    "validator": _validator,
    "approver": _approver,
    "deployer-local": _deployer_local,
    "audit": _audit,
}


def render(document: dict[str, Any]) -> str:
    """Deterministic JSON text of a document."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def documents() -> dict[str, str]:
    """Every service's AsyncAPI document, rendered."""
    return {name: render(build().asyncapi()) for name, build in SERVICES.items()}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, text in documents().items():
        path = OUT_DIR / f"{name}.json"
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if check:
            stale.append(str(path))
        else:
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("stale AsyncAPI documents (run `make asyncapi`): " + ", ".join(stale))
        return 1
    print(f"AsyncAPI documents up to date in {OUT_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
