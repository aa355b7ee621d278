"""The aggregation policy as a Prefect task, so each decision shows in the UI; the rules are `decide`."""

from __future__ import annotations

from prefect import task

from quorum.domain.models import Decision
from quorum.domain.policy import AggregationInput, Policy, decide


@task(name="aggregate", task_run_name="aggregate · {label} · round {inputs.round}")
def aggregate_task(inputs: AggregationInput, policy: Policy, label: str) -> Decision:
    """`label` names what is decided on (the task id, or the change and panel) in the run's name."""
    return decide(inputs, policy)
