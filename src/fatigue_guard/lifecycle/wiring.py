"""Where a process decides what follows an alias move: the one place its bus is wired."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fatigue_guard.config import Settings
from fatigue_guard.lifecycle.bus import MessageBus
from fatigue_guard.lifecycle.deployments import DeploymentRecorder
from fatigue_guard.lifecycle.edge_publication import edge_publisher
from fatigue_guard.lifecycle.gate import DeploymentEvent
from fatigue_guard.storage.factory import build_storage


def lifecycle_bus(
    settings: Settings, *, audit: DeploymentRecorder | None, publish_edge: bool = True
) -> MessageBus:
    """A bus on which every deployment writes its SQL audit row (``audit``, when given) and
    then publishes the edge bundle (unless ``publish_edge=False``).

    The audit row comes first: it is the record an operator reads, and a failed edge export
    never raises (phones keep the previous bundle; ``export-edge`` repairs it).
    """
    bus = MessageBus()
    if audit is not None:
        bus.subscribe(DeploymentEvent, audit)
    if publish_edge:
        bus.subscribe(DeploymentEvent, edge_publisher(settings))
    return bus


@contextmanager
def operator_bus(settings: Settings) -> Iterator[tuple[MessageBus, DeploymentRecorder]]:
    """The bus of an alias move made by hand (a command): the audit row is best effort, since
    the alias has moved before it is written (the caller reads ``audit.failures`` and warns),
    and the edge bundle is published."""
    storage = build_storage(settings)
    audit = DeploymentRecorder(storage, settings, best_effort=True)
    try:
        yield lifecycle_bus(settings, audit=audit), audit
    finally:
        storage.close()
