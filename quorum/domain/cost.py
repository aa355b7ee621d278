"""Cost and token accounting: pure sums over LLM call records."""

from __future__ import annotations

from collections.abc import Iterable

from quorum.domain.models import CostSummary, LLMCall, StageCost


def _add(total: StageCost, call: LLMCall, fresh: bool) -> None:
    total.calls += 1
    total.fresh_calls += int(fresh)
    total.prompt_tokens += call.prompt_tokens
    total.completion_tokens += call.completion_tokens
    total.cached_tokens += call.cached_tokens
    total.cache_write_tokens += call.cache_write_tokens
    total.cost_usd += call.cost_usd
    total.latency_s += call.latency_s


def summarize_calls(calls: Iterable[LLMCall], *, run_started_at: float = 0.0) -> CostSummary:
    """Sum calls per stage and model. A call older than `run_started_at` was served from cache."""
    summary = CostSummary()
    for call in calls:
        fresh = call.started_at >= run_started_at
        summary.simulated = summary.simulated or call.simulated
        _add(summary.total, call, fresh)
        _add(summary.by_stage.setdefault(call.stage, StageCost()), call, fresh)
        _add(summary.by_model.setdefault(call.model, StageCost()), call, fresh)
    return summary


def merge_summaries(summaries: Iterable[CostSummary]) -> CostSummary:
    merged = CostSummary()
    for summary in summaries:
        add_summary(merged, summary)
    return merged


def add_summary(into: CostSummary, summary: CostSummary) -> None:
    """Add one summary to a running total, in place (a batch report sums its tasks one at a time)."""
    into.simulated = into.simulated or summary.simulated
    _merge(into.total, summary.total)
    for stage, cost in summary.by_stage.items():
        _merge(into.by_stage.setdefault(stage, StageCost()), cost)
    for model, cost in summary.by_model.items():
        _merge(into.by_model.setdefault(model, StageCost()), cost)


def _merge(into: StageCost, other: StageCost) -> None:
    into.calls += other.calls
    into.fresh_calls += other.fresh_calls
    into.prompt_tokens += other.prompt_tokens
    into.completion_tokens += other.completion_tokens
    into.cached_tokens += other.cached_tokens
    into.cache_write_tokens += other.cache_write_tokens
    into.cost_usd += other.cost_usd
    into.latency_s += other.latency_s


def format_usd(amount: float) -> str:
    return f"${amount:.4f}" if amount < 1 else f"${amount:.2f}"


def describe_calls(stage: str, calls: list[LLMCall], detail: str = "") -> str:
    """One line for a stage's log: `plan · openai/gpt-5 · 1,234+567 tokens · $0.0123 · 2.1 s`, then `detail`
    (a review's verdict, ...). Re-asks and fallbacks are summed; the model named is the one that answered."""
    if not calls:
        return " · ".join(part for part in (stage, "no LLM call", detail) if part)
    last = calls[-1]
    model = last.model + (f" (fallback from {last.fallback_from})" if last.fallback_from else "")
    prompt = sum(call.prompt_tokens for call in calls)
    completion = sum(call.completion_tokens for call in calls)
    cost = format_usd(sum(call.cost_usd for call in calls)) + (" simulated" if any(c.simulated for c in calls) else "")
    parts = [stage, model, f"{prompt:,}+{completion:,} tokens", cost, f"{sum(call.latency_s for call in calls):.1f} s"]
    if len(calls) > 1:
        parts.append(f"{len(calls)} calls")
    if detail:
        parts.append(detail)
    return " · ".join(parts)
