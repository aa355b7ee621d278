"""Task results and batch reports (pure): totals, rates, and the text people read."""

from __future__ import annotations

import re
from collections import Counter

from quorum.domain.cost import format_usd, merge_summaries
from quorum.domain.models import BatchReport, StageContextRecord, StageCost, TaskResult, TaskStatus
from quorum.domain.policy import UNISOLATED_NOTE

SUCCESS_STATUSES = frozenset({TaskStatus.resolved, TaskStatus.approved_unverified})


def build_batch_report(
    *,
    batch_id: str,
    started_at: float,
    finished_at: float,
    roster: str,
    store: str,
    results: list[TaskResult],
    mode: str = "in-process",
    batch_budget_usd: float | None = None,
) -> BatchReport:
    cost = merge_summaries(r.cost for r in results)
    counts = Counter(r.status.value for r in results)
    resolved = counts.get(TaskStatus.resolved.value, 0)
    total_cost = cost.total.cost_usd
    return BatchReport(
        batch_id=batch_id,
        started_at=started_at,
        finished_at=finished_at,
        roster=roster,
        store=store,
        results=results,
        cost=cost,
        counts={status.value: counts.get(status.value, 0) for status in TaskStatus},
        resolved_rate=resolved / len(results) if results else 0.0,
        cost_per_task_usd=total_cost / len(results) if results else 0.0,
        cost_per_resolved_usd=total_cost / resolved if resolved else None,
        fresh_llm_calls=cost.total.fresh_calls,
        cached_llm_calls=cost.total.calls - cost.total.fresh_calls,
        reused_results=sum(1 for r in results if r.reused),
        mode=mode,
        batch_budget_usd=batch_budget_usd,
    )


def ui_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())).strip("-")


def result_row(result: TaskResult) -> dict[str, str | int | float]:
    return {
        "task": result.task_id,
        "outcome": result.status.value,
        "rounds": result.rounds,
        "cost_usd": round(result.cost.total.cost_usd, 6),
        "llm_calls": result.cost.total.calls,
        "reason": result.reason + (" (kept from an interrupted run)" if result.reused else ""),
        "result": result.artifacts.get("result", ""),
    }


def unisolated_notes(result: TaskResult) -> list[str]:
    """What ran without a sandbox in this task: the decision's note, and the acceptance run's."""
    notes = [n for n in (result.decision.notes if result.decision else []) if n.startswith(UNISOLATED_NOTE)]
    acceptance = result.acceptance
    if acceptance is not None and acceptance.sandbox.get("mode") == "none" and not acceptance.sandbox.get("refused"):
        notes.append(f"{UNISOLATED_NOTE} (acceptance): QUORUM_SANDBOX_ALLOW_UNISOLATED=1 was set")
    return notes


def render_task_markdown(result: TaskResult, store_url: str) -> str:
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
        f"{result.cost.total.prompt_tokens} prompt ({cached_note(result.cost.total)}) + "
        f"{result.cost.total.completion_tokens} completion tokens",
        f"- artifacts: `{store_url}`",
        "",
        "| stage | calls | prompt tokens | from prompt cache | cost |",
        "|---|---|---|---|---|",
    ]
    for stage, cost in sorted(result.cost.by_stage.items()):
        lines.append(f"| {stage} | {cost.calls} | {cost.prompt_tokens} | {cost.cached_tokens} | {format_usd(cost.cost_usd)} |")
    if result.contexts:
        lines += ["", "## Context", "", "What each model was shown of the repository (context.json of each round).", "",
                  "| round | stage | model | tokens / budget | shown |", "|---|---|---|---|---|"]  # fmt: skip
        for round_context in result.contexts:
            for stage in round_context.stages:
                used = f"{stage.tokens} / {stage.budget}" if stage.budget else str(stage.tokens)
                lines.append(f"| {round_context.round} | {stage.stage} | {stage.model or '-'} | {used} | "
                             f"{_cell(_shown(stage))} |")  # fmt: skip
    if result.decision and result.decision.reasons:
        lines += ["", "## Decision", "", *[f"- {reason}" for reason in result.decision.reasons]]
    if result.decision and result.decision.notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in result.decision.notes]]
    return "\n".join(lines) + "\n"


def _shown(stage: StageContextRecord, limit: int = 6) -> str:
    """The regions a stage saw (`path:start-end`), or for the localizer what it decided."""
    if not stage.regions:
        return "; ".join(stage.notes[:2]) or "-"
    spans = [f"{r.path}:{r.start_line}-{r.end_line}" for r in stage.regions[:limit]]
    more = len(stage.regions) - limit
    return ", ".join(spans) + (f" (+{more} more)" if more > 0 else "")


def _cell(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def cached_note(cost: StageCost) -> str:
    """How much of the prompt the providers' caches served (and, for Anthropic, were written)."""
    written = f", {cost.cache_write_tokens} written to them" if cost.cache_write_tokens else ""
    return f"{cost.cached_tokens} read from provider prompt caches{written}"


def render_batch_markdown(report: BatchReport) -> str:
    simulated = " — simulated costs (scripted models priced as real ones)" if report.cost.simulated else ""
    per_resolved = format_usd(report.cost_per_resolved_usd) if report.cost_per_resolved_usd is not None else "n/a"
    lines = [
        f"# Batch {report.batch_id}{simulated}",
        "",
        f"- tasks: {len(report.results)}; " + ", ".join(f"{k}: {v}" for k, v in report.counts.items() if v),
        f"- resolved rate: {report.resolved_rate:.0%}",
        f"- cost: {format_usd(report.cost.total.cost_usd)} total, {format_usd(report.cost_per_task_usd)} per task, "
        f"{per_resolved} per resolved task",
        f"- LLM calls: {report.fresh_llm_calls} made now, {report.cached_llm_calls} served from cache",
        f"- mode: {report.mode}"
        + (f"; {report.reused_results} result(s) kept from an interrupted run" if report.reused_results else "")
        + (f"; batch budget {format_usd(report.batch_budget_usd)}" if report.batch_budget_usd is not None else ""),
        "",
        "| task | outcome | rounds | cost | reason |",
        "|---|---|---|---|---|",
    ]
    for r in report.results:
        lines.append(f"| {r.task_id} | {r.status.value} | {r.rounds} | {format_usd(r.cost.total.cost_usd)} | {r.reason} |")
    lines += ["", "| stage | calls | prompt tokens | from prompt cache | cost |", "|---|---|---|---|---|"]
    for stage, cost in sorted(report.cost.by_stage.items()):
        lines.append(f"| {stage} | {cost.calls} | {cost.prompt_tokens} | {cost.cached_tokens} | {format_usd(cost.cost_usd)} |")
    lines += ["", "| model | calls | tokens | from prompt cache | cost |", "|---|---|---|---|---|"]
    for model, cost in sorted(report.cost.by_model.items()):
        tokens = cost.prompt_tokens + cost.completion_tokens
        lines.append(f"| {model} | {cost.calls} | {tokens} | {cost.cached_tokens} | {format_usd(cost.cost_usd)} |")
    lines.append("")
    lines.append(f"Prompt tokens: {report.cost.total.prompt_tokens}, {cached_note(report.cost.total)}.")
    return "\n".join(lines) + "\n"
