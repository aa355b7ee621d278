"""Budgets: how much a task and a whole batch may spend, checked before every paid stage.

A stage is only started when its estimated cost (see `quorum.domain.estimate`) still fits both the
task's budget and what is left of the batch's. Spending is charged as calls come back, from their
real cost, to the batch's spend account (`SpendAccount`). There is one account per batch, wherever
its tasks run: on the Prefect server (`quorum.prefect_api.budget_ledger`), so tasks in this
process and tasks fanned out to other workers draw on the same balance. `BatchBudget` is the same
account in memory, for code that runs without a server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel, Field


class BudgetCheck(BaseModel):
    """Whether a stage may start; when not, `reason` says which budget it would break."""

    allowed: bool
    reason: str = ""
    scope: str = Field(default="", description="'task' or 'batch': the budget that refused.")


class SpendAccount(Protocol):
    """What a batch may still spend (None: no limit) and what it has spent."""

    @property
    def limit_usd(self) -> float | None: ...

    def remaining_usd(self) -> float | None: ...

    def charge(self, cost_usd: float) -> None: ...


def exhausted(account: SpendAccount) -> bool:
    remaining = account.remaining_usd()
    return remaining is not None and remaining <= 0.0


class BatchBudget:
    """A thread-safe, in-memory spend account against a limit (None: unlimited)."""

    def __init__(self, limit_usd: float | None, spent_usd: float = 0.0):
        self._limit = limit_usd
        self._spent = spent_usd
        self._lock = threading.Lock()

    @property
    def limit_usd(self) -> float | None:
        return self._limit

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return self._spent

    def remaining_usd(self) -> float | None:
        if self._limit is None:
            return None
        return max(0.0, self._limit - self.spent_usd)

    def exhausted(self) -> bool:
        return exhausted(self)

    def charge(self, cost_usd: float) -> None:
        with self._lock:
            self._spent += cost_usd


UNLIMITED: SpendAccount = BatchBudget(None)


def close_to_new_tasks(account: SpendAccount) -> None:
    """What is left could not pay for a task's first stage: count it as spent, so no other task starts.

    Called when a task is skipped for the batch budget inside its pipeline (after its prompt was
    measured). Without it every later task would also start a run and prepare a workspace only to
    be refused; with it they are skipped before that (`SpendGate`). Raising the budget (on the
    Prefect server: the limit of `quorum-budget-<batch>`) opens the batch again.
    """
    remaining = account.remaining_usd()
    if remaining:
        account.charge(remaining)


class SpendGate:
    """Asked before each task starts: is the batch's account spent? A 'spent' answer is remembered for
    `memory_s`, so thousands of tasks skipped in a row ask the account (a Prefect server) about once a
    second; 'not spent' is never remembered (the task's own stages check the budget again anyway)."""

    def __init__(self, account: SpendAccount, *, memory_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.account = account
        self.memory_s = memory_s
        self.clock = clock
        self._spent_at: float | None = None
        self._lock = threading.Lock()

    def spent(self) -> bool:
        with self._lock:
            if self._spent_at is not None and self.clock() - self._spent_at < self.memory_s:
                return True
        if exhausted(self.account):
            with self._lock:
                self._spent_at = self.clock()
            return True
        return False


def check_stage(
    *,
    stage: str,
    estimate_usd: float,
    task_spent_usd: float,
    task_budget_usd: float | None,
    batch: SpendAccount | None,
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
