"""Prefect states from quorum's outcome rules (quorum.domain.outcome_states): a flow returns one to end in it."""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import State
from prefect.states import Cancelled, Completed, Crashed, Failed

from quorum.domain.outcome_states import CANCELLED, COMPLETED, CRASHED, FAILED, RunStateSpec

_BUILDERS = {COMPLETED: Completed, FAILED: Failed, CRASHED: Crashed, CANCELLED: Cancelled}


def state_for(spec: RunStateSpec, data: Any) -> State:
    """A terminal state carrying `data` as the run's result, whatever its type."""
    return _BUILDERS[spec.type](name=spec.name, message=spec.message, data=data)


def result_of(state: State) -> Any:
    """The result a flow returned with its outcome state (a Failed or Crashed one included).

    A run that really failed (an exception, not an outcome) re-raises that exception here."""
    value = state.result(raise_on_failure=False)
    if isinstance(value, BaseException):
        raise value
    return value


def same_outcome(state: State) -> State:
    """A new state like a subflow's final one (type, name, message, result), for its parent run to end in.

    A flow that returns its subflow's state object ends in a copy with the default name (`Failed`), so the
    parent builds its own."""
    return state_for(RunStateSpec(type=state.type.value, name=state.name, message=state.message or ""), result_of(state))
