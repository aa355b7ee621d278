"""A batch's spend account on the Prefect server, shared by every process that runs its tasks.

The account is a Prefect global concurrency limit named `quorum-budget-<batch>`: its limit is the
batch budget and its active slots are what the batch has spent, both in units of $0.00001. A
charge takes slots (an atomic increment on the server), so tasks running in the batch's own
process and tasks fanned out to workers on other machines draw on one balance. The limit shows in
the UI under Concurrency; raising it there raises the budget of the running batch.

A charge that would pass the limit is refused by the server (422/423); the account then marks the
budget as spent in full. Slots never decay and no lease expires them. Deactivating the limit in the
UI lifts the budget.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from quorum.domain.artifacts import slug

UNIT_USD = 1e-5
MAX_SLOTS = 2**31 - 1  # the server stores limits as 32-bit integers
MAX_BUDGET_USD = MAX_SLOTS * UNIT_USD
PASSES_LIMIT = frozenset({422, 423})  # more slots than the limit at all, or than are left


class BudgetLedgerError(ValueError):
    """A batch budget the server cannot hold, or an account that does not exist."""


def budget_limit_name(batch_id: str) -> str:
    return f"quorum-budget-{slug(batch_id)}"


def to_slots(usd: float, *, round_up: bool) -> int:
    units = usd / UNIT_USD
    return int(math.ceil(units - 1e-9) if round_up else math.floor(units + 1e-9))


class PrefectSpendAccount:
    """`quorum.domain.budget.SpendAccount` held on the Prefect server (see the module docstring)."""

    def __init__(self, name: str):
        self.name = name
        self._client: Any = None
        self._lock = threading.Lock()

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                from prefect.client.orchestration import get_client

                client = get_client(sync_client=True)
                client.__enter__()
                self._client = client
            return self._client

    def _read(self) -> Any:
        from prefect.exceptions import ObjectNotFound

        try:
            return self._api().read_global_concurrency_limit_by_name(self.name)
        except ObjectNotFound as exc:
            raise BudgetLedgerError(f"batch budget account {self.name!r} does not exist on the Prefect server") from exc

    @property
    def limit_usd(self) -> float | None:
        return self._read().limit * UNIT_USD

    def remaining_usd(self) -> float | None:
        limit = self._read()
        if not limit.active:
            return None
        return max(0, limit.limit - limit.active_slots) * UNIT_USD

    def spent_usd(self) -> float:
        return self._read().active_slots * UNIT_USD

    def charge(self, cost_usd: float) -> None:
        from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
        from prefect.exceptions import PrefectHTTPStatusError

        slots = to_slots(cost_usd, round_up=True)
        if slots <= 0:
            return
        try:
            self._api().increment_concurrency_slots(names=[self.name], slots=slots, mode="concurrency")
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code not in PASSES_LIMIT:
                raise
            limit = self._read()  # the charge passes the budget: it is spent in full
            self._api().update_global_concurrency_limit(self.name, GlobalConcurrencyLimitUpdate(active_slots=limit.limit))

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.__exit__(None, None, None)
                self._client = None


def open_batch_account(batch_id: str, limit_usd: float, spent_usd: float = 0.0) -> PrefectSpendAccount:
    """Create (or reset, for a resumed batch) the account of a batch: its budget and what it has spent already."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    if limit_usd > MAX_BUDGET_USD:
        raise BudgetLedgerError(f"a batch budget above ${MAX_BUDGET_USD:,.2f} cannot be held on the Prefect server")
    account = PrefectSpendAccount(budget_limit_name(batch_id))
    limit = max(1, to_slots(limit_usd, round_up=False))
    spent = min(limit, to_slots(spent_usd, round_up=True))
    api = account._api()
    try:
        api.read_global_concurrency_limit_by_name(account.name)
    except ObjectNotFound:
        api.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=account.name, limit=limit, active_slots=spent))
    else:
        api.update_global_concurrency_limit(
            account.name,
            GlobalConcurrencyLimitUpdate(limit=limit, active_slots=spent, active=True, slot_decay_per_second=0.0),
        )
    return account


def close_batch_account(account: PrefectSpendAccount) -> None:
    """Remove a finished batch's account from the server (a resumed batch creates it again)."""
    from prefect.exceptions import ObjectNotFound

    try:
        account._api().delete_global_concurrency_limit_by_name(account.name)
    except ObjectNotFound:
        pass
    account.close()
