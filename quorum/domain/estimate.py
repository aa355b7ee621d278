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
  reviewer in each (verification failures skip reviews, so real spend is usually lower).
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from quorum.domain.roster import Roster, StageModel
from quorum.domain.tokens import CHARS_PER_TOKEN, tokens_for

TYPICAL_COMPLETION_TOKENS = {"localize": 400, "plan": 800, "implement": 1500, "review": 600}
TYPICAL_PLAN_CHARS = 2400
TYPICAL_PATCH_CHARS = 3000
TYPICAL_REPORT_CHARS = 800

# (pricing model, prompt tokens, completion tokens) -> USD
PriceFn = Callable[[str, int, int], float]


class PromptSizes(BaseModel):
    """Characters of each stage's prompt for one task (reviews: one per reviewer, in roster order)."""

    localize: int = Field(default=0, description="0 when the roster has no localizer (no call).")
    plan: int
    implement: int
    review: list[int]


class StageEstimate(BaseModel):
    stage: str
    model: str
    calls: int = 1
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class TaskEstimate(BaseModel):
    task_id: str
    stages: list[StageEstimate]
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


def stage_estimate(stage: str, model: StageModel, prompt_chars: int, price: PriceFn) -> StageEstimate:
    prompt_tokens = tokens_for(prompt_chars)
    completion_tokens = min(TYPICAL_COMPLETION_TOKENS[stage], model.max_tokens)
    return StageEstimate(
        stage=stage,
        model=model.model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=price(model.pricing_model, prompt_tokens, completion_tokens),
    )


def messages_chars(messages: list[dict[str, str]]) -> int:
    return sum(len(message.get("content") or "") for message in messages)


def estimate_task(task_id: str, sizes: PromptSizes, roster: Roster, max_rounds: int, price: PriceFn) -> TaskEstimate:
    once = [stage_estimate("localize", roster.localizer, sizes.localize, price)] if roster.localizer else []
    once.append(stage_estimate("plan", roster.planner, sizes.plan, price))
    implement = stage_estimate("implement", roster.implementer, sizes.implement, price)
    reviews = [stage_estimate("review", reviewer, chars, price) for reviewer, chars in zip(roster.reviewers, sizes.review, strict=True)]
    per_round = implement.cost_usd + sum(r.cost_usd for r in reviews)
    first = sum(stage.cost_usd for stage in once)
    return TaskEstimate(
        task_id=task_id,
        stages=[*once, implement, *reviews],
        expected_usd=first + per_round,
        worst_usd=first + per_round * max_rounds,
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
        ],
    )

