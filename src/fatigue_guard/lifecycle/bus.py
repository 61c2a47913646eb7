"""An explicit message bus for the model lifecycle's events.

A promotion must also write the SQL audit row and publish the phones' edge bundle. Rather than
the gate calling each of them, or anything registering itself in a module-global list, whoever
starts a process builds one :class:`MessageBus`, subscribes the handlers that process needs, and
hands the bus to the code that moves aliases. What runs after a promotion is then visible at the
one place a process is wired (:func:`fatigue_guard.lifecycle.wiring.lifecycle_bus`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

EventT = TypeVar("EventT")
Handler = Callable[[Any], None]


class MessageBus:
    """Deliver each published event to the handlers subscribed to its type, in order.

    A handler that raises propagates to the publisher: the event has happened (an alias has
    moved), but whoever caused it must learn that a consequence failed. Handlers that must never
    fail the publisher catch their own errors.
    """

    def __init__(self) -> None:
        self._handlers: defaultdict[type, list[Handler]] = defaultdict(list)

    def subscribe(self, event_type: type[EventT], handler: Callable[[EventT], None]) -> None:
        self._handlers[event_type].append(handler)

    def publish(self, event: object) -> None:
        for handler in list(self._handlers.get(type(event), ())):
            handler(event)
