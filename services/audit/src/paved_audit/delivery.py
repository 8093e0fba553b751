"""Give audit handlers the Kafka record they are applied to.

The shared ``EventConsumer`` hands a handler the parsed envelope, which drops
attributes this release does not know (``extra="ignore"``). The audit trail must
keep the envelope exactly as received, and its Kafka coordinates, so this subclass
exposes the current ``Delivery`` through a context variable for the duration of
``process`` (the handler runs inside it, in the same task).
"""

from __future__ import annotations

from contextvars import ContextVar

from paved_shared.consumer import EventConsumer, Handler
from paved_shared.deadletter import Delivery

_current_delivery: ContextVar[Delivery | None] = ContextVar("paved_audit_delivery", default=None)


class DeliveryAwareConsumer(EventConsumer):
    """An ``EventConsumer`` whose handlers can call ``current_delivery()``."""

    async def process(
        self, delivery: Delivery, handler: Handler, wanted: frozenset[str] | None
    ) -> str:
        """Like ``EventConsumer.process``, with ``delivery`` visible to the handler."""
        token = _current_delivery.set(delivery)
        try:
            return await super().process(delivery, handler, wanted)
        finally:
            _current_delivery.reset(token)


def current_delivery() -> Delivery:
    """The Kafka record being processed; RuntimeError outside ``DeliveryAwareConsumer``."""
    delivery = _current_delivery.get()
    if delivery is None:
        raise RuntimeError(
            "no current Kafka delivery: audit handlers must run under DeliveryAwareConsumer"
        )
    return delivery
