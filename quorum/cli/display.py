"""The CLI's progress display and summary table (rich), fed by `quorum.domain.progress` events."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from quorum.domain.progress import ProgressEvent
from quorum.domain.cost import format_usd
from quorum.domain.estimate import BatchEstimate
from quorum.domain.models import BatchReport, ReportRow
from quorum.domain.results import cached_note

MAX_TABLE_ROWS = 50  # a batch with more tasks shows only what needs a person (the first of them) in its table

STATUS_STYLE = {
    "resolved": "green",
    "approved_unverified": "green",
    "escalated": "yellow",
    "failed": "red",
    "error": "bold red",
    "skipped": "magenta",
}


def _console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=130)


class BatchDisplay:
    def __init__(self, task_ids: list[str], *, simulated: bool, console: Console | None = None):
        # Piped output (CI logs, `make demo | tee`) gets a wide fixed width instead of 80 columns.
        self.console = console or _console()
        self.simulated = simulated
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.bar = self.progress.add_task("batch", total=len(task_ids))

    def banner(self, manifest, roster, store_url: str) -> None:
        self.console.print(f"[bold]quorum[/bold] batch [cyan]{manifest.batch}[/cyan]: {len(manifest.tasks)} task(s), roster {roster.name}")
        for stage, model in roster.stage_models():
            priced = f" (scripted, priced as {model.priced_as})" if model.is_scripted else ""
            self.console.print(f"  {stage:<9} {model.model}{priced}, context {model.context_budget(stage)} tokens")
        if roster.localizer is None:
            self.console.print("  localize  deterministic ranking (no localizer in the roster)")
        if self.simulated:
            self.console.print("  [yellow]scripted models: replies come from script files; tokens and costs are simulated[/yellow]")
        self.console.print(f"  artifacts: {store_url}")

    def __enter__(self) -> BatchDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def on_event(self, event: ProgressEvent) -> None:
        """The run's progress sink (`RunContext.progress`)."""
        if event.done:
            style = STATUS_STYLE.get(event.stage, "white")
            reason = f" — {one_line(event.detail, 160)}" if event.detail else ""
            self.progress.console.print(f"  [{style}]{event.stage:<10}[/{style}] {event.task_id}{reason}")
            self.progress.advance(self.bar)
        else:
            detail = f" ({event.detail})" if event.detail else ""
            self.progress.console.print(f"  [dim]{event.task_id}: {event.stage}{detail}[/dim]")

    def summary(self, report: BatchReport, *, wall_s: float, rows: list[ReportRow] | None = None) -> None:
        """The outcome table (every task of a small batch; for a large one the first that need a person) and totals."""
        label = " (simulated)" if report.cost.simulated else ""
        rows = report.needs_human if rows is None else rows
        every = len(rows) == report.tasks
        title = f"batch {report.batch_id}" if every else f"batch {report.batch_id}: needs a person ({report.needs_human_total})"
        table = Table(title=title)
        table.add_column("task", no_wrap=True)
        table.add_column("outcome", no_wrap=True)
        table.add_column("rounds", justify="right", min_width=6)
        table.add_column(f"cost{label}", justify="right", no_wrap=True)
        table.add_column("calls new/cached", justify="right", no_wrap=True)
        for r in rows:
            style = STATUS_STYLE.get(r.status.value, "white")
            fresh = r.cost.total.fresh_calls
            table.add_row(
                r.task_id,
                f"[{style}]{r.status.value}[/{style}]",
                str(r.rounds),
                format_usd(r.cost.total.cost_usd),
                f"{fresh}/{r.cost.total.calls - fresh}",
            )
        if rows:
            self.console.print(table)
        if not every and report.needs_human_total > len(rows):
            self.console.print(f"... {report.needs_human_total - len(rows)} more that need a person in the full report")
        per_resolved = format_usd(report.cost_per_resolved_usd) if report.cost_per_resolved_usd is not None else "n/a"
        self.console.print(
            f"resolved {report.counts.get('resolved', 0)}/{report.tasks} ({report.resolved_rate:.0%}); "
            f"cost{label} {format_usd(report.cost.total.cost_usd)} total, {per_resolved} per resolved task; "
            f"prompt tokens {report.cost.total.prompt_tokens}, {cached_note(report.cost.total)}"
        )
        counted = ", ".join(f"{status} {count}" for status, count in report.counts.items() if count)
        self.console.print(f"outcomes: {counted}" + (f"; {report.shards} shard runs" if report.shards else ""))
        self.console.print(
            f"LLM calls this run: {report.fresh_llm_calls} made, {report.cached_llm_calls} served from cache; "
            f"wall time {wall_s:.1f}s"
        )
        if report.reused_results:
            self.console.print(f"resumed: {report.reused_results} finished result(s) kept from an earlier run of this batch")
        base = f"{report.store.rstrip('/')}/runs/{report.batch_id}"
        self.console.print(f"report: {base}/report.json (summary), {base}/report.jsonl (one line per task)")


def print_estimate(estimate: BatchEstimate, *, simulated: bool, console: Console | None = None) -> None:
    """The dry-run table: estimated cost per task and stage, the totals and the assumptions behind them."""
    console = console or _console()
    label = " (simulated prices)" if simulated else ""
    table = Table(title=f"estimated cost, roster {estimate.roster}{label}")
    table.add_column("task", no_wrap=True)
    stages = [s for s in ("localize", "plan", "implement", "review") if any(e.stage == s for t in estimate.tasks for e in t.stages)]
    for stage in stages:
        table.add_column(stage, justify="right", no_wrap=True)
    table.add_column("expected", justify="right", no_wrap=True)
    table.add_column(f"worst ({estimate.max_rounds} rounds)", justify="right", no_wrap=True)
    for task in estimate.tasks:
        by_stage: dict[str, float] = {}
        for stage in task.stages:
            by_stage[stage.stage] = by_stage.get(stage.stage, 0.0) + stage.cost_usd
        table.add_row(
            task.task_id,
            *(format_usd(by_stage.get(stage, 0.0)) for stage in stages),
            format_usd(task.expected_usd),
            format_usd(task.worst_usd),
        )
    console.print(table)
    console.print(
        f"batch of {len(estimate.tasks)}: expected {format_usd(estimate.expected_usd)}, "
        f"worst case {format_usd(estimate.worst_usd)}"
    )
    later = [stage for task in estimate.tasks for stage in task.later_round]
    if estimate.max_rounds > 1 and later:
        cached, prompt = sum(s.cached_tokens for s in later), sum(s.prompt_tokens for s in later)
        written = sum(s.cache_write_tokens for task in estimate.tasks for s in task.stages)
        console.print(
            f"prompt cache (assumed): each round after the first reads {cached} of its {prompt} prompt tokens "
            f"from the providers' caches" + (f"; round 1 writes {written} tokens to Anthropic's" if written else "")
        )
    console.print("assumptions:")
    for assumption in estimate.assumptions:
        console.print(f"  - {assumption}")


def one_line(text: str, limit: int) -> str:
    """Text on one line (runs of whitespace, newlines included, become one space), cut at a word with '…'."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1].rsplit(" ", 1)[0] if " " in flat[: limit - 1] else flat[: limit - 1]
    return cut + "…"
