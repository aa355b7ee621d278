"""A batch: every (repository, task) pair of a manifest through the pipeline, then one report.

Two ways to run the tasks, same results:
* in-process (default): each task is a subflow in this process, `max_parallel` at a time;
* fan-out: each task is a run of the single-task deployment (`fan_out_deployment`), so every
  worker of that deployment's work pool, on any machine, shares the batch.

A batch run again with the same batch id resumes: finished results in the store are kept and
every LLM call that had completed is served from Prefect's persisted cache.
"""

from __future__ import annotations

import contextvars
import time
from datetime import datetime, timezone
from concurrent.futures import ThreadPoolExecutor

from prefect import flow, task
from prefect.runtime import flow_run

from quorum.flows.pipeline import task_pipeline
from quorum.domain import budget as budgets
from quorum.domain.artifacts import slug, task_prefix
from quorum.store.stores import default_store_url
from quorum.domain.manifest import Manifest, TaskSpec
from quorum.domain.models import BatchReport, TaskResult, TaskStatus
from quorum.domain.resume import as_reused, reusable, spec_digest
from quorum.domain.results import build_batch_report, render_batch_markdown, result_row, ui_key
from quorum.domain.roster import Roster
from quorum.domain.policy import Policy
from quorum.tasks.events import emit_batch_completed_task, emit_batch_started_task
from quorum.tasks.fan_out import run_task_deployment
from quorum.tasks.limits import ensure_limits_task
from quorum.tasks.roster import check_roster_task, resolve_roster_task
from quorum.tasks.store import publish_markdown_task, publish_table_task, read_results_task, save_artifacts_task

DEFAULT_TASK_DEPLOYMENT = "quorum-task-request/on-request"


def dated_id(batch: str, when: datetime | None) -> str:
    day = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{batch}-{day:%Y-%m-%d}"


def _skipped(spec: TaskSpec, batch_id: str, reason: str) -> TaskResult:
    return TaskResult(batch_id=batch_id, task_id=spec.id, repo=spec.repo, status=TaskStatus.skipped, reason=reason)


@flow(name="quorum-batch", flow_run_name="{manifest.batch}", log_prints=True)
def batch_pipeline(
    manifest: Manifest,
    roster: Roster,
    store_url: str,
    policy: Policy | None = None,
    max_parallel: int = 3,
    batch_id: str | None = None,
    batch_budget_usd: float | None = None,
    fan_out_deployment: str | None = None,
    resume: bool = True,
    task_timeout_s: float = 3600.0,
) -> BatchReport:
    policy = policy or Policy()
    if policy.task_budget_usd is None and roster.task_budget_usd is not None:
        policy = policy.model_copy(update={"task_budget_usd": roster.task_budget_usd})
    if batch_budget_usd is None:
        batch_budget_usd = roster.batch_budget_usd
    batch_id = batch_id or manifest.batch
    started = time.time()
    check_roster_task(roster)
    ensure_limits_task(roster)
    mode = "fan-out" if fan_out_deployment else "in-process"
    emit_batch_started_task(batch_id, len(manifest.tasks), roster.name, store_url, mode)

    previous = read_results_task(store_url, batch_id, [spec.id for spec in manifest.tasks]) if resume else {}
    digests = {spec.id: spec_digest(spec, roster, policy) for spec in manifest.tasks}
    kept = {tid: as_reused(r) for tid, r in previous.items() if reusable(r, digests[tid])}
    budget = budgets.BatchBudget(batch_budget_usd, spent_usd=sum(r.cost.total.cost_usd for r in kept.values()))
    budgets.register_batch(batch_id, budget)

    def run_one(spec: TaskSpec) -> TaskResult:
        if spec.id in kept:
            return kept[spec.id]
        if budget.exhausted():
            return _skipped(spec, batch_id, f"budget: batch budget ${budget.limit_usd:.4f} spent before the task started")
        try:
            if fan_out_deployment:
                task_policy = policy
                remaining = budget.remaining_usd()
                if remaining is not None:  # the task's own process cannot see this batch's account
                    cap = min(remaining, policy.task_budget_usd or remaining)
                    task_policy = policy.model_copy(update={"task_budget_usd": cap})
                result = run_task_deployment(
                    fan_out_deployment, spec, roster, task_policy, store_url, batch_id, started, task_timeout_s
                )
                budget.charge(result.cost.total.cost_usd)
                return result
            return task_pipeline(spec, roster, policy, store_url, batch_id, run_started_at=started)
        except Exception as exc:  # a crashed subflow is reported, never dropped
            return TaskResult(
                batch_id=batch_id, task_id=spec.id, repo=spec.repo, status=TaskStatus.error,
                reason=f"pipeline crashed: {type(exc).__name__}: {exc}",
                artifacts={"result": f"{task_prefix(batch_id, spec.id)}/result.json"},
            )  # fmt: skip

    workers = max(1, max_parallel)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="quorum-task") as pool:
            # each task gets a copy of this flow's context, so its runs show as children of the batch
            futures = [pool.submit(contextvars.copy_context().run, run_one, spec) for spec in manifest.tasks]
            results = [future.result() for future in futures]
    finally:
        budgets.unregister_batch(batch_id)

    report = build_batch_report(
        batch_id=batch_id, started_at=started, finished_at=time.time(),
        roster=roster.name, store=store_url, results=results,
        mode=mode, batch_budget_usd=batch_budget_usd,
    )  # fmt: skip
    save_artifacts_task(store_url, {f"runs/{slug(batch_id)}/report.json": report.model_dump_json(indent=2)}, label="report")
    publish_table_task(ui_key("quorum", batch_id, "results"), [result_row(r) for r in results], f"quorum batch {batch_id}")
    publish_markdown_task(ui_key("quorum", batch_id, "summary"), render_batch_markdown(report), f"quorum batch {batch_id}")
    emit_batch_completed_task(report)
    return report


@task(name="load-manifest", task_run_name="manifest · {manifest_path}")
def load_manifest_task(manifest_path: str) -> Manifest:
    from quorum.inputs.manifests import load_manifest

    return load_manifest(manifest_path)


@flow(name="quorum-batch-from-files", flow_run_name="{manifest_path}", log_prints=True)
def batch_from_files(
    manifest_path: str = "examples/demo.yaml",
    roster: str = "scripted",
    store_url: str | None = None,
    batch_id: str | None = None,
    dated_batch_id: bool = False,
    max_rounds: int = 3,
    max_parallel: int = 3,
    task_budget_usd: float | None = None,
    batch_budget_usd: float | None = None,
    fan_out: bool = False,
    task_deployment: str = DEFAULT_TASK_DEPLOYMENT,
) -> BatchReport:
    """Deployment entry point: a manifest (file or s3://) and a roster (name, file or block:<name>).

    The store defaults to $QUORUM_STORE (set it on the worker), else `.quorum` in the working directory.

    With `fan_out`, every task runs as a run of `task_deployment` on that deployment's work pool.
    With `dated_batch_id` (the nightly deployment), the batch id is `<manifest batch>-<YYYY-MM-DD>` of
    the scheduled start in UTC, so each night has its own folder; pass `batch_id` to resume one.
    """
    store_url = store_url or default_store_url()
    manifest = load_manifest_task(manifest_path)
    if batch_id is None and dated_batch_id:
        batch_id = dated_id(manifest.batch, flow_run.scheduled_start_time)
    loaded_roster = resolve_roster_task(roster)
    policy = Policy(max_rounds=max_rounds, task_budget_usd=task_budget_usd)
    return batch_pipeline(
        manifest, loaded_roster, store_url, policy, max_parallel=max_parallel, batch_id=batch_id,
        batch_budget_usd=batch_budget_usd, fan_out_deployment=task_deployment if fan_out else None,
    )  # fmt: skip
