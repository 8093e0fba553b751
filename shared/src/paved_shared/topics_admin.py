"""Create every topic of the contract: ``python -m paved_shared.topics_admin``."""

from __future__ import annotations

import asyncio
import os

from paved_schemas import topics

from paved_shared.kafka import ensure_topics


def main() -> int:
    bootstrap = os.environ.get(
        "PAVED_KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('PAVED_KAFKA_PORT', '9092')}"
    )
    created = asyncio.run(ensure_topics(bootstrap, topics.ALL_TOPICS))
    print(f"topics: {len(created)} created, {len(topics.ALL_TOPICS) - len(created)} already there")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
