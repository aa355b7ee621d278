"""Budgets: how much a task and a whole batch may spend, checked before every paid stage.

A stage is only started when its estimated cost (see `quorum.domain.estimate`) still fits both the
task's budget and what is left of the batch's. Spending is charged as calls come back, from
their real cost. The batch budget is shared by the tasks of one batch that run in this process;
a batch that fans out to other workers checks it before dispatching each task instead, and
hands each task the remainder as its own cap.
"""

from __future__ import annotations

import threading

from pydantic import BaseModel, Field


class BudgetCheck(BaseModel):
    """Whether a stage may start; when not, `reason` says which budget it would break."""

    allowed: bool
    reason: str = ""
    scope: str = Field(default="", description="'task' or 'batch': the budget that refused.")


class BatchBudget:
    """A thread-safe account of what one batch has spent against its limit (None: unlimited)."""

    def __init__(self, limit_usd: float | None, spent_usd: float = 0.0):
        self.limit_usd = limit_usd
        self._spent = spent_usd
        self._lock = threading.Lock()

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return self._spent

    def remaining_usd(self) -> float | None:
        if self.limit_usd is None:
            return None
        return max(0.0, self.limit_usd - self.spent_usd)

    def exhausted(self) -> bool:
        remaining = self.remaining_usd()
        return remaining is not None and remaining <= 0.0

    def charge(self, cost_usd: float) -> None:
        with self._lock:
            self._spent += cost_usd


def check_stage(
    *,
    stage: str,
    estimate_usd: float,
    task_spent_usd: float,
    task_budget_usd: float | None,
    batch: BatchBudget | None,
) -> BudgetCheck:
    """Pure rule: a stage starts only if its estimate fits the task budget and the batch's remainder."""
    if task_budget_usd is not None and task_spent_usd + estimate_usd > task_budget_usd:
        return BudgetCheck(
            allowed=False,
            scope="task",
            reason=(
                f"budget: task budget ${task_budget_usd:.4f} would be exceeded by {stage} "
                f"(spent ${task_spent_usd:.4f}, {stage} estimated ${estimate_usd:.4f})"
            ),
        )
    remaining = batch.remaining_usd() if batch else None
    if remaining is not None and estimate_usd > remaining:
        return BudgetCheck(
            allowed=False,
            scope="batch",
            reason=(
                f"budget: batch budget ${batch.limit_usd:.4f} spent "  # type: ignore[union-attr]
                f"(${remaining:.4f} left, {stage} estimated ${estimate_usd:.4f})"
            ),
        )
    return BudgetCheck(allowed=True)


_registry: dict[str, BatchBudget] = {}
_registry_lock = threading.Lock()


def register_batch(batch_id: str, budget: BatchBudget) -> None:
    with _registry_lock:
        _registry[batch_id] = budget


def unregister_batch(batch_id: str) -> None:
    with _registry_lock:
        _registry.pop(batch_id, None)


def batch_budget(batch_id: str) -> BatchBudget | None:
    """The budget of a batch running in this process, if any (a task run alone has none)."""
    with _registry_lock:
        return _registry.get(batch_id)
