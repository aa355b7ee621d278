"""Waiting on deployment runs a batch sent out (its shards): states, deadlines, and heartbeats of live runs.

One poller watches every run of a batch (one read per poll for all of them), instead of one
thread blocking in `run_deployment` per run. A run ends for the batch when

* it reaches a final state (completed, failed, crashed, cancelled);
* it has run longer than its deadline: it is cancelled (its worker stops it) and reported;
* it is *lost*: running, but no flow-run heartbeat (`prefect.flow-run.heartbeat`, sent by the run's
  own process every `PREFECT_FLOWS_HEARTBEAT_FREQUENCY` seconds) for `stale_after_s`, as when its
  worker's machine died. Prefect itself leaves such a run RUNNING for ever; the poller marks it
  CRASHED, so the UI tells the truth and the batch can report its unfinished tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

DEFAULT_HEARTBEAT_S = 180  # Prefect's default PREFECT_FLOWS_HEARTBEAT_FREQUENCY
MISSED_HEARTBEATS = 3
HEARTBEAT_ENV = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"
PAGE = 200  # runs per read (the API's default page)


@dataclass(frozen=True)
class RunEnded:
    """A watched run, as it was when the batch stopped waiting; `why` is '' for a final state."""

    flow_run: Any  # prefect.client.schemas.objects.FlowRun
    why: str = ""


def deployment_heartbeat_s(deployment: Any) -> int:
    """The heartbeat interval runs of this deployment get (its job variables' env, else Prefect's default)."""
    env = (getattr(deployment, "job_variables", None) or {}).get("env") or {}
    try:
        return max(30, int(env.get(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S)))
    except (TypeError, ValueError):
        return DEFAULT_HEARTBEAT_S


def online_workers(client: Any, work_pool: str) -> int:
    """Workers of a pool the server counts as online (they polled within their heartbeat window)."""
    from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus

    workers = client.read_workers_for_work_pool(
        work_pool, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"]))
    )
    return len(workers)


def _last_heartbeat(client: Any, run: Any) -> datetime | None:
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

    since = run.start_time or run.created
    page = client.read_events(
        filter=EventFilter(
            occurred=EventOccurredFilter(since=since),
            event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
            resource=EventResourceFilter(id=[f"prefect.flow-run.{run.id}"]),
        ),
        limit=1,
    )
    return page.events[0].occurred if page.events else None


def watch_runs(
    run_ids: list[UUID],
    *,
    deadline_s: dict[UUID, float],
    stale_after_s: float,
    poll_s: float = 5.0,
    heartbeat_check_s: float = 15.0,
    client_factory: Callable[[], Any] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> Iterator[RunEnded]:
    """Yield each run once, as it ends for the batch (see the module docstring)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.states import Cancelling, Crashed

    client = (client_factory or (lambda: get_client(sync_client=True)))()
    with client:
        pending = set(run_ids)
        checked_heartbeats = 0.0
        while pending:
            ids = sorted(pending)
            runs = [
                run
                for start in range(0, len(ids), PAGE)
                for run in client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids[start : start + PAGE])), limit=PAGE
                )
            ]
            check_heartbeats = time.monotonic() - checked_heartbeats >= heartbeat_check_s
            if check_heartbeats:
                checked_heartbeats = time.monotonic()
            for run in runs:
                state = run.state
                if state is not None and state.is_final():
                    pending.discard(run.id)
                    yield RunEnded(run)
                    continue
                if state is None or not state.is_running() or run.start_time is None:
                    continue  # scheduled or pending: waiting for a worker is not a fault
                ran_s = (now() - run.start_time).total_seconds()
                if ran_s > deadline_s.get(run.id, float("inf")):
                    client.set_flow_run_state(run.id, Cancelling(message=f"quorum: over its deadline of {deadline_s[run.id]:.0f}s"), force=True)
                    pending.discard(run.id)
                    yield RunEnded(run, f"still running after {ran_s:.0f}s (deadline {deadline_s[run.id]:.0f}s); cancelled")
                    continue
                if check_heartbeats and ran_s > stale_after_s:
                    beat = _last_heartbeat(client, run)
                    silent_s = (now() - (beat or run.start_time)).total_seconds()
                    if silent_s > stale_after_s:
                        why = f"lost: no heartbeat for {silent_s:.0f}s (its worker or machine died?)"
                        client.set_flow_run_state(run.id, Crashed(message=f"quorum: {why}"), force=True)
                        pending.discard(run.id)
                        yield RunEnded(run, why)
            if pending:
                time.sleep(poll_s)


def rename_flow_run(flow_run_id: Any, name: str) -> None:
    """Give a running flow run its name once it is known (a nightly run learns its batch id from its manifest)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run_id, name=name)
