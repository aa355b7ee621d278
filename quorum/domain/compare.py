"""Roster experiments (pure): one row per roster from its batch report, the comparison, and its text.

``quorum compare`` runs the same tasks under several rosters, one roster after another, so a stage
whose inputs a later roster shares with an earlier one (the plan, when only the implementer
differs) is served from the LLM cache instead of being paid again. Every row still shows the full
cost the roster would have paid on its own: costs come from each task's call records, cached or
not; "calls made" and "served from cache" (and "paid now") say what this run actually spent.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from quorum.domain.cost import format_usd
from quorum.domain.estimate import PriceFn, PromptSizes, TaskEstimate, estimate_task
from quorum.domain.models import BatchReport, LLMCall, ReportRow, TaskResult, TaskStatus
from quorum.domain.roster import Roster, StageModel
from quorum.domain.stats import pareto_front, ratio, wilson_interval

SIMULATED_NOTE = "simulated: scripted models priced as the real models they stand in for"
PLANNER_STAGES = frozenset({"plan"})
IMPLEMENT_REVIEW_STAGES = frozenset({"implement", "review"})


class RosterRow(BaseModel):
    roster: str
    batch_id: str
    planner: str
    implementer: str
    reviewers: list[str]
    simulated: bool = False
    tasks: int
    resolved: int
    resolved_rate: float
    resolved_low: float = Field(description="95 % Wilson interval, low end.")
    resolved_high: float = Field(description="95 % Wilson interval, high end.")
    planner_usd_per_task: float
    impl_review_usd_per_task: float
    other_usd_per_task: float = Field(default=0.0, description="Stages other than plan, implement and review.")
    total_usd_per_task: float
    usd_per_resolved: float | None
    total_usd: float
    paid_now_usd: float = Field(default=0.0, description="What this run paid: the cost of calls made now, not served from cache.")
    stored_calls_usd: float | None = Field(
        default=None, description="Sum of the stored per-call records of the roster's rounds (equals total_usd)."
    )
    mean_rounds: float | None
    escalated: int
    escalation_rate: float
    llm_calls: int
    calls_made: int
    calls_cached: int
    wall_s: float
    outcomes: dict[str, str] = Field(default_factory=dict, description="Task -> status.")
    counts: dict[str, int] = Field(default_factory=dict)
    pareto: bool = False


class CompareReport(BaseModel):
    compare_id: str
    manifest: str
    tasks: list[str]
    store: str
    started_at: float
    finished_at: float
    policy_version: str
    simulated: bool
    rows: list[RosterRow]
    shared: list[str] = Field(default_factory=list, description="Stages that later rosters take from the cache, in words.")
    artifacts: dict[str, str] = Field(default_factory=dict)


def roster_row(
    report: BatchReport, roster: Roster, calls: list[LLMCall] | None = None, *, rows: Sequence[ReportRow | TaskResult]
) -> RosterRow:
    """A roster's row from its batch report and its rows (report.jsonl, one per task; or the tasks' results);
    `calls` (the stored call records) give what was paid now."""
    n = len(rows)
    resolved = report.counts.get(TaskStatus.resolved.value, 0)
    escalated = report.counts.get(TaskStatus.escalated.value, 0)
    stages = report.cost.by_stage
    planner = sum(cost.cost_usd for stage, cost in stages.items() if stage in PLANNER_STAGES)
    impl_review = sum(cost.cost_usd for stage, cost in stages.items() if stage in IMPLEMENT_REVIEW_STAGES)
    total = report.cost.total.cost_usd
    ran = [r.rounds for r in rows if r.rounds > 0]
    low, high = wilson_interval(resolved, n)
    paid_now = sum(c.cost_usd for c in calls or [] if c.started_at >= report.started_at)
    stored = sum(c.cost_usd for c in calls) if calls is not None else None
    return RosterRow(
        roster=roster.name, batch_id=report.batch_id, planner=roster.planner.model,
        implementer=roster.implementer.model, reviewers=[r.model for r in roster.reviewers],
        simulated=report.cost.simulated or roster.simulated, tasks=n, resolved=resolved,
        resolved_rate=resolved / n if n else 0.0, resolved_low=low, resolved_high=high,
        planner_usd_per_task=ratio(planner, n) or 0.0, impl_review_usd_per_task=ratio(impl_review, n) or 0.0,
        other_usd_per_task=ratio(total - planner - impl_review, n) or 0.0,
        total_usd_per_task=ratio(total, n) or 0.0, usd_per_resolved=ratio(total, resolved), total_usd=total,
        paid_now_usd=paid_now, stored_calls_usd=stored, mean_rounds=ratio(sum(ran), len(ran)), escalated=escalated,
        escalation_rate=ratio(escalated, n) or 0.0, llm_calls=report.cost.total.calls,
        calls_made=report.fresh_llm_calls, calls_cached=report.cached_llm_calls,
        wall_s=round(report.finished_at - report.started_at, 3),
        outcomes={r.task_id: r.status.value for r in rows},
        counts={k: v for k, v in report.counts.items() if v},
    )  # fmt: skip


def mark_pareto(rows: list[RosterRow]) -> list[RosterRow]:
    """Flag the rosters on the cost-vs-resolved Pareto front (lower $/task, higher resolved rate)."""
    front = set(pareto_front([(row.total_usd_per_task, row.resolved_rate) for row in rows]))
    return [row.model_copy(update={"pareto": i in front}) for i, row in enumerate(rows)]


def _stage_key(model: StageModel) -> str:
    return model.model_dump_json()


def shared_stages(rosters: list[Roster]) -> list[str]:
    """Which later rosters reuse an earlier roster's planner (same model and settings: the plan's cache key)."""
    notes = []
    first_with: dict[str, str] = {}
    for roster in rosters:
        key = _stage_key(roster.planner)
        if key in first_with:
            notes.append(f"plan: {roster.name} reuses {first_with[key]}'s plans ({roster.planner.model}) from the cache")
        else:
            first_with[key] = roster.name
    return notes


def check_distinct_names(rosters: list[Roster]) -> None:
    names = [r.name for r in rosters]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"roster names must differ (they name each roster's batch): {', '.join(repeated)} given twice")
    if len(rosters) < 2:
        raise ValueError("compare needs at least two rosters")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _usd(value: float | None) -> str:
    return "n/a" if value is None else format_usd(value)


TABLE_COLUMNS = [
    "roster", "tasks", "resolved (95% CI)", "planner $/task", "impl.+review $/task", "total $/task", "$/resolved",
    "mean rounds", "escalated", "LLM calls made", "served from cache", "paid now", "wall time",
]  # fmt: skip


def table_cells(row: RosterRow) -> list[str]:
    return [
        row.roster + (" *" if row.pareto else ""), str(row.tasks),
        f"{row.resolved} ({row.resolved_rate:.0%}, {row.resolved_low:.0%}-{row.resolved_high:.0%})",
        _usd(row.planner_usd_per_task), _usd(row.impl_review_usd_per_task), _usd(row.total_usd_per_task),
        _usd(row.usd_per_resolved), "n/a" if row.mean_rounds is None else f"{row.mean_rounds:.2f}",
        f"{row.escalated} ({row.escalation_rate:.0%})", str(row.calls_made), str(row.calls_cached),
        _usd(row.paid_now_usd), f"{row.wall_s:.1f}s",
    ]  # fmt: skip


def table_rows(report: CompareReport) -> list[dict[str, str | float | int | None]]:
    """The Prefect table artifact: one dict per roster."""
    return [
        {
            "roster": row.roster, "simulated": row.simulated, "tasks": row.tasks, "resolved": row.resolved,
            "resolved_pct": round(100 * row.resolved_rate, 1), "ci95_low_pct": round(100 * row.resolved_low, 1),
            "ci95_high_pct": round(100 * row.resolved_high, 1),
            "planner_usd_per_task": round(row.planner_usd_per_task, 6),
            "impl_review_usd_per_task": round(row.impl_review_usd_per_task, 6),
            "total_usd_per_task": round(row.total_usd_per_task, 6),
            "usd_per_resolved": None if row.usd_per_resolved is None else round(row.usd_per_resolved, 6),
            "mean_rounds": row.mean_rounds, "escalation_rate": row.escalation_rate, "escalated": row.escalated, "llm_calls": row.llm_calls,
            "calls_made": row.calls_made, "calls_cached": row.calls_cached,
            "paid_now_usd": round(row.paid_now_usd, 6), "wall_s": row.wall_s, "pareto": row.pareto,
        }
        for row in report.rows
    ]  # fmt: skip


def render_compare_markdown(report: CompareReport) -> str:
    label = f" — **simulated** ({SIMULATED_NOTE})" if report.simulated else ""
    lines = [
        f"# Roster comparison {report.compare_id}{label}",
        "",
        f"- manifest: `{report.manifest}` ({len(report.tasks)} tasks: {', '.join(report.tasks)})",
        f"- policy: {report.policy_version}; rosters ran one after another, each as its own batch",
        "- costs are what each roster would have paid on its own (cached calls included at their price); "
        "'made now' / 'served from cache' / 'paid now' are what this run spent",
        *[f"- {note}" for note in report.shared],
        "- `*`: on the Pareto front (no other roster resolves at least as many tasks for less per task)",
        "",
        "| " + " | ".join(TABLE_COLUMNS) + " |",
        "|" + "---|" * len(TABLE_COLUMNS),
    ]
    lines += ["| " + " | ".join(table_cells(row)) + " |" for row in report.rows]
    lines += ["", "| roster | planner | implementer | reviewers | outcomes |", "|---|---|---|---|---|"]
    for row in report.rows:
        outcomes = ", ".join(f"{task}: {status}" for task, status in row.outcomes.items())
        lines.append(f"| {row.roster} | {row.planner} | {row.implementer} | {', '.join(row.reviewers)} | {outcomes} |")
    if report.artifacts.get("plot_png"):
        lines += ["", f"![cost per task vs resolved rate]({report.artifacts['plot_png'].rsplit('/', 1)[-1]})"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ estimate


class RosterEstimate(BaseModel):
    roster: str
    simulated: bool
    expected_usd: float = Field(description="What the roster would pay on its own, one round per task.")
    expected_paid_usd: float = Field(description="What this comparison pays for it: plans an earlier roster made are cached.")
    worst_usd: float
    tasks: list[TaskEstimate]


def estimate_compare(
    sizes: list[dict[str, PromptSizes]],
    rosters: list[Roster],
    max_rounds: int,
    price: PriceFn,
) -> list[RosterEstimate]:
    """Per roster, the dry-run estimate (`quorum.domain.estimate`), and what running them in order pays.
    `sizes[i]`: roster i's prompt sizes per task id (each roster's models have their own context budgets)."""
    if len(sizes) != len(rosters):
        raise ValueError(f"estimate_compare: {len(sizes)} size tables for {len(rosters)} rosters")
    seen_planners: set[str] = set()
    rows = []
    for roster, roster_sizes in zip(rosters, sizes, strict=True):
        tasks = [estimate_task(task_id, task_sizes, roster, max_rounds, price) for task_id, task_sizes in roster_sizes.items()]
        expected = sum(t.expected_usd for t in tasks)
        planner_cost = sum(s.cost_usd for t in tasks for s in t.stages if s.stage == "plan")
        key = _stage_key(roster.planner)
        paid = expected - planner_cost if key in seen_planners else expected
        seen_planners.add(key)
        rows.append(RosterEstimate(
            roster=roster.name, simulated=roster.simulated, expected_usd=expected, expected_paid_usd=paid,
            worst_usd=sum(t.worst_usd for t in tasks), tasks=tasks,
        ))  # fmt: skip
    return rows
