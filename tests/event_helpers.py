"""Reading events back from a Prefect server in tests (the server persists them asynchronously)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from prefect.client.orchestration import get_client
from prefect.events import Event
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter


def read_events(name: str, *, resource_id: str | None = None, since: datetime | None = None) -> list[Event]:
    since = since or datetime.now(timezone.utc) - timedelta(hours=1)
    event_filter = EventFilter(
        occurred=EventOccurredFilter(since=since, until=datetime.now(timezone.utc) + timedelta(minutes=1)),
        event=EventNameFilter(name=[name]),
        resource=EventResourceFilter(id=[resource_id]) if resource_id else None,
    )
    with get_client(sync_client=True) as client:
        return list(client.read_events(filter=event_filter, limit=50).events)


def wait_for_events(
    name: str, *, count: int = 1, resource_id: str | None = None, since: datetime | None = None, timeout: float = 60
) -> list[Event]:
    """Events named `name` (and on `resource_id`) once at least `count` are stored, or what there is at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        found = read_events(name, resource_id=resource_id, since=since)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.5)
