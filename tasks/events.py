"""Events out, one task each: a task's outcome and a batch's start and end, for automations."""

from __future__ import annotations

from prefect import task

from quorum.domain import events
from quorum.domain.models import BatchReport, TaskResult
from quorum.prefect_api.events import emit


@task(name="emit-task-event", task_run_name="event · {result.task_id} · {result.status.value}")
def emit_task_event_task(result: TaskResult, store_url: str) -> str:
    event = events.task_result_event(result, store=store_url)
    emit(event)
    return event.event


@task(name="emit-batch-started", task_run_name="event · {batch_id} · started")
def emit_batch_started_task(batch_id: str, tasks: int, roster: str, store_url: str, mode: str) -> str:
    event = events.batch_started_event(batch_id, tasks=tasks, roster=roster, store=store_url, mode=mode)
    emit(event)
    return event.event


@task(name="emit-batch-completed", task_run_name="event · {report.batch_id} · completed")
def emit_batch_completed_task(report: BatchReport) -> str:
    event = events.batch_completed_event(report)
    emit(event)
    return event.event
