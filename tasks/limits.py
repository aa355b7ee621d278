"""Per-provider global concurrency limits, created or updated idempotently from the roster."""

from __future__ import annotations

from prefect import task
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.exceptions import ObjectNotFound

from quorum.llm import concurrency_limit_name
from quorum.roster import Roster


def provider_limits(roster: Roster) -> dict[str, int]:
    """Concurrency per provider: the roster's setting, else its default."""
    return {provider: roster.concurrency.get(provider, roster.default_concurrency) for provider in roster.providers()}


@task(name="ensure-provider-limits", task_run_name="limits · {roster.name}")
def ensure_limits_task(roster: Roster) -> dict[str, int]:
    limits = provider_limits(roster)
    with get_client(sync_client=True) as client:
        for provider, limit in limits.items():
            name = concurrency_limit_name(provider)
            try:
                existing = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
                continue
            if existing.limit != limit or not existing.active:
                client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit, active=True))
    return limits
