"""The aggregation policy as a Prefect task, so each decision shows in the UI; the rules are `decide`."""

from __future__ import annotations

from prefect import task

from quorum.domain.policy import decide

aggregate_task = task(decide, name="aggregate", task_run_name="aggregate · round {inputs.round}")
