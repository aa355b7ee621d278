"""The batch spend account on a real Prefect server: one balance for every process of a batch."""

from __future__ import annotations

import pytest

from quorum.domain.budget import check_stage, exhausted
from quorum.prefect_api.budget_ledger import (
    BudgetLedgerError,
    PrefectSpendAccount,
    budget_limit_name,
    close_batch_account,
    open_batch_account,
    to_slots,
)


def test_slots_round_charges_up_and_budgets_down():
    assert to_slots(0.000011, round_up=True) == 2
    assert to_slots(0.000019, round_up=False) == 1
    assert to_slots(0.5, round_up=True) == to_slots(0.5, round_up=False) == 50_000


def test_two_handles_on_one_account_share_the_balance(prefect_harness):
    batch = open_batch_account("ledger-shared", 0.01)
    other_process = PrefectSpendAccount(budget_limit_name("ledger-shared"))  # what a fanned-out task opens
    try:
        assert batch.limit_usd == pytest.approx(0.01)
        batch.charge(0.004)
        other_process.charge(0.003)
        assert batch.remaining_usd() == pytest.approx(0.003)
        assert other_process.spent_usd() == pytest.approx(0.007)
        refused = check_stage(stage="review", estimate_usd=0.004, task_spent_usd=0.0, task_budget_usd=None,
                              batch=other_process)  # fmt: skip
        assert not refused.allowed and refused.scope == "batch"
        assert refused.reason == "budget: batch budget $0.0100 spent ($0.0030 left, review estimated $0.0040)"
    finally:
        close_batch_account(batch)
        other_process.close()


def test_a_charge_past_the_budget_spends_it_in_full(prefect_harness):
    account = open_batch_account("ledger-over", 0.001)
    try:
        account.charge(0.0042)  # more than the whole budget in one call: the server refuses the slots
        assert account.remaining_usd() == 0.0 and exhausted(account)
        account.charge(0.0001)  # and later charges do not fail
        assert exhausted(account)
    finally:
        close_batch_account(account)


def test_a_resumed_batch_starts_from_what_it_had_spent(prefect_harness):
    first = open_batch_account("ledger-resume", 1.0)
    first.charge(0.6)
    resumed = open_batch_account("ledger-resume", 1.0, spent_usd=0.25)  # only kept results count
    try:
        assert resumed.remaining_usd() == pytest.approx(0.75)
    finally:
        close_batch_account(resumed)
        first.close()
    with pytest.raises(BudgetLedgerError, match="does not exist"):
        PrefectSpendAccount(budget_limit_name("ledger-resume")).remaining_usd()


def test_budgets_the_server_cannot_hold_are_refused(prefect_harness):
    with pytest.raises(BudgetLedgerError, match="cannot be held"):
        open_batch_account("ledger-huge", 50_000.0)
