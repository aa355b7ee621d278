"""Per-provider limits on the Prefect server, created or updated from the roster at flow start."""

from __future__ import annotations

from prefect import task

from quorum.domain.roster import ProviderLimits, Roster
from quorum.prefect_api.limits import ensure_limits


@task(name="ensure-provider-limits", task_run_name="limits · {roster.name}")
def ensure_limits_task(roster: Roster, reserve: int = 0) -> dict[str, ProviderLimits]:
    return ensure_limits(roster, reserve)
