"""One task of a batch as a run of the single-task deployment, on whichever worker picks it up."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from quorum.domain.artifacts import result_key
from quorum.domain.manifest import TaskSpec
from quorum.domain.models import TaskResult, TaskStatus
from quorum.domain.policy import Policy
from quorum.domain.roster import Roster
from quorum.domain.run import ArtifactWriter, RunContext
from quorum.store import ArtifactNotFound


def deployment_parameters(
    spec: TaskSpec, roster: Roster, policy: Policy, run: RunContext, budget_account: str | None
) -> dict:
    """Parameters of `quorum.flows.request.task_request` for one batch task (paths must exist on the worker).

    `budget_account` names the batch's spend account on the Prefect server, so the task draws on the
    same balance as every other task of the batch.
    """
    return {
        "repo": spec.repo,
        "task": spec.task,
        "task_id": spec.id,
        "ref": spec.ref,
        "acceptance": spec.acceptance,
        "script": spec.script,
        "roster": roster.model_dump(mode="json"),
        "policy": policy.model_dump(mode="json"),
        "store_url": run.store_url,
        "batch_id": run.batch_id,
        "run_started_at": run.started_at,
        "check_limits": False,
        "budget_account": budget_account,
    }


def result_of_run(
    flow_run: FlowRun, spec: TaskSpec, batch_id: str, store: ArtifactWriter, deployment: str
) -> TaskResult:
    """The task's result.json once its run completed; otherwise an `error` result saying how the run ended."""
    key = result_key(batch_id, spec.id)
    state = flow_run.state
    if state is not None and state.is_completed():
        try:
            return TaskResult.model_validate_json(store.get_text(key))
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
    run: RunContext,
    budget_account: str | None,
    timeout_s: float,
) -> TaskResult:
    flow_run = run_deployment(
        name=deployment,
        parameters=deployment_parameters(spec, roster, policy, run, budget_account),
        timeout=timeout_s,
        as_subflow=True,
        tags=["quorum", f"batch:{run.batch_id}"],
    )
    return result_of_run(flow_run, spec, run.batch_id, run.store, deployment)
