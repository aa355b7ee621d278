"""Per-provider limits on the Prefect server, created or updated idempotently from the roster.

For each provider the roster uses (fallbacks included):
- `quorum-llm-<provider>`: global concurrency limit, calls in flight across the batch;
- `quorum-llm-<provider>-rpm`: rate limit (slot decay rpm/60 per second), when the roster sets rpm;
- `quorum-llm-<provider>-tpm`: rate limit (slot decay tpm/60 per second), when the roster sets tpm.
A rate limit the roster no longer sets is deactivated, so it throttles nothing.
"""

from __future__ import annotations

from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel

from quorum.prefect_api.provider_slots import (
    concurrency_limit_name,
    register_limits,
    reserve_slots,
    rpm_limit_name,
    tpm_limit_name,
)
from quorum.domain.roster import ProviderLimits, Roster


class LimitSpec(BaseModel):
    """One Prefect global limit as it should be: a concurrency limit (decay 0) or a per-minute rate limit."""

    name: str
    limit: int
    slot_decay_per_second: float = 0.0
    active: bool = True


def limit_specs(limits: dict[str, ProviderLimits]) -> list[LimitSpec]:
    """The Prefect limits that enforce the providers' limits (pure: no server)."""
    specs = []
    for provider, provider_limits_ in sorted(limits.items()):
        specs.append(LimitSpec(name=concurrency_limit_name(provider), limit=provider_limits_.concurrency or 1))
        for name, per_minute in ((rpm_limit_name(provider), provider_limits_.rpm),
                                 (tpm_limit_name(provider), provider_limits_.tpm)):  # fmt: skip
            if per_minute:
                specs.append(LimitSpec(name=name, limit=per_minute, slot_decay_per_second=per_minute / 60.0))
            else:
                specs.append(LimitSpec(name=name, limit=1, active=False))
    return specs


def apply_limit_specs(client: Any, specs: list[LimitSpec]) -> None:
    """Create missing limits and update changed ones; an inactive spec only deactivates an existing limit."""
    for spec in specs:
        try:
            existing = client.read_global_concurrency_limit_by_name(spec.name)
        except ObjectNotFound:
            if spec.active:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(
                        name=spec.name, limit=spec.limit, slot_decay_per_second=spec.slot_decay_per_second
                    )
                )
            continue
        if not spec.active:
            if existing.active:
                client.update_global_concurrency_limit(spec.name, GlobalConcurrencyLimitUpdate(active=False))
            continue
        if (
            existing.limit != spec.limit
            or not existing.active
            or abs((existing.slot_decay_per_second or 0.0) - spec.slot_decay_per_second) > 1e-9
        ):
            client.update_global_concurrency_limit(
                spec.name,
                GlobalConcurrencyLimitUpdate(
                    limit=spec.limit, active=True, slot_decay_per_second=spec.slot_decay_per_second
                ),
            )


def ensure_limits(roster: Roster, reserve: int = 0) -> dict[str, ProviderLimits]:
    """Create or update the Prefect limits of every provider the roster uses; tell this process about them.

    `reserve`: a process about to run that many tasks at once here (an in-process batch) leases up
    to that many slots per provider now, while the server is quiet (handed back if unused).
    """
    limits = roster.provider_limits()
    with get_client(sync_client=True) as client:
        apply_limit_specs(client, limit_specs(limits))
    register_limits(limits)
    reserve_slots(sorted(limits), reserve)
    return limits

