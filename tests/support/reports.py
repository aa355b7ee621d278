"""Reading a batch's report back from its store, as a person or a tool would: the rows (report.jsonl) and results."""

from __future__ import annotations

from quorum.domain.models import BatchReport, ReportRow, TaskResult
from quorum.store import open_store
from quorum.store.batches import read_rows


def report_rows(report: BatchReport) -> list[ReportRow]:
    """One row per task, in manifest order, from the store the report names."""
    return list(read_rows(open_store(report.store), report.rows))


def task_results(report: BatchReport) -> list[TaskResult]:
    """Every task's full result.json, in manifest order (the rows say where each is)."""
    store = open_store(report.store)
    return [TaskResult.model_validate_json(store.get_text(row.result)) for row in read_rows(store, report.rows)]
