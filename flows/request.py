"""One task on request: the entry point of the single-task deployment.

Runs from an event (`quorum.task.requested`, e.g. sent by the GitHub webhook receiver), from
`prefect deployment run`, or as one task of a batch that fans out over a work pool.
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run

from quorum.domain.budget import UNLIMITED
from quorum.domain.run import RunContext
from quorum.flows.pipeline import run_task_pipeline
from quorum.prefect_api.budget_ledger import PrefectSpendAccount
from quorum.prefect_api.states import same_outcome, state_for
from quorum.tasks.request import read_request_task, refuse_request_task
from quorum.tasks.store import open_store_task
from quorum.inputs.requests import TaskRequest
from quorum.domain.outcome_states import task_state_spec
from quorum.domain.roster import Roster, request_refusal
from quorum.store import default_store_url
from quorum.domain.policy import Policy
from quorum.tasks.limits import ensure_limits_task
from quorum.tasks.roster import check_roster_task, resolve_roster_task


def _run_name() -> str:
    params = flow_run.parameters or {}
    return str(params.get("task_id") or params.get("repo") or "request")


@flow(name="quorum-task-request", flow_run_name=_run_name, log_prints=True)
def task_request(
    repo: str,
    task: str,
    task_id: str | None = None,
    ref: str | None = None,
    acceptance: str | None = None,
    script: str | None = None,
    roster: Roster | str = "scripted",
    store_url: str | None = None,
    batch_id: str = "requests",
    max_rounds: int = 3,
    policy: Policy | None = None,
    run_started_at: float | None = None,
    check_limits: bool = True,
    budget_account: str | None = None,
) -> State:
    """One (repository, task) pair through the pipeline; the run ends in the task's outcome state (`Resolved`,
    `Escalated`, ...; quorum.domain.outcome_states) with the `TaskResult` as its result.

    `roster` is a shipped name, a file, `block:<name>` or a roster; the store defaults to $QUORUM_STORE,
    else `.quorum` in the working directory. `budget_account` names the spend account of the batch
    this task belongs to (set by a batch that fans out), so it draws on the batch's balance.
    """
    started = run_started_at or time.time()
    store_url = store_url or default_store_url()
    request = TaskRequest(
        repo=repo, task=task, task_id=task_id, ref=ref, acceptance=acceptance, script=script
    )  # fmt: skip
    spec = read_request_task(request)
    loaded = resolve_roster_task(roster) if isinstance(roster, str) else roster
    refusal = request_refusal(loaded, has_script=bool(spec.script))
    if refusal:  # fail fast: no workspace, no environment, no call; the request is still recorded as an error
        result = refuse_request_task(spec, batch_id, store_url, refusal)
        return state_for(task_state_spec(result.status, result.reason), result)
    if check_limits:  # a batch that fans out has done both already, for all its tasks
        check_roster_task(loaded)
        ensure_limits_task(loaded)
    account = PrefectSpendAccount(budget_account) if budget_account else UNLIMITED
    run = RunContext(batch_id=batch_id, store_url=store_url, store=open_store_task(store_url), started_at=started,
                     budget=account)  # fmt: skip
    return same_outcome(run_task_pipeline(spec, loaded, policy or Policy(max_rounds=max_rounds), run))
