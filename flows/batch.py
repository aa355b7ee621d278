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

from prefect import flow
from prefect.runtime import flow_run

from quorum.domain.artifacts import report_key, result_key
from quorum.domain.budget import UNLIMITED, SpendAccount, exhausted
from quorum.domain.manifest import Manifest, TaskSpec
from quorum.domain.models import BatchReport, TaskResult, TaskStatus
from quorum.domain.policy import Policy
from quorum.domain.progress import ProgressSink, ignore_progress
from quorum.domain.results import build_batch_report, render_batch_markdown, result_row, ui_key
from quorum.domain.resume import as_reused, reusable, spec_digest
from quorum.domain.roster import Roster
from quorum.domain.run import RunContext
from quorum.flows.pipeline import task_pipeline
from quorum.prefect_api.budget_ledger import close_batch_account, open_batch_account
from quorum.store import default_store_url
from quorum.tasks.environment import evict_environments_task
from quorum.tasks.events import emit_batch_completed_task, emit_batch_started_task
from quorum.tasks.fan_out import run_task_deployment
from quorum.tasks.limits import ensure_limits_task
from quorum.tasks.manifest import load_manifest_task
from quorum.tasks.roster import check_roster_task, resolve_roster_task
from quorum.tasks.store import open_store_task, read_results_task, save_artifacts_task, write_predictions_task
from quorum.tasks.ui import publish_markdown_task, publish_table_task

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
    progress: ProgressSink | None = None,
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
    store = open_store_task(store_url)

    previous = read_results_task(store, batch_id, [spec.id for spec in manifest.tasks]) if resume else {}
    digests = {spec.id: spec_digest(spec, roster, policy) for spec in manifest.tasks}
    kept = {tid: as_reused(r) for tid, r in previous.items() if reusable(r, digests[tid])}
    account: SpendAccount = UNLIMITED
    if batch_budget_usd is not None:
        account = open_batch_account(batch_id, batch_budget_usd, spent_usd=sum(r.cost.total.cost_usd for r in kept.values()))
    run = RunContext(batch_id=batch_id, store_url=store_url, store=store, started_at=started, budget=account,
                     progress=progress or ignore_progress)  # fmt: skip

    def run_one(spec: TaskSpec) -> TaskResult:
        if spec.id in kept:
            return kept[spec.id]
        if exhausted(account):
            return _skipped(spec, batch_id, f"budget: batch budget ${batch_budget_usd:.4f} spent before the task started")
        try:
            if fan_out_deployment:
                budget_account = getattr(account, "name", None)
                return run_task_deployment(fan_out_deployment, spec, roster, policy, run, budget_account, task_timeout_s)
            return task_pipeline(spec, roster, policy, run)
        except Exception as exc:  # a crashed subflow is reported, never dropped
            return TaskResult(
                batch_id=batch_id, task_id=spec.id, repo=spec.repo, status=TaskStatus.error,
                reason=f"pipeline crashed: {type(exc).__name__}: {exc}",
                artifacts={"result": result_key(batch_id, spec.id)},
            )  # fmt: skip

    workers = max(1, max_parallel)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="quorum-task") as pool:
            # each task gets a copy of this flow's context, so its runs show as children of the batch
            futures = [pool.submit(contextvars.copy_context().run, run_one, spec) for spec in manifest.tasks]
            results = [future.result() for future in futures]
    finally:
        if account is not UNLIMITED:
            close_batch_account(account)  # type: ignore[arg-type]

    report = build_batch_report(
        batch_id=batch_id, started_at=started, finished_at=time.time(),
        roster=roster.name, store=store_url, results=results,
        mode=mode, batch_budget_usd=batch_budget_usd,
    )  # fmt: skip
    save_artifacts_task(store, {report_key(batch_id): report.model_dump_json(indent=2)}, label="report")
    write_predictions_task(store, batch_id, manifest.tasks, results, roster.implementer.model)
    publish_table_task(ui_key("quorum", batch_id, "results"), [result_row(r) for r in results], f"quorum batch {batch_id}")
    publish_markdown_task(ui_key("quorum", batch_id, "summary"), render_batch_markdown(report), f"quorum batch {batch_id}")
    emit_batch_completed_task(report)
    return report


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
    evict_environments_task()  # repository environments unused too long, or past the cache's size
    manifest = load_manifest_task(manifest_path)
    if batch_id is None and dated_batch_id:
        batch_id = dated_id(manifest.batch, flow_run.scheduled_start_time)
    loaded_roster = resolve_roster_task(roster)
    policy = Policy(max_rounds=max_rounds, task_budget_usd=task_budget_usd)
    return batch_pipeline(
        manifest, loaded_roster, store_url, policy, max_parallel=max_parallel, batch_id=batch_id,
        batch_budget_usd=batch_budget_usd, fan_out_deployment=task_deployment if fan_out else None,
    )  # fmt: skip
