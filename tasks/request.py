"""Reading a task request (an event's payload, a deployment run's parameters) as a task."""

from __future__ import annotations

from prefect import get_run_logger, task

from quorum.domain.artifacts import result_key, to_json
from quorum.domain.events import task_result_event
from quorum.domain.manifest import TaskSpec
from quorum.domain.models import TaskResult, TaskStatus
from quorum.blocks.refs import open_store_ref
from quorum.prefect_api.events import emit
from quorum.inputs.requests import TaskRequest, request_spec


@task(name="read-request", task_run_name="request · {request.task_id}")
def read_request_task(request: TaskRequest) -> TaskSpec:
    return request_spec(request)


@task(name="refuse-request", task_run_name="refused · {spec.id}")
def refuse_request_task(spec: TaskSpec, batch_id: str, store_url: str, reason: str) -> TaskResult:
    """A request this deployment cannot serve: its `error` result.json and event, before anything runs."""
    key = result_key(batch_id, spec.id)
    result = TaskResult(batch_id=batch_id, task_id=spec.id, repo=spec.repo, status=TaskStatus.error,
                        reason=f"refused: {reason}", artifacts={"result": key})  # fmt: skip
    open_store_ref(store_url).put_text(key, to_json(result))
    emit(task_result_event(result, store=store_url))
    get_run_logger().error("request %s refused: %s", spec.id, reason)
    return result
