"""Side effects on the artifact store, one task each."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from quorum.blocks.refs import open_store_ref
from quorum.domain.artifacts import report_key, report_rows_key
from quorum.domain.batch_inputs import BatchInputs
from quorum.domain.manifest import RejectedTask, TaskSpec
from quorum.domain.models import BatchReport, ReportRow, TaskResult
from quorum.domain.policy import Policy
from quorum.domain.report import report_row
from quorum.domain.resume import as_reused, reusable
from quorum.domain.roster import Roster
from quorum.store import ArtifactStore
from quorum.store.batches import (
    RowSpool,
    finished_results,
    read_inputs,
    read_rows,
    read_specs,
    save_rejected,
    write_inputs,
    write_predictions,
    write_rows,
)


@task(name="save-artifacts", task_run_name="save · {label}", retries=3, retry_delay_seconds=[1, 2, 4], cache_policy=NONE)
def save_artifacts_task(store: ArtifactStore, items: dict[str, str], label: str = "artifacts") -> list[str]:
    """Write a bundle of text artifacts, each as a whole object; returns the keys written."""
    return [store.put_text(key, text) for key, text in sorted(items.items())]


@task(name="read-results", task_run_name="read results · {batch_id}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def read_results_task(store: ArtifactStore, batch_id: str, task_ids: list[str]) -> dict[str, TaskResult]:
    """Task results already in the store for these tasks of the batch; unreadable ones are left out."""
    return {result.task_id: result for result in finished_results(store, batch_id, set(task_ids))}


@task(name="kept-results", task_run_name="resume · {batch_id}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def kept_results_task(store: ArtifactStore, batch_id: str, digests: dict[str, str]) -> dict[str, ReportRow]:
    """Resume: the finished results of an earlier run of this batch that can be kept (same task, roster and
    policy: `digests` per task id), as report rows. Found by listing the batch's folder, fetched concurrently."""
    return {
        result.task_id: report_row(as_reused(result))
        for result in finished_results(store, batch_id, digests)
        if reusable(result, digests[result.task_id])
    }


@task(name="write-batch-inputs", task_run_name="inputs · {batch_id}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def write_batch_inputs_task(
    store: ArtifactStore, batch_id: str, source: str, specs: list[TaskSpec], roster: Roster, policy: Policy,
    rejected: list[RejectedTask] | None = None,
) -> BatchInputs:  # fmt: skip
    """The batch's inputs into the store, so every run of it takes them by reference, never as parameters."""
    return write_inputs(store, batch_id, source, specs, roster, policy, rejected or ())


@task(name="read-batch-inputs", task_run_name="inputs · {batch_id}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def read_batch_inputs_task(store: ArtifactStore, batch_id: str) -> BatchInputs:
    return read_inputs(store, batch_id)


@task(name="read-task-specs", task_run_name="specs · {inputs.batch_id}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def read_specs_task(store: ArtifactStore, inputs: BatchInputs, task_ids: list[str] | None = None) -> list[TaskSpec]:
    """The specs this run needs (all of the batch's, or a shard's by id), in manifest order."""
    return read_specs(store, inputs, task_ids)


@task(name="save-report", task_run_name="report · {report.batch_id}", retries=3, retry_delay_seconds=[1, 2, 4], cache_policy=NONE)
def save_report_task(store: ArtifactStore, report: BatchReport, rows: RowSpool) -> list[str]:
    """The report's rows (report.jsonl, manifest order), then its summary (report.json), which names them."""
    written = [write_rows(store, report_rows_key(report.batch_id), rows)]
    written.append(store.put_text(report_key(report.batch_id), report.model_dump_json(indent=2) + "\n"))
    return written


@task(name="read-report-rows", task_run_name="rows · {key}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def read_report_rows_task(store: ArtifactStore, key: str) -> list[ReportRow]:
    """A finished batch's rows (its report.jsonl), in manifest order: for small batches whose rows a flow reads back."""
    return list(read_rows(store, key))


@task(name="open-store", task_run_name="store · {ref}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def open_store_task(ref: str) -> ArtifactStore:
    """The store behind a URL, a path or `block:<name>` (a QuorumArtifactStore block), opened once per run."""
    return open_store_ref(ref)


@task(name="write-predictions", task_run_name="predictions · {batch_id}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def write_predictions_task(store: ArtifactStore, batch_id: str, specs: list[TaskSpec], rows_key: str, model: str) -> str:
    """`runs/<batch>/predictions.jsonl` in SWE-bench's harness format: per task its last round's patch
    ('' when no round ran), keyed by the instance id (the task id for manifest tasks). Streamed: the
    rows from report.jsonl, the patches fetched concurrently, the file spooled to disk."""
    return write_predictions(store, batch_id, specs, read_rows(store, rows_key), model)


@task(name="save-rejected", task_run_name="rejected tasks · {batch_id}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def save_rejected_task(store: ArtifactStore, batch_id: str, rejected: list[RejectedTask]) -> list[TaskResult]:
    """The manifest's entries that cannot run, each reported as an `error` with its reason."""
    return save_rejected(store, batch_id, rejected)
