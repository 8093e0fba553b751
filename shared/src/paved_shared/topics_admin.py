"""Create every topic of the contract: ``python -m paved_shared.topics_admin``.

Runs as the cluster administrator (``PAVED_KAFKA_SASL_*``, else the generated admin
password in ``PAVED_KAFKA_SECRETS_DIR``); services cannot create topics themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

from paved_schemas import topics

from paved_shared.kafka import KafkaAuth
from paved_shared.kafka_acl import SecretsDir, create_topics


def main() -> int:
    bootstrap = os.environ.get(
        "PAVED_KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('PAVED_KAFKA_PORT', '9092')}"
    )
    admin = KafkaAuth.from_env()
    if admin.username is None:
        store = Path(os.environ.get("PAVED_KAFKA_SECRETS_DIR", ".run/secrets/kafka"))
        admin = SecretsDir(store).auth("admin")
    created = create_topics(bootstrap, admin)
    print(f"topics: {len(created)} created, {len(topics.ALL_TOPICS) - len(created)} already there")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
