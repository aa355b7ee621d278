"""Cost estimates before money is spent: per stage, per task, per batch (pure, given a price function).

Assumptions, stated so a reader can judge the figures:

* tokens are estimated as characters / 4 (the prompt is the real prompt text built from the task
  and each stage's repository context, as the pipeline chooses it within the model's context budget,
  with the deterministic localization standing in for the localizer's answer; placeholders of typical
  size stand in for plan, patch and report, and a reviewer's context is estimated as the localized
  edit targets with their tests, as the patched regions will be);
* a reply uses the typical completion size below for its stage, capped at the model's max_tokens;
* one call per stage (re-asks and retries are not counted);
* `expected` assumes one round with every reviewer; `worst` assumes `max_rounds` rounds with every
  reviewer in each (verification failures skip reviews, so real spend is usually lower);
* prompt caching where the model's provider offers it (quorum.domain.caching): rounds after the first
  read each stage's stable prefix (implementer: context, task and plan; reviewer: task and plan) from
  the cache at the table's cached price, and an Anthropic-family implementer or reviewer pays the
  cache-write price for it in round 1.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from quorum.domain.caching import PROVIDER_CACHING, expected_cache_use
from quorum.domain.roster import Roster, StageModel
from quorum.domain.tokens import CHARS_PER_TOKEN, tokens_for

TYPICAL_COMPLETION_TOKENS = {"localize": 400, "plan": 800, "implement": 1500, "review": 600}
TYPICAL_PLAN_CHARS = 2400
TYPICAL_PATCH_CHARS = 3000
TYPICAL_REPORT_CHARS = 800

# (pricing model, prompt tokens, completion tokens, cached tokens, cache-write tokens) -> USD;
# prompt tokens count every input token, cached and written ones included.
PriceFn = Callable[[str, int, int, int, int], float]


class PromptSizes(BaseModel):
    """Characters of each stage's prompt for one task (reviews: one per reviewer, in roster order)."""

    localize: int = Field(default=0, description="0 when the roster has no localizer (no call).")
    plan: int
    implement: int
    review: list[int]
    implement_stable: int = Field(default=0, description="Of implement: the prefix every round repeats.")
    review_stable: list[int] = Field(default_factory=list, description="Of each review: the prefix every round repeats.")


class StageEstimate(BaseModel):
    stage: str
    model: str
    calls: int = 1
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = Field(default=0, description="Of prompt_tokens, read from the provider's prompt cache.")
    cache_write_tokens: int = Field(default=0, description="Of prompt_tokens, written to the provider's prompt cache.")
    cost_usd: float


class TaskEstimate(BaseModel):
    task_id: str
    stages: list[StageEstimate] = Field(description="Calls of the first round (and the once-per-task stages).")
    later_round: list[StageEstimate] = Field(
        default_factory=list, description="Calls of each round after the first, with the cache they can read."
    )
    expected_usd: float = Field(description="One round, every reviewer.")
    worst_usd: float = Field(description="Every round, every reviewer.")


class BatchEstimate(BaseModel):
    roster: str
    max_rounds: int
    tasks: list[TaskEstimate]
    expected_usd: float
    worst_usd: float
    by_stage_expected_usd: dict[str, float]
    assumptions: list[str]


def stage_estimate(
    stage: str, model: StageModel, prompt_chars: int, price: PriceFn, *, cached_tokens: int = 0, cache_write_tokens: int = 0
) -> StageEstimate:
    prompt_tokens = tokens_for(prompt_chars)
    completion_tokens = min(TYPICAL_COMPLETION_TOKENS[stage], model.max_tokens)
    cached_tokens = min(cached_tokens, prompt_tokens)
    cache_write_tokens = min(cache_write_tokens, prompt_tokens - cached_tokens)
    return StageEstimate(
        stage=stage,
        model=model.model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=cached_tokens,
        cache_write_tokens=cache_write_tokens,
        cost_usd=price(model.pricing_model, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens),
    )


def _round_estimates(stage: str, model: StageModel, chars: int, stable_chars: int, price: PriceFn) -> tuple[StageEstimate, StageEstimate]:
    """A repeating stage's call in round 1 (writing its cache, for Anthropic) and in a later round (reading it)."""
    use = expected_cache_use(stage, model.pricing_model, stable_chars // CHARS_PER_TOKEN)
    first = stage_estimate(stage, model, chars, price, cache_write_tokens=use.written_first)
    later = stage_estimate(stage, model, chars, price, cached_tokens=use.read_later)
    return first, later


def messages_chars(messages: list[dict[str, str]]) -> int:
    return sum(len(message.get("content") or "") for message in messages)


def estimate_task(task_id: str, sizes: PromptSizes, roster: Roster, max_rounds: int, price: PriceFn) -> TaskEstimate:
    once = [stage_estimate("localize", roster.localizer, sizes.localize, price)] if roster.localizer else []
    once.append(stage_estimate("plan", roster.planner, sizes.plan, price))
    implement, implement_later = _round_estimates("implement", roster.implementer, sizes.implement,
                                                  sizes.implement_stable, price)  # fmt: skip
    review_stable = sizes.review_stable or [0] * len(sizes.review)
    reviews = [
        _round_estimates("review", reviewer, chars, stable, price)
        for reviewer, chars, stable in zip(roster.reviewers, sizes.review, review_stable, strict=True)
    ]
    round_one = [implement, *(first for first, _ in reviews)]
    later = [implement_later, *(again for _, again in reviews)]
    first = sum(stage.cost_usd for stage in once) + sum(stage.cost_usd for stage in round_one)
    return TaskEstimate(
        task_id=task_id,
        stages=[*once, *round_one],
        later_round=later,
        expected_usd=first,
        worst_usd=first + sum(stage.cost_usd for stage in later) * (max_rounds - 1),
    )


def estimate_batch(tasks: list[TaskEstimate], roster: Roster, max_rounds: int) -> BatchEstimate:
    by_stage: dict[str, float] = {}
    for task in tasks:
        for stage in task.stages:
            by_stage[stage.stage] = by_stage.get(stage.stage, 0.0) + stage.cost_usd
    return BatchEstimate(
        roster=roster.name,
        max_rounds=max_rounds,
        tasks=tasks,
        expected_usd=sum(t.expected_usd for t in tasks),
        worst_usd=sum(t.worst_usd for t in tasks),
        by_stage_expected_usd=by_stage,
        assumptions=[
            f"tokens = characters / {CHARS_PER_TOKEN}, prompts built from the real task and each stage's repository "
            "context within its model's context budget (deterministic localization; reviewers: the localized edit "
            "targets and their tests)",
            "replies of typical size: "
            + ", ".join(f"{stage} {tokens} tokens" for stage, tokens in TYPICAL_COMPLETION_TOKENS.items())
            + " (capped at each model's max_tokens)",
            "one call per stage: re-asks after unusable replies and transport retries are not counted",
            f"expected = 1 round with {len(roster.reviewers)} reviews; worst = {max_rounds} rounds, all reviewed",
            "prices from litellm's price table (scripted models: the model they are priced as)",
            cache_assumption(roster, max_rounds),
        ],
    )



def cache_assumption(roster: Roster, max_rounds: int) -> str:
    """The dry run's prompt-cache assumption, naming the roster's providers that cache and those that do not."""
    providers = sorted({model.provider for _, model in roster.stage_models()})
    caching = [p for p in providers if p in PROVIDER_CACHING]
    none = [p for p in providers if p not in PROVIDER_CACHING]
    if not caching:
        return "prompt cache: none assumed (no provider of this roster caches prompts)"
    rounds = "rounds 2+" if max_rounds > 1 else "no later round"
    text = (f"prompt cache assumed for {', '.join(caching)}: {rounds} read the implementer's context, task and plan "
            "and each reviewer's task and plan from the cache; Anthropic-family implementers and reviewers pay "
            "the cache-write price for them in round 1 (prompts under a provider's minimum are not cached)")
    return text + (f"; none for {', '.join(none)}" if none else "")
