"""Sending quorum's events to Prefect (the events themselves are built in `quorum.domain.events`)."""

from __future__ import annotations

from typing import Any

from quorum.domain.events import QuorumEvent

def emit(event: QuorumEvent) -> Any:
    """Send the event to Prefect; returns the emitted `prefect.events.Event` (None when events are off)."""
    from prefect.events import emit_event

    return emit_event(
        event=event.event,
        resource=event.resource,
        payload=event.payload,
        related=event.related or None,
    )


def post_event(event: QuorumEvent) -> str:
    """Send the event now and wait for the server to accept it; returns the event id, raises on failure.

    For callers that must know the event arrived (the webhook receiver answers GitHub with an error,
    so GitHub can redeliver, instead of dropping the event). Flows use `emit()`.
    """
    from prefect.client.orchestration import get_client
    from prefect.events import Event

    prefect_event = Event(event=event.event, resource=event.resource, payload=event.payload, related=event.related)
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/events", json=[prefect_event.model_dump(mode="json")])
        response.raise_for_status()
    return str(prefect_event.id)
