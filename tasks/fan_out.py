"""One task of a batch as a run of the single-task deployment, on whichever worker picks it up."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from quorum.domain.artifacts import task_prefix
from quorum.domain.manifest import TaskSpec
from quorum.domain.models import TaskResult, TaskStatus
from quorum.domain.roster import Roster
from quorum.store.stores import ArtifactNotFound
from quorum.domain.policy import Policy
from quorum.tasks.store import store_for


def deployment_parameters(
    spec: TaskSpec, roster: Roster, policy: Policy, store_url: str, batch_id: str, run_started_at: float
) -> dict:
    """Parameters of `quorum.flows.request.task_request` for one batch task (paths must exist on the worker)."""
    return {
        "repo": spec.repo,
        "task": spec.task,
        "task_id": spec.id,
        "ref": spec.ref,
        "acceptance": spec.acceptance,
        "script": spec.script,
        "roster": roster.model_dump(mode="json"),
        "policy": policy.model_dump(mode="json"),
        "store_url": store_url,
        "batch_id": batch_id,
        "run_started_at": run_started_at,
        "check_limits": False,
    }


def result_of_run(flow_run: FlowRun, spec: TaskSpec, batch_id: str, store_url: str, deployment: str) -> TaskResult:
    """The task's result.json once its run completed; otherwise an `error` result saying how the run ended."""
    key = f"{task_prefix(batch_id, spec.id)}/result.json"
    state = flow_run.state
    if state is not None and state.is_completed():
        try:
            return TaskResult.model_validate_json(store_for(store_url).get_text(key))
        except ArtifactNotFound:
            reason = f"run {flow_run.name} of {deployment} completed but wrote no {key} (is the store shared?)"
    else:
        how = f"{state.type.value.lower()}: {state.message or state.name}" if state else "never reported a state"
        reason = f"run {flow_run.name} of {deployment} did not finish ({how})"
    return TaskResult(
        batch_id=batch_id, task_id=spec.id, repo=spec.repo, status=TaskStatus.error, reason=reason,
        artifacts={"result": key},
    )  # fmt: skip


@task(name="dispatch", task_run_name="dispatch · {spec.id}", cache_policy=NONE)
def run_task_deployment(
    deployment: str,
    spec: TaskSpec,
    roster: Roster,
    policy: Policy,
    store_url: str,
    batch_id: str,
    run_started_at: float,
    timeout_s: float,
) -> TaskResult:
    flow_run = run_deployment(
        name=deployment,
        parameters=deployment_parameters(spec, roster, policy, store_url, batch_id, run_started_at),
        timeout=timeout_s,
        as_subflow=True,
        tags=["quorum", f"batch:{batch_id}"],
    )
    return result_of_run(flow_run, spec, batch_id, store_url, deployment)
