"""A fanned-out batch: its shards as runs of the shard deployment, on whichever workers pick them up."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from quorum.domain.artifacts import result_key
from quorum.domain.models import TaskResult, TaskStatus
from quorum.domain.run import RunContext
from quorum.domain.shards import Shard
from quorum.store import ArtifactStore
from quorum.store.batches import finished_results


def shard_parameters(shard: Shard, run: RunContext, max_parallel: int, budget_account: str | None) -> dict:
    """Parameters of `quorum.flows.batch.batch_shard` for one shard: references and ids, never task specs.

    The shard run reads the batch's inputs from the same store (`store_url`, which every worker must
    reach) and loads its tasks by id. `budget_account` names the batch's spend account on the Prefect
    server, so the shard draws on the same balance as every other shard of the batch.
    """
    return {
        "store_url": run.store_url,
        "batch_id": run.batch_id,
        "task_ids": list(shard.task_ids),
        "shard": shard.label,
        "max_parallel": max_parallel,
        "run_started_at": run.started_at,
        "budget_account": budget_account,
    }


@task(name="deployment-capacity", task_run_name="workers · {deployment}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def deployment_workers_task(deployment: str) -> tuple[int, int]:
    """(online workers of the deployment's work pool, heartbeat seconds of its runs)."""
    from prefect.client.orchestration import get_client

    from quorum.prefect_api.runs import deployment_heartbeat_s, online_workers

    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        workers = online_workers(client, found.work_pool_name) if found.work_pool_name else 0
        return workers, deployment_heartbeat_s(found)


@task(name="dispatch", task_run_name="dispatch · {shard.label}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def dispatch_shard_task(deployment: str, shard: Shard, parameters: dict, idempotency_key: str) -> FlowRun:
    """Create the shard's run (a subflow of the batch in the UI) and return at once; the batch watches them all."""
    return run_deployment(
        name=deployment,
        parameters=parameters,
        timeout=0,
        as_subflow=True,
        tags=["quorum", f"batch:{parameters['batch_id']}", "shard"],
        idempotency_key=idempotency_key,
    )


def run_ending(flow_run: FlowRun, why: str = "") -> str:
    """How a shard's run ended, as the reason its unfinished tasks get (`why`: the watcher's own verdict)."""
    state = flow_run.state
    if why:
        return why
    if state is not None and state.is_completed():
        return "completed but wrote no result for it (is the store shared by the workers?)"
    if state is None:
        return "never reported a state"
    return f"did not finish ({state.type.value.lower()}: {state.message or state.name})"


def shard_outcome(
    run_name: str,
    how: str,
    shard: Shard,
    batch_id: str,
    found: dict[str, TaskResult],
    expected: dict[str, tuple[str, str]],
    deployment: str,
) -> list[TaskResult]:
    """Every task of the shard: its result.json when the shard wrote one, else an `error` saying how the run ended.

    `expected` gives each task's (repository, spec digest): a result.json with another digest is an
    earlier run's, for other inputs, and does not count. A task without a result never finished (its
    worker died, the run crashed or was cancelled, or the store is not shared): it is reported, never
    dropped, and a resumed batch runs it again.
    """
    results = []
    for task_id in shard.task_ids:
        repo, digest = expected[task_id]
        result = found.get(task_id)
        if result is not None and result.spec_digest == digest:
            results.append(result)
            continue
        lost = TaskResult(
            batch_id=batch_id, task_id=task_id, repo=repo, status=TaskStatus.error, spec_digest=digest,
            reason=f"{shard.label} (run {run_name} of {deployment}) {how}",
            artifacts={"result": result_key(batch_id, task_id)},
        )  # fmt: skip
        results.append(lost)
    return results


@task(name="collect-shard", task_run_name="collect · {shard.label}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def collect_shard_task(
    store: ArtifactStore,
    run_name: str,
    how: str,
    shard: Shard,
    batch_id: str,
    expected: dict[str, tuple[str, str]],
    deployment: str,
) -> list[TaskResult]:
    """A finished (or lost) shard's results from the store, fetched concurrently; `how` its run ended."""
    found = {result.task_id: result for result in finished_results(store, batch_id, set(shard.task_ids))}
    return shard_outcome(run_name, how, shard, batch_id, found, expected, deployment)
