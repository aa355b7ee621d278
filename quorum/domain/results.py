"""Task results and batch reports (pure): totals, rates, and the text people read."""

from __future__ import annotations

import re
from collections.abc import Iterable

from quorum.domain.artifacts import round_prefix, task_prefix
from quorum.domain.cost import format_usd
from quorum.domain.models import BatchReport, ReportRow, StageContextRecord, StageCost, TaskResult, TaskStatus
from quorum.domain.policy import UNISOLATED_NOTE
from quorum.domain.report import MAX_REASON, BatchTally, report_row, short_reason
from quorum.domain.story import (
    escape_md,
    Locate,
    TaskStory,
    acceptance_section,
    model_table,
    patch_section,
    plan_section,
    rounds_section,
)

SUCCESS_STATUSES = frozenset({TaskStatus.resolved, TaskStatus.approved_unverified})


def build_batch_report(
    *,
    batch_id: str,
    started_at: float,
    finished_at: float,
    roster: str,
    store: str,
    results: Iterable[TaskResult],
    mode: str = "in-process",
    batch_budget_usd: float | None = None,
) -> BatchReport:
    """The summary of a batch from its results (small batches and tests; a running batch feeds a `BatchTally`)."""
    tally = BatchTally()
    for index, result in enumerate(results):
        tally.add(index, report_row(result))
    return tally.report(
        batch_id=batch_id, started_at=started_at, finished_at=finished_at, roster=roster, store=store,
        mode=mode, batch_budget_usd=batch_budget_usd,
    )  # fmt: skip


def ui_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())).strip("-")


MAX_UI_REASON = MAX_REASON  # characters of a reason in the UI table (the row in report.jsonl has it whole)
SUMMARY_REASON = 300  # characters of a reason in the batch's markdown summary (the table has it as kept)


def flow_run_url(ui_url: str | None, flow_run_id: str) -> str:
    """The task's flow run in the Prefect UI (`PREFECT_UI_URL`), or its bare id when no UI address is known."""
    if not flow_run_id:
        return ""
    return f"{ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui_url else flow_run_id


def result_row(row: ReportRow, locate: Locate | None = None, ui_url: str | None = None) -> dict[str, str | int]:
    """A row of the batch's UI table: money formatted, the reason as kept (whole for real reasons), where
    the task's result.json is (absolute with `locate`, the store's `url`) and its flow run in the UI."""
    reason = short_reason(row.reason + (" (kept from an interrupted run)" if row.reused else ""), MAX_UI_REASON)
    simulated = " (simulated)" if row.cost.simulated else ""
    return {
        "task": row.task_id,
        "outcome": row.status.value,
        "rounds": row.rounds,
        "cost": format_usd(row.cost.total.cost_usd) + simulated,
        "llm_calls": row.cost.total.calls,
        "reason": reason,
        "result": locate(row.result) if locate and row.result else row.result,
        "flow_run": flow_run_url(ui_url, row.flow_run_id),
    }


def unisolated_notes(result: TaskResult) -> list[str]:
    """What ran without a sandbox in this task: the decision's note, and the acceptance run's."""
    notes = [n for n in (result.decision.notes if result.decision else []) if n.startswith(UNISOLATED_NOTE)]
    acceptance = result.acceptance
    if acceptance is not None and acceptance.sandbox.get("mode") == "none" and not acceptance.sandbox.get("refused"):
        notes.append(f"{UNISOLATED_NOTE} (acceptance): QUORUM_SANDBOX_ALLOW_UNISOLATED=1 was set")
    return notes


def render_task_markdown(result: TaskResult, where: str | Locate, story: TaskStory | None = None) -> str:
    """The task's UI summary: outcome and cost, then (from `story`) the plan, the last patch as a diff, each
    round's verification and reviews, the acceptance tests, per-stage and per-model costs, and contexts.

    `where`: the store's absolute locator (`store.url`: key -> file:///... or s3://...), or its location
    as text (keys are then shown below it).
    """
    locate = _locator(where)
    story = story or TaskStory()
    simulated = " (simulated: scripted models priced as real ones)" if result.cost.simulated else ""
    warnings = [f"> **Warning: {note}.**" for note in unisolated_notes(result)]
    lines = [
        f"# {result.task_id}: {result.status.value}",
        "",
        *([*warnings, ""] if warnings else []),
        f"- repository: `{result.repo}`",
        f"- rounds: {result.rounds}",
        f"- reason: {result.reason or '-'}",
        f"- policy: {result.policy_version or '-'}",
        f"- cost: {format_usd(result.cost.total.cost_usd)}{simulated}, "
        f"{result.cost.total.prompt_tokens:,} prompt ({cached_note(result.cost.total)}) + "
        f"{result.cost.total.completion_tokens:,} completion tokens",
        f"- artifacts: `{locate(task_prefix(result.batch_id, result.task_id))}`",
    ]
    if result.decision and result.decision.reasons:
        lines += ["", "## Decision", "", *[f"- {reason}" for reason in result.decision.reasons]]
    if story.plan is not None:
        plan_key = result.artifacts.get("plan") or f"{round_prefix(result.batch_id, result.task_id, 1)}/plan.md"
        lines += plan_section(story.plan, locate(plan_key))
    if story.rounds:
        last = story.rounds[-1]
        lines += patch_section(last, locate(f"{round_prefix(result.batch_id, result.task_id, last.round)}/patch.diff"))
        lines += rounds_section(story.rounds)
    if result.acceptance is not None:
        lines += acceptance_section(result.acceptance)
    lines += ["", "## Cost", "", "| stage | calls | prompt tokens | from prompt cache | cost |", "|---|---|---|---|---|"]
    for stage, cost in sorted(result.cost.by_stage.items()):
        lines.append(f"| {stage} | {cost.calls} | {cost.prompt_tokens:,} | {cost.cached_tokens:,} | {format_usd(cost.cost_usd)} |")
    if result.cost.by_model:
        lines += ["", *model_table(result.cost)]
    if result.contexts:
        lines += ["", "## Context", "", "What each model was shown of the repository (context.json of each round).", "",
                  "| round | stage | model | tokens / budget | shown |", "|---|---|---|---|---|"]  # fmt: skip
        for round_context in result.contexts:
            for stage in round_context.stages:
                used = f"{stage.tokens} / {stage.budget}" if stage.budget else str(stage.tokens)
                lines.append(f"| {round_context.round} | {stage.stage} | {stage.model or '-'} | {used} | "
                             f"{_cell(_shown(stage))} |")  # fmt: skip
    if result.decision and result.decision.notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in result.decision.notes]]
    return "\n".join(lines) + "\n"


def _locator(where: str | Locate) -> Locate:
    if callable(where):
        return where
    return lambda key: f"{where.rstrip('/')}/{key}"


def _shown(stage: StageContextRecord, limit: int = 6) -> str:
    """The regions a stage saw (`path:start-end`), or for the localizer what it decided."""
    if not stage.regions:
        return "; ".join(stage.notes[:2]) or "-"
    spans = [f"`{r.path}:{r.start_line}-{r.end_line}`" for r in stage.regions[:limit]]
    more = len(stage.regions) - limit
    return ", ".join(spans) + (f" (+{more} more)" if more > 0 else "")


def _cell(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return escape_md(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def cached_note(cost: StageCost) -> str:
    """How much of the prompt the providers' caches served (and, for Anthropic, were written)."""
    written = f", {cost.cache_write_tokens:,} written to them" if cost.cache_write_tokens else ""
    return f"{cost.cached_tokens:,} read from provider prompt caches{written}"


def render_batch_markdown(
    report: BatchReport, rows_url: str = "", locate: Locate | None = None, ui_url: str | None = None
) -> str:
    """The batch's UI summary: totals, what needs a person (at most the kept rows), and where the full report is.

    Its size does not grow with the batch: the rows shown are `report.needs_human` (bounded), each
    reason cut to `SUMMARY_REASON` characters (the needs-human table shows them as kept), each with
    its result.json (absolute with `locate`) and a link to its flow run when `ui_url` is known.
    """
    simulated = " — simulated costs (scripted models priced as real ones)" if report.cost.simulated else ""
    per_resolved = format_usd(report.cost_per_resolved_usd) if report.cost_per_resolved_usd is not None else "n/a"
    mode = report.mode + (f" ({report.shards} shard runs)" if report.shards else "")
    lines = [
        f"# Batch {report.batch_id}{simulated}",
        "",
        f"- tasks: {report.tasks}; " + ", ".join(f"{k}: {v}" for k, v in report.counts.items() if v),
        f"- resolved rate: {report.resolved_rate:.0%}",
        f"- cost: {format_usd(report.cost.total.cost_usd)} total, {format_usd(report.cost_per_task_usd)} per task, "
        f"{per_resolved} per resolved task",
        f"- LLM calls: {report.fresh_llm_calls} made now, {report.cached_llm_calls} served from cache",
        f"- mode: {mode}"
        + (f"; {report.reused_results} result(s) kept from an interrupted run" if report.reused_results else "")
        + (f"; batch budget {format_usd(report.batch_budget_usd)}" if report.batch_budget_usd is not None else ""),
    ]
    if rows_url:
        lines.append(f"- full report (one JSON line per task): `{rows_url}`")
    lines += ["", f"## Needs a person: {report.needs_human_total}", ""]
    if report.needs_human:
        lines += ["| task | outcome | rounds | cost | reason | result |", "|---|---|---|---|---|---|"]
        for row in report.needs_human:
            shown = result_row(row, locate, ui_url)
            reason = short_reason(str(shown["reason"]), SUMMARY_REASON).replace("|", "\\|").replace("\n", " ")
            task = f"[{row.task_id}]({shown['flow_run']})" if ui_url and row.flow_run_id else row.task_id
            where = f"`{shown['result']}`" if shown["result"] else "-"
            lines.append(f"| {task} | {row.status.value} | {row.rounds} | {shown['cost']} | {reason} | {where} |")
        hidden = report.needs_human_total - len(report.needs_human)
        if hidden > 0:
            lines += ["", f"{hidden} more in the full report."]
    else:
        lines.append("Nothing: every task was resolved, approved or skipped.")
    lines += ["", "| stage | calls | prompt tokens | from prompt cache | cost |", "|---|---|---|---|---|"]
    for stage, cost in sorted(report.cost.by_stage.items()):
        lines.append(f"| {stage} | {cost.calls} | {cost.prompt_tokens:,} | {cost.cached_tokens:,} | {format_usd(cost.cost_usd)} |")
    lines += ["", *model_table(report.cost), ""]
    lines.append(f"Prompt tokens: {report.cost.total.prompt_tokens:,}, {cached_note(report.cost.total)}.")
    return "\n".join(lines) + "\n"
