"""Reading a task request (an event's payload, a deployment run's parameters) as a task."""

from __future__ import annotations

from prefect import task

from quorum.domain.manifest import TaskSpec
from quorum.inputs.requests import TaskRequest, request_spec


@task(name="read-request", task_run_name="request · {request.task_id}")
def read_request_task(request: TaskRequest) -> TaskSpec:
    return request_spec(request)
