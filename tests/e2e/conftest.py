"""The whole platform for end-to-end tests: the five services as real processes on
the session's real Kafka and PostgreSQL, on free ports."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import E2E
from paved_shared.platform import Platform, ephemeral_specs


@pytest.fixture(scope="session")
def e2e(stack: Any) -> Iterator[E2E]:
    run_dir = Path(tempfile.mkdtemp(prefix="paved-e2e-"))
    base_env = {
        "PAVED_KAFKA_BOOTSTRAP": stack.bootstrap,
        "PAVED_DATABASE_URL": stack.dsn,
        "PAVED_ENVIRONMENT": "test",
        "PAVED_LOG_JSON": "false",
        "PAVED_VALIDATOR_EVIDENCE_DIR": str(run_dir / "evidence"),
        "PAVED_DEPLOYER_STOP_SERVERS_ON_EXIT": "true",
        # A deployment request for a version that never gets approved fails fast.
        "PAVED_DEPLOYER_APPROVAL_WAIT_S": "5",
    }
    platform = Platform(run_dir, base_env, ephemeral_specs(run_dir / "deployments"))
    try:
        platform.start_all()
        yield E2E(platform, stack.bootstrap, stack.dsn, run_dir / "artifacts")
    finally:
        platform.stop_all()


@pytest.fixture(scope="session")
def iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)
