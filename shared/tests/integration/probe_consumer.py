"""A minimal real consumer process used by the crash tests.

``python probe_consumer.py BOOTSTRAP DSN SCHEMA TOPIC GROUP`` consumes TOPIC with the
shared idempotent consumer and records one ``effects`` row per applied event, until
it is killed. Failpoints come from ``PAVED_FAILPOINTS``.
"""

from __future__ import annotations

import asyncio
import sys

from paved_shared.consumer import EventConsumer
from paved_shared.db import create_pool
from paved_shared.kafka import make_broker
from paved_shared.logging import configure_logging
from paved_shared.testing import record_effect


async def main(bootstrap: str, dsn: str, schema: str, topic: str, group: str) -> None:
    configure_logging("probe-consumer", "INFO")
    pool = await create_pool(dsn, schema=schema, min_size=1, max_size=3)
    broker = make_broker(bootstrap, client_id="probe-consumer")
    EventConsumer(broker, pool, group).subscribe(topic, record_effect)
    await broker.start()
    print("probe consumer started", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
