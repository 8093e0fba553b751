"""Session-wide test infrastructure: a real Kafka and PostgreSQL on free ports.

The stack starts once, lazily, for the first test that asks for it, in a fresh
temporary folder, and is stopped at the end of the session. Set
``PAVED_TEST_KAFKA_BOOTSTRAP`` and ``PAVED_TEST_DATABASE_URL`` to reuse a running one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class StackInfo:
    """Where the test session's Kafka and PostgreSQL listen."""

    bootstrap: str
    dsn: str


@pytest.fixture(scope="session")
def stack() -> Iterator[StackInfo]:
    if (bs := os.environ.get("PAVED_TEST_KAFKA_BOOTSTRAP")) and (
        dsn := os.environ.get("PAVED_TEST_DATABASE_URL")
    ):
        yield StackInfo(bootstrap=bs, dsn=dsn)
        return
    from paved_shared.devstack import DevStack

    run_dir = Path(tempfile.mkdtemp(prefix="paved-test-"))
    # The postgres user (initdb refuses root) must be able to enter the folder.
    os.chmod(run_dir, 0o755)  # noqa: S103
    # Share the fetched Kafka jars with `make up` instead of downloading per session.
    shared_kafka = DevStack.from_env().kafka
    shared_kafka.fetch()
    dev = DevStack.ephemeral(run_dir)
    dev.kafka.libs.symlink_to(shared_kafka.libs, target_is_directory=True)
    try:
        dev.up()
        yield StackInfo(bootstrap=dev.kafka.bootstrap, dsn=dev.postgres.dsn)
    finally:
        dev.down()
        shutil.rmtree(run_dir, ignore_errors=True)
