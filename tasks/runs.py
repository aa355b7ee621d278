"""The flow run's own record in Prefect: its name, set once the run knows it."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from quorum.prefect_api.runs import rename_flow_run


@task(name="name-run", task_run_name="name run · {name}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def name_run_task(name: str) -> None:
    """Rename the calling flow's run (e.g. the nightly run, from its manifest path to its dated batch id)."""
    if flow_run.id:
        rename_flow_run(flow_run.id, name)
