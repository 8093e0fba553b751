"""The whole platform for end-to-end and security tests: the five services as real
processes on a Kafka and PostgreSQL of their own (free ports), so the platform starts
from empty topics exactly as `make up` does, not from the history other test modules
left behind. Each service runs as its own Kafka principal under the ACLs."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import E2E
from paved_shared.devstack import DevStack
from paved_shared.kafka_acl import SecretsDir
from paved_shared.platform import Platform, ephemeral_specs, provision_database_roles


@pytest.fixture(scope="session")
def e2e_stack(stack: Any) -> Iterator[DevStack]:
    """A dedicated Kafka + PostgreSQL for the platform under test.

    Its principals have the same generated passwords as the session stack's (one secrets
    folder), so test code reading topics as the administrator works on both.
    """
    run_dir = Path(tempfile.mkdtemp(prefix="paved-e2e-stack-"))
    os.chmod(run_dir, 0o755)  # the postgres user must enter it
    shared_kafka = DevStack.from_env().kafka
    shared_kafka.fetch()
    dev = DevStack.ephemeral(run_dir)
    dev.kafka.secrets_dir = stack.secrets_dir
    dev.kafka.libs.symlink_to(shared_kafka.libs, target_is_directory=True)
    try:
        dev.up()
        yield dev
    finally:
        dev.down()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def e2e(e2e_stack: DevStack) -> Iterator[E2E]:
    stack = e2e_stack.env()
    bootstrap, dsn = stack["PAVED_KAFKA_BOOTSTRAP"], stack["PAVED_DATABASE_URL"]
    run_dir = Path(tempfile.mkdtemp(prefix="paved-e2e-"))
    base_env = {
        "PAVED_KAFKA_BOOTSTRAP": bootstrap,
        "PAVED_DATABASE_URL": dsn,
        "PAVED_ENVIRONMENT": "test",
        "PAVED_LOG_JSON": "false",
        "PAVED_VALIDATOR_EVIDENCE_DIR": str(run_dir / "evidence"),
        "PAVED_DEPLOYER_STOP_SERVERS_ON_EXIT": "true",
        # A deployment request for a version that never gets approved fails fast.
        "PAVED_DEPLOYER_APPROVAL_WAIT_S": "5",
    }
    # Every service runs as its own Kafka principal, under the ACLs of the ownership map.
    platform = Platform(
        run_dir,
        base_env,
        ephemeral_specs(run_dir / "deployments"),
        kafka_secrets=e2e_stack.kafka.secrets,
        # Migrating as the owner role, serving as each service's own runtime role.
        service_env=provision_database_roles(
            dsn, SecretsDir(e2e_stack.kafka.run_dir / "secrets" / "postgres")
        ),
    )
    try:
        platform.start_all()
        yield E2E(platform, bootstrap, dsn, run_dir / "artifacts", e2e_stack.kafka.secrets)
    finally:
        platform.stop_all()


@pytest.fixture(scope="session")
def iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)
