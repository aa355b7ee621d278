"""The batch report at any size (pure): one row per task as JSON lines, and a summary of fixed size.

A batch of thousands of tasks never holds its results together: each finished task becomes a
`ReportRow` (a line of `report.jsonl`) and is added to a `BatchTally`, which keeps only totals,
counts, the first rows that need a person (escalated, failed, error) and a few repository names.
The summary (`BatchReport`, `report.json`) comes from the tally, so it is the same size for 3
tasks or 30,000; the rows are streamed to the store beside it.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator

from quorum.domain.cost import add_summary
from quorum.domain.models import BatchReport, CostSummary, ReportRow, TaskResult, TaskStatus

NEEDS_HUMAN = frozenset({TaskStatus.escalated, TaskStatus.failed, TaskStatus.error})
MAX_NEEDS_HUMAN = 100  # rows kept in the summary (and shown in the UI table); the rest are in report.jsonl
MAX_REPOS = 20  # repositories named in the summary (events relate the batch to them)
# Characters of a reason kept in the summary and shown in the UI table: whole for any reason a task
# really gives (the events carry as much); the row in report.jsonl has it whole in any case.
MAX_REASON = 1_000


def short_reason(text: str, limit: int = MAX_REASON) -> str:
    """A reason cut to `limit` characters, marked with '…' when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report_row(result: TaskResult) -> ReportRow:
    """A task's line in the batch report: its outcome, cost and where its full result is."""
    return ReportRow(
        task_id=result.task_id,
        repo=result.repo,
        status=result.status,
        reason=result.reason,
        rounds=result.rounds,
        reused=result.reused,
        cost=result.cost,
        result=result.artifacts.get("result", ""),
        flow_run_id=result.flow_run_id,
    )


def encode_row(row: ReportRow) -> str:
    """One line of report.jsonl (compact JSON, newline-terminated; a reason's own newlines are escaped)."""
    return row.model_dump_json() + "\n"


def decode_rows(lines: Iterable[str]) -> Iterator[ReportRow]:
    """Rows back from report.jsonl lines (blank lines skipped)."""
    for line in lines:
        if line.strip():
            yield ReportRow.model_validate_json(line)


class BatchTally:
    """Running totals of a batch's rows, fed one row at a time in any order (each with its manifest index)."""

    def __init__(self, *, keep_needs_human: int = MAX_NEEDS_HUMAN, keep_repos: int = MAX_REPOS) -> None:
        self.keep_needs_human = keep_needs_human
        self.keep_repos = keep_repos
        self.tasks = 0
        self.counts: Counter[str] = Counter()
        self.cost = CostSummary()
        self.reused = 0
        self.needs_human_total = 0
        self._needs_human: list[tuple[int, int, ReportRow]] = []  # max-heap on the manifest index (negated)
        self._repos: list[str] = []  # the smallest distinct names, sorted
        self._seen = 0

    def add(self, index: int, row: ReportRow) -> None:
        self.tasks += 1
        self.counts[row.status.value] += 1
        add_summary(self.cost, row.cost)
        self.reused += int(row.reused)
        if row.status in NEEDS_HUMAN:
            self.needs_human_total += 1
            self._seen += 1
            # the kept row carries a short reason, so the summary stays small even when reasons are long
            entry = (-index, self._seen, row.model_copy(update={"reason": short_reason(row.reason)}))
            if len(self._needs_human) < self.keep_needs_human:
                heapq.heappush(self._needs_human, entry)
            elif self.keep_needs_human and -self._needs_human[0][0] > index:
                heapq.heapreplace(self._needs_human, entry)
        self._add_repo(row.repo)

    def _add_repo(self, repo: str) -> None:
        if repo in self._repos or not self.keep_repos:
            return
        if len(self._repos) < self.keep_repos:
            self._repos.append(repo)
            self._repos.sort()
        elif repo < self._repos[-1]:
            self._repos[-1] = repo
            self._repos.sort()

    def needs_human(self) -> list[ReportRow]:
        """The kept rows that need a person, in manifest order."""
        return [row for _, _, row in sorted(self._needs_human, key=lambda entry: -entry[0])]

    def report(
        self,
        *,
        batch_id: str,
        started_at: float,
        finished_at: float,
        roster: str,
        store: str,
        mode: str = "in-process",
        shards: int = 0,
        batch_budget_usd: float | None = None,
        rows_key: str = "",
    ) -> BatchReport:
        resolved = self.counts.get(TaskStatus.resolved.value, 0)
        total_cost = self.cost.total.cost_usd
        return BatchReport(
            batch_id=batch_id,
            started_at=started_at,
            finished_at=finished_at,
            roster=roster,
            store=store,
            tasks=self.tasks,
            cost=self.cost.model_copy(deep=True),
            counts={status.value: self.counts.get(status.value, 0) for status in TaskStatus},
            resolved_rate=resolved / self.tasks if self.tasks else 0.0,
            cost_per_task_usd=total_cost / self.tasks if self.tasks else 0.0,
            cost_per_resolved_usd=total_cost / resolved if resolved else None,
            fresh_llm_calls=self.cost.total.fresh_calls,
            cached_llm_calls=self.cost.total.calls - self.cost.total.fresh_calls,
            reused_results=self.reused,
            mode=mode,
            shards=shards,
            batch_budget_usd=batch_budget_usd,
            rows=rows_key,
            needs_human=self.needs_human(),
            needs_human_total=self.needs_human_total,
            repos=list(self._repos),
        )
