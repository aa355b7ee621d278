"""What one task has paid for and how long its stages took, while it runs (pure bookkeeping)."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator

from quorum.domain.budget import BudgetCheck, SpendAccount, check_stage
from quorum.domain.cost import summarize_calls
from quorum.domain.estimate import PriceFn, stage_estimate
from quorum.domain.manifest import TaskSpec
from quorum.domain.models import Decision, EnvironmentSummary, LLMCall, RoundContext, TaskResult, TaskStatus
from quorum.domain.roster import StageModel


class TaskLedger:
    """Calls paid for and time spent per stage by one task; fresh spend is charged to the batch account."""

    def __init__(self, account: SpendAccount, run_started_at: float) -> None:
        self.account = account
        self.run_started_at = run_started_at
        self.calls: list[LLMCall] = []
        self.timings: dict[str, float] = defaultdict(float)

    def add(self, calls: list[LLMCall]) -> None:
        self.calls.extend(calls)
        fresh = sum(call.cost_usd for call in calls if call.started_at >= self.run_started_at)
        if fresh:
            self.account.charge(fresh)

    def spent(self) -> float:
        return sum(call.cost_usd for call in self.calls)

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.time()
        try:
            yield
        finally:
            self.timings[stage] += time.time() - started

    def allows(
        self, stage: str, models: list[StageModel], prompt_chars: int | list[int], price: PriceFn,
        task_budget_usd: float | None,
    ) -> BudgetCheck:  # fmt: skip
        """Whether a stage with these models still fits the task's budget and the batch's remainder.

        `prompt_chars`: the prompt's size, or one per model (each reviewer has a context of its own)."""
        sizes = prompt_chars if isinstance(prompt_chars, list) else [prompt_chars] * len(models)
        estimate = sum(stage_estimate(stage, model, chars, price).cost_usd for model, chars in zip(models, sizes, strict=True))
        return check_stage(
            stage=stage, estimate_usd=estimate, task_spent_usd=self.spent(),
            task_budget_usd=task_budget_usd, batch=self.account,
        )  # fmt: skip

    def result(
        self,
        spec: TaskSpec,
        batch_id: str,
        status: TaskStatus,
        reason: str,
        *,
        decision: Decision | None = None,
        rounds: int = 0,
        artifacts: dict[str, str] | None = None,
        contexts: list[RoundContext] | None = None,
        environment: EnvironmentSummary | None = None,
    ) -> TaskResult:
        return TaskResult(
            batch_id=batch_id,
            task_id=spec.id,
            repo=spec.repo,
            status=status,
            reason=reason,
            rounds=rounds,
            decision=decision,
            cost=summarize_calls(self.calls, run_started_at=self.run_started_at),
            timings_s={stage: round(seconds, 3) for stage, seconds in self.timings.items()},
            artifacts=dict(artifacts or {}),
            contexts=list(contexts or []),
            policy_version=decision.policy_version if decision else "",
            environment=environment,
        )
