"""How outcomes show as Prefect run states (pure rules, and the states built from them)."""

from __future__ import annotations

import pytest

from quorum.domain.models import TaskStatus
from quorum.domain.outcome_states import MAX_MESSAGE, batch_state_spec, counts_name, task_state_spec


@pytest.mark.parametrize(
    ("status", "kind", "name"),
    [
        (TaskStatus.resolved, "COMPLETED", "Resolved"),
        (TaskStatus.approved_unverified, "COMPLETED", "Approved unverified"),
        (TaskStatus.escalated, "FAILED", "Escalated"),
        (TaskStatus.failed, "FAILED", "Failed"),
        (TaskStatus.error, "CRASHED", "Error"),
        (TaskStatus.skipped, "CANCELLED", "Skipped"),
    ],
)
def test_every_outcome_has_its_state(status, kind, name):
    spec = task_state_spec(status, "why it ended")
    assert (spec.type, spec.name) == (kind, name)
    assert spec.message == f"{status.value}: why it ended"


def test_a_long_reason_is_cut_in_the_message():
    spec = task_state_spec(TaskStatus.error, "x" * 5000)
    assert len(spec.message) == MAX_MESSAGE and spec.message.endswith("…")


def test_counts_are_named_in_a_fixed_order_without_zeros():
    assert counts_name({"escalated": 1, "resolved": 2, "failed": 0}) == "2 resolved · 1 escalated"
    assert counts_name({"approved_unverified": 3}) == "3 approved unverified"
    assert counts_name({}) == "no tasks"


@pytest.mark.parametrize(
    ("counts", "kind"),
    [
        ({"resolved": 3}, "COMPLETED"),
        ({"resolved": 1, "approved_unverified": 1, "skipped": 5}, "COMPLETED"),
        ({"resolved": 2, "escalated": 1}, "FAILED"),
        ({"failed": 3}, "FAILED"),
        ({"resolved": 9, "error": 1}, "FAILED"),
    ],
)
def test_a_batch_is_red_when_a_task_needs_a_human_or_broke(counts, kind):
    spec = batch_state_spec("nightly-2026-12-01", counts, "file:///srv/quorum/runs/nightly/report.jsonl")
    assert spec.type == kind
    assert spec.message.startswith(f"batch nightly-2026-12-01: {sum(counts.values())} task(s); ")
    assert spec.message.endswith("report: file:///srv/quorum/runs/nightly/report.jsonl")


def test_an_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="unknown outcome"):
        batch_state_spec("b", {"resolved": 1, "mystery": 2})


def test_prefect_states_carry_the_result_whatever_their_type():
    from quorum.prefect_api.states import result_of, state_for

    for status in TaskStatus:
        state = state_for(task_state_spec(status, "r"), {"task": "t1"})
        assert state.name == task_state_spec(status).name
        assert state.type.value == task_state_spec(status).type
        assert result_of(state) == {"task": "t1"}


def test_a_real_failure_is_raised_not_returned():
    from prefect.states import Failed

    from quorum.prefect_api.states import result_of

    with pytest.raises(RuntimeError, match="boom"):
        result_of(Failed(data=RuntimeError("boom")))
