"""A batch: every (repository, task) pair of a manifest through the pipeline, then one report.

Nothing in a batch grows with its size but the work:

* **Parameters by reference.** The batch's inputs (its task specs, normalised; roster; policy) are
  written to the store when it starts (`runs/<batch>/_inputs/`). The `quorum-batch` flow and every
  shard run take the batch id and the store, and load the specs they run by id; no flow run carries
  the tasks as parameters (Prefect refuses parameters past 512 KB).
* **Two ways to run the tasks, same results.** In-process (default): each task is a subflow in this
  process, `max_parallel` at a time. Fan-out: the tasks go out in shards, each a run of the shard
  deployment (`fan_out_deployment`) on its work pool, so every worker, on any machine, shares the
  batch, and a flow-run process starts once per shard, not per task.
* **Skipping is cheap.** Once the batch budget is spent, a task that cannot start is reported as
  `skipped` before it costs a subflow run or a workspace.
* **Resume.** A batch run again with the same id keeps the finished results in the store (found by
  one listing of the batch's folder, fetched concurrently); every LLM call that had completed is
  served from Prefect's persisted cache.
* **The report streams.** Each task's row goes to `report.jsonl` as it finishes; `report.json`, the
  UI summary and the UI table of what needs a person (escalated, failed, error) stay a fixed size.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.settings import PREFECT_UI_URL

from quorum.domain.artifacts import report_rows_key, result_key, to_json
from quorum.domain.batch_inputs import effective_policy
from quorum.domain.budget import UNLIMITED, SpendAccount, SpendGate, close_to_new_tasks
from quorum.domain.manifest import Manifest, TaskSpec
from quorum.domain.models import BatchReport, ReportRow, TaskResult, TaskStatus
from quorum.domain.outcome_states import batch_state_spec
from quorum.domain.policy import Policy
from quorum.domain.progress import ProgressSink, ignore_progress
from quorum.domain.report import BatchTally, report_row
from quorum.domain.results import render_batch_markdown, result_row, ui_key
from quorum.domain.resume import spec_digest
from quorum.domain.roster import Roster
from quorum.domain.run import RunContext
from quorum.domain.shards import assign_shards, shard_size as default_shard_size, shard_timeout_s
from quorum.flows.pipeline import run_task_pipeline
from quorum.prefect_api.budget_ledger import PrefectSpendAccount, close_batch_account, open_batch_account
from quorum.prefect_api.crash import on_batch_crashed
from quorum.prefect_api.runs import MISSED_HEARTBEATS, watch_runs
from quorum.prefect_api.stage_runs import call_again, prefect_server_unavailable
from quorum.prefect_api.states import result_of, same_outcome, state_for
from quorum.store import default_store_url
from quorum.store.batches import RowSpool
from quorum.tasks.environment import evict_environments_task
from quorum.tasks.events import emit_batch_completed_task, emit_batch_started_task
from quorum.tasks.fan_out import (
    collect_shard_task,
    deployment_workers_task,
    dispatch_shard_task,
    run_ending,
    shard_parameters,
)
from quorum.tasks.limits import ensure_limits_task
from quorum.tasks.manifest import load_manifest_task
from quorum.tasks.roster import check_roster_task, resolve_roster_task
from quorum.tasks.store import (
    kept_results_task,
    save_rejected_task,
    open_store_task,
    read_batch_inputs_task,
    read_specs_task,
    save_artifacts_task,
    save_report_task,
    write_predictions_task,
    write_batch_inputs_task,
)
from quorum.tasks.runs import name_run_task
from quorum.tasks.ui import publish_markdown_task, publish_table_task

DEFAULT_SHARD_DEPLOYMENT = "quorum-batch-shard/shard"
SKIPS_PER_WRITE = 200  # skipped tasks' result.json files written per task run


def dated_id(batch: str, when: datetime | None) -> str:
    day = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{batch}-{day:%Y-%m-%d}"


def batch_pipeline(
    manifest: Manifest,
    roster: Roster,
    store_url: str,
    policy: Policy | None = None,
    max_parallel: int = 3,
    batch_id: str | None = None,
    batch_budget_usd: float | None = None,
    fan_out_deployment: str | None = None,
    shard_size: int | None = None,
    resume: bool = True,
    task_timeout_s: float = 3600.0,
    progress: ProgressSink | None = None,
) -> BatchReport:
    """Run a manifest as a batch (the CLI's entry point, and Python's): write its inputs to the store, then
    run the `quorum-batch` flow on them by reference. Returns the report's summary; its rows are in the
    store (`report.rows`, one JSON line per task)."""
    return result_of(batch_run(
        manifest, roster, store_url, policy, max_parallel=max_parallel, batch_id=batch_id,
        batch_budget_usd=batch_budget_usd, fan_out_deployment=fan_out_deployment, shard_size=shard_size,
        resume=resume, task_timeout_s=task_timeout_s, progress=progress,
    ))  # fmt: skip


def batch_run(
    manifest: Manifest,
    roster: Roster,
    store_url: str,
    policy: Policy | None = None,
    *,
    batch_id: str | None = None,
    **options,
) -> State:
    """`batch_pipeline`, returning the `quorum-batch` run's final state (named by its counts; the report is its result)."""
    batch_id = batch_id or manifest.batch
    store = open_store_task(store_url)
    write_batch_inputs_task(store, batch_id, manifest.source, manifest.tasks, roster, effective_policy(policy, roster),
                            manifest.rejected)  # fmt: skip
    return batch_flow(store_url, batch_id, return_state=True, **options)


@flow(name="quorum-batch", flow_run_name="{batch_id}", log_prints=True, on_crashed=[on_batch_crashed])
def batch_flow(
    store_url: str,
    batch_id: str,
    max_parallel: int = 3,
    batch_budget_usd: float | None = None,
    fan_out_deployment: str | None = None,
    shard_size: int | None = None,
    resume: bool = True,
    task_timeout_s: float = 3600.0,
    progress: ProgressSink | None = None,
) -> BatchReport:
    """The batch whose inputs are in the store under `batch_id` (see `batch_pipeline`). Its run ends in a
    state named by its outcome counts (`2 resolved · 1 escalated`), red when a task needs a human or
    broke (quorum.domain.outcome_states); the state's result is the `BatchReport`.

    In-process, `max_parallel` tasks run at once in this process. With `fan_out_deployment` the tasks
    go out in shards of `shard_size` (default: from the pending tasks and the online workers of the
    deployment's pool, see `quorum.domain.shards`), and `max_parallel` tasks run at once in each shard.
    """
    started = time.time()
    store = open_store_task(store_url)
    inputs = read_batch_inputs_task(store, batch_id)
    roster, policy = inputs.roster, inputs.policy
    if batch_budget_usd is None:
        batch_budget_usd = roster.batch_budget_usd
    check_roster_task(roster)
    ensure_limits_task(roster)
    mode = "fan-out" if fan_out_deployment else "in-process"
    emit_batch_started_task(batch_id, inputs.tasks + len(inputs.rejected), roster.name, store_url, mode)

    specs = read_specs_task(store, inputs)
    digests = {spec.id: spec_digest(spec, roster, policy) for spec in specs}
    kept = kept_results_task(store, batch_id, digests) if resume else {}
    account: SpendAccount = UNLIMITED
    if batch_budget_usd is not None:
        account = open_batch_account(batch_id, batch_budget_usd, spent_usd=sum(r.cost.total.cost_usd for r in kept.values()))
    run = RunContext(batch_id=batch_id, store_url=store_url, store=store, started_at=started, budget=account,
                     progress=progress or ignore_progress)  # fmt: skip

    rows = _Rows({task_id: index for index, task_id in enumerate([s.id for s in specs] + [r.id for r in inputs.rejected])})
    for task_id, row in kept.items():
        rows.add_row(task_id, row)
    if inputs.rejected:  # entries of the manifest that cannot run: each an error with its reason, the rest run
        for result in save_rejected_task(store, batch_id, inputs.rejected):
            rows.add(result)
            run.report(result.task_id, result.status.value, result.reason, done=True)
    pending = [spec for spec in specs if spec.id not in kept]
    shards = 0
    try:
        if fan_out_deployment and pending and not SpendGate(account).spent():
            budget_account = account.name if isinstance(account, PrefectSpendAccount) else None
            shards = _fan_out(pending, fan_out_deployment, shard_size, digests, run, max_parallel, budget_account,
                              task_timeout_s, rows)  # fmt: skip
        else:  # in-process; or fan-out with nothing to send (each pending task is then skipped here, cheaply)
            _run_tasks(pending, roster, policy, run, max_parallel, rows.add, start=not fan_out_deployment)
    finally:
        if isinstance(account, PrefectSpendAccount):
            close_batch_account(account)

    report = rows.tally.report(
        batch_id=batch_id, started_at=started, finished_at=time.time(), roster=roster.name, store=store_url,
        mode=mode, shards=shards, batch_budget_usd=batch_budget_usd, rows_key=report_rows_key(batch_id),
    )  # fmt: skip
    try:
        save_report_task(store, report, rows.spool)
    finally:
        rows.spool.close()
    write_predictions_task(store, batch_id, specs, report.rows, roster.implementer.model)
    title = f"quorum batch {batch_id}"
    ui_url = PREFECT_UI_URL.value()  # links to each task's flow run (None: the ids are shown)
    publish_table_task(ui_key("quorum", batch_id, "needs-human"), [result_row(r, store.url, ui_url) for r in report.needs_human],
                       f"{title}: what needs a person ({report.needs_human_total}; the first {len(report.needs_human)})")  # fmt: skip
    publish_markdown_task(ui_key("quorum", batch_id, "summary"),
                          render_batch_markdown(report, store.url(report.rows), store.url, ui_url), title)  # fmt: skip
    emit_batch_completed_task(report)
    return state_for(batch_state_spec(batch_id, report.counts, store.url(report.rows)), report)


def _shard_run_name() -> str:
    params = flow_run.parameters or {}
    ids = params.get("task_ids") or []
    if len(ids) == 1:
        return str(ids[0])
    return f"{params.get('batch_id', 'batch')} · {params.get('shard') or 'shard'} ({len(ids)} tasks)"


@flow(name="quorum-batch-shard", flow_run_name=_shard_run_name, log_prints=True)
def batch_shard(
    store_url: str,
    batch_id: str,
    task_ids: list[str],
    shard: str = "",
    max_parallel: int = 3,
    run_started_at: float | None = None,
    budget_account: str | None = None,
) -> dict[str, int]:
    """A shard of a fanned-out batch (the entry point of the shard deployment): its tasks, loaded by id from the
    batch's inputs in the store, `max_parallel` at a time. Each task's result.json is written as it finishes,
    so a shard that dies loses only its unfinished tasks. Ends in a state named by the count of each outcome
    (the counts are its result)."""
    store = open_store_task(store_url)
    inputs = read_batch_inputs_task(store, batch_id)
    specs = read_specs_task(store, inputs, task_ids)
    account: SpendAccount = PrefectSpendAccount(budget_account) if budget_account else UNLIMITED
    run = RunContext(batch_id=batch_id, store_url=store_url, store=store, started_at=run_started_at or time.time(),
                     budget=account)  # fmt: skip
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def count(result: TaskResult) -> None:
        with lock:
            counts[result.status.value] += 1

    try:
        _run_tasks(specs, inputs.roster, inputs.policy, run, max_parallel, count)
    finally:
        if isinstance(account, PrefectSpendAccount):
            account.close()
    return state_for(batch_state_spec(f"{batch_id} {shard}".strip(), counts), dict(counts))


@flow(name="quorum-batch-from-files", log_prints=True, on_crashed=[on_batch_crashed])
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
    task_deployment: str = DEFAULT_SHARD_DEPLOYMENT,
    shard_size: int | None = None,
) -> BatchReport:
    """Deployment entry point: a manifest (file or s3://) and a roster (name, file or block:<name>), by reference.

    The store defaults to $QUORUM_STORE (set it on the worker), else `.quorum` in the working directory.

    With `fan_out`, the tasks run in shards, each a run of `task_deployment` (the shard deployment) on
    its work pool; `shard_size` tasks per shard (default: from the batch size and the pool's online
    workers). `max_parallel` is the tasks in flight in the batch's process, or in each shard.
    With `dated_batch_id` (the nightly deployment), the batch id is `<manifest batch>-<YYYY-MM-DD>` of
    the scheduled start in UTC, so each night has its own folder; pass `batch_id` to resume one.
    The run is renamed to its batch id once the manifest is read, and ends in the batch's outcome state.
    """
    store_url = store_url or default_store_url()
    evict_environments_task()  # repository environments unused too long, or past the cache's size
    manifest = load_manifest_task(manifest_path)
    if batch_id is None and dated_batch_id:
        batch_id = dated_id(manifest.batch, flow_run.scheduled_start_time)
    batch_id = batch_id or manifest.batch
    name_run_task(batch_id)
    loaded_roster = resolve_roster_task(roster)
    policy = Policy(max_rounds=max_rounds, task_budget_usd=task_budget_usd)
    return same_outcome(batch_run(
        manifest, loaded_roster, store_url, policy, max_parallel=max_parallel, batch_id=batch_id,
        batch_budget_usd=batch_budget_usd, fan_out_deployment=task_deployment if fan_out else None,
        shard_size=shard_size,
    ))  # fmt: skip


# ----- running tasks: in the batch's process, or in a shard's -----------------------------------------


class _Rows:
    """The report as tasks finish: each row to the spool (report.jsonl) and the tally (report.json)."""

    def __init__(self, order: dict[str, int]) -> None:
        self.order = order
        self.spool = RowSpool()
        self.tally = BatchTally()
        self._lock = threading.Lock()

    def add_row(self, task_id: str, row: ReportRow) -> None:
        index = self.order[task_id]
        self.spool.add(index, row)
        with self._lock:
            self.tally.add(index, row)

    def add(self, result: TaskResult) -> None:
        self.add_row(result.task_id, report_row(result))


class _Skips:
    """Tasks skipped before they start (the batch budget is spent): their result.json written in bundles."""

    def __init__(self, run: RunContext, roster: Roster, policy: Policy) -> None:
        self.run, self.roster, self.policy = run, roster, policy
        self._items: dict[str, str] = {}
        self._reason = ""

    def skip(self, spec: TaskSpec) -> TaskResult:
        if not self._reason:
            limit = self.run.budget.limit_usd
            self._reason = f"budget: batch budget ${limit or 0:.4f} spent before the task started"
        key = result_key(self.run.batch_id, spec.id)
        result = TaskResult(
            batch_id=self.run.batch_id, task_id=spec.id, repo=spec.repo, status=TaskStatus.skipped, reason=self._reason,
            spec_digest=spec_digest(spec, self.roster, self.policy), artifacts={"result": key},
        )  # fmt: skip
        self._items[key] = to_json(result)
        if len(self._items) >= SKIPS_PER_WRITE:
            self.flush()
        self.run.report(spec.id, TaskStatus.skipped.value, self._reason, done=True)
        return result

    def flush(self) -> None:
        if self._items:
            save_artifacts_task(self.run.store, self._items, label=f"{len(self._items)} skipped")
            self._items = {}


def _run_tasks(
    specs: Iterable[TaskSpec],
    roster: Roster,
    policy: Policy,
    run: RunContext,
    max_parallel: int,
    on_result: Callable[[TaskResult], None],
    *,
    start: bool = True,
) -> None:
    """Each task through the pipeline, `max_parallel` at a time, each result to `on_result` as it finishes.

    Before a task starts, the batch's account is asked whether it is spent; if so the task is skipped
    here, without a subflow run or a workspace. A task skipped for the batch budget inside its
    pipeline (its measured first stage did not fit) closes the account to new tasks. With
    `start=False` nothing starts: every task is skipped (a fan-out whose budget was spent already).
    """
    gate = SpendGate(run.budget)
    skips = _Skips(run, roster, policy)
    workers = max(1, max_parallel)
    slots = threading.BoundedSemaphore(workers)

    def run_one(spec: TaskSpec) -> None:
        try:
            result = _pipeline(spec, roster, policy, run)
            if result.status == TaskStatus.skipped:
                close_to_new_tasks(run.budget)
            on_result(result)
        finally:
            slots.release()

    futures: list[Future] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="quorum-task") as pool:
        try:
            for spec in specs:
                slots.acquire()  # wait for a free place first, so the budget is asked when the task would start
                if not start or gate.spent():
                    slots.release()
                    on_result(skips.skip(spec))
                    continue
                # each task gets a copy of this flow's context, so its runs show as children of this flow
                futures.append(pool.submit(contextvars.copy_context().run, run_one, spec))
        finally:
            skips.flush()
    for future in futures:
        future.result()  # a failure to record a result is the run's failure, never silent


PIPELINE_RETRY_PAUSES_S = (15.0, 45.0)  # after a pipeline that met an unavailable Prefect server


def _pipeline(spec: TaskSpec, roster: Roster, policy: Policy, run: RunContext, *,
              sleep: Callable[[float], None] = time.sleep) -> TaskResult:  # fmt: skip
    """The task's pipeline; run again (at most twice, after a pause) when it crashed on an unavailable
    Prefect server rather than on its own work (a busy SQLite server sheds requests under many shard
    processes). Its finished LLM stages come from the cache, so nothing is paid twice."""

    def report_retry(error: BaseException, pause: float) -> None:
        run.report(spec.id, "retry", f"the Prefect server was unavailable ({type(error).__name__}); "
                                     f"running the task again in {pause:.0f} s")  # fmt: skip

    try:
        return call_again(lambda: result_of(run_task_pipeline(spec, roster, policy, run)),
                          again_when=prefect_server_unavailable, pauses=PIPELINE_RETRY_PAUSES_S,
                          before_again=report_retry, sleep=sleep)  # fmt: skip
    except Exception as exc:
        return _crashed(spec, run, exc)


def _crashed(spec: TaskSpec, run: RunContext, exc: Exception) -> TaskResult:
    """A crashed subflow is reported, never dropped."""
    reason = f"pipeline crashed: {type(exc).__name__}: {exc}"
    run.report(spec.id, TaskStatus.error.value, reason, done=True)
    result = TaskResult(
        batch_id=run.batch_id, task_id=spec.id, repo=spec.repo, status=TaskStatus.error, reason=reason,
        artifacts={"result": result_key(run.batch_id, spec.id)},
    )  # fmt: skip
    try:  # a shard's batch reads its results from the store: the error and its reason must be there too
        run.store.put_text(result_key(run.batch_id, spec.id), to_json(result))
    except Exception:  # the store itself failing: the batch still reports the task as an error
        pass
    return result


def _fan_out(
    pending: list[TaskSpec],
    deployment: str,
    shard_size: int | None,
    digests: dict[str, str],
    run: RunContext,
    max_parallel: int,
    budget_account: str | None,
    task_timeout_s: float,
    rows: _Rows,
) -> int:
    """Send the pending tasks out in shards and take each shard's results from the store as it ends."""
    workers, heartbeat_s = deployment_workers_task(deployment)
    size = shard_size or default_shard_size(len(pending), workers)
    shards = assign_shards([spec.id for spec in pending], size)
    print(f"fan-out: {len(pending)} task(s) in {len(shards)} shard(s) of up to {size} over {workers} online worker(s) of {deployment}")
    started: dict = {}
    for shard in shards:
        params = shard_parameters(shard, run, max_parallel, budget_account)
        created = dispatch_shard_task(deployment, shard, params, f"{flow_run.id}-{shard.index}-of-{shard.count}")
        started[created.id] = shard
    expected = {spec.id: (spec.repo, digests[spec.id]) for spec in pending}
    deadlines = {run_id: shard_timeout_s(len(shard.task_ids), max_parallel, task_timeout_s) for run_id, shard in started.items()}
    for ended in watch_runs(list(started), deadline_s=deadlines, stale_after_s=MISSED_HEARTBEATS * heartbeat_s):
        shard = started[ended.flow_run.id]
        mine = {task_id: expected[task_id] for task_id in shard.task_ids}
        how = run_ending(ended.flow_run, ended.why)
        for result in collect_shard_task(run.store, ended.flow_run.name, how, shard, run.batch_id, mine, deployment):
            rows.add(result)
            run.report(result.task_id, result.status.value, result.reason, done=True)
    return len(shards)
