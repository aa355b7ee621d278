"""Per-provider limits across a whole batch, held on the Prefect server.

- Calls in flight: a Prefect global concurrency limit `quorum-llm-<provider>` (strict: a missing
  limit is an error, never a silent no-op).
- Requests and tokens per minute: Prefect rate limits (global limits with slot decay)
  `quorum-llm-<provider>-rpm` and `-tpm`; a call occupies 1 request and its estimated tokens.

Asking the Prefect server for a concurrency slot on every call is slow: here one acquire+release
took ~180 ms uncontended, and a waiting acquirer polls with a server-chosen Retry-After, so 40 calls
of 0.5 s at a limit of 4 took 15 s against a 5 s bound. Each process therefore keeps one
`ProviderSlotPool` per provider:

- an in-process gate sized to the provider's limit, so the process never asks for more slots than
  the limit and waiting calls queue locally instead of polling the server;
- global slots are leased from Prefect (leases renew in the background and expire on the server if
  the process dies), kept while calls keep coming, and handed back after `LINGER_S` idle.

A slot thus passes from one call to the next in microseconds, and the global bound still holds:
every call in flight holds one leased global slot. Outside a Prefect run nothing is throttled.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from quorum.roster import ProviderLimits

logger = logging.getLogger("quorum.provider_limits")

LEASE_S = 60.0  # the Prefect server's minimum lease
RENEW_EVERY_S = LEASE_S / 3
LINGER_S = 2.0  # idle leases are handed back to the server after this long
HOUSEKEEPING_EVERY_S = 0.25
MAX_POLL_S = 2.0  # longest sleep between asking the server for a slot another process holds


def concurrency_limit_name(provider: str) -> str:
    return f"quorum-llm-{provider}"


def rpm_limit_name(provider: str) -> str:
    return f"quorum-llm-{provider}-rpm"


def tpm_limit_name(provider: str) -> str:
    return f"quorum-llm-{provider}-tpm"


class ProviderLimitMissing(RuntimeError):
    """The provider has no global concurrency limit on the Prefect server (create them from the roster first)."""


class SlotWaitTimeout(TimeoutError):
    """No provider slot became free within the allowed wait."""


def in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def prefect_api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value() or "ephemeral")


class _Gate:
    """A counting semaphore whose capacity can change while it is in use; counts its waiters."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.in_use = 0
        self.waiting = 0
        self._condition = threading.Condition()

    def acquire(self, deadline: float | None) -> bool:
        with self._condition:
            self.waiting += 1
            try:
                while self.in_use >= self.capacity:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._condition.wait(remaining)
                self.in_use += 1
                return True
            finally:
                self.waiting -= 1

    def release(self) -> None:
        with self._condition:
            self.in_use -= 1
            self._condition.notify()

    def resize(self, capacity: int) -> None:
        with self._condition:
            self.capacity = capacity
            self._condition.notify_all()


@dataclass
class _Lease:
    """One Prefect lease on `slots` slots of a provider's global limit; `in_use` of them carry calls now."""

    id: UUID
    slots: int
    renewed_at: float
    in_use: int = 0
    idle_since: float | None = None


class ProviderSlotPool:
    """One provider's slots in this process: a local gate in front of leased Prefect global slots.

    Only one thread at a time asks the server for slots, for as many as calls are waiting (up to
    the limit), so a burst of calls costs one or a few server round trips instead of one each.
    """

    def __init__(self, provider: str, limits: ProviderLimits, client: Any):
        self.provider = provider
        self.limits = limits
        self.name = concurrency_limit_name(provider)
        self._client = client
        self._gate = _Gate(limits.concurrency or 1)
        self._condition = threading.Condition()
        self._leases: list[_Lease] = []
        self._leasing = False
        self.counts = {"calls": 0, "server_leases": 0, "slots_leased": 0, "leases_returned": 0, "server_waits": 0}

    def resize(self, limits: ProviderLimits) -> None:
        self.limits = limits
        self._gate.resize(limits.concurrency or 1)

    @contextlib.contextmanager
    def slot(self, tokens: int, deadline: float | None) -> Iterator[None]:
        if not self._gate.acquire(deadline):
            raise SlotWaitTimeout(f"no {self.provider} slot free in this process before the wait limit")
        try:
            self._take_rate_limits(tokens, deadline)
            lease = self._claim(deadline)
            try:
                yield
            finally:
                with self._condition:
                    lease.in_use -= 1
                    if lease.in_use == 0:
                        lease.idle_since = time.monotonic()
                    self._condition.notify()
        finally:
            self._gate.release()

    def _take_rate_limits(self, tokens: int, deadline: float | None) -> None:
        from prefect.concurrency.sync import rate_limit

        timeout = None if deadline is None else max(0.001, deadline - time.monotonic())
        if self.limits.rpm:
            rate_limit(rpm_limit_name(self.provider), occupy=1, timeout_seconds=timeout, strict=True)
        if self.limits.tpm and tokens > 0:
            occupy = min(tokens, self.limits.tpm)
            rate_limit(tpm_limit_name(self.provider), occupy=occupy, timeout_seconds=timeout, strict=True)

    def _take_free_slot(self) -> _Lease | None:
        """A held slot no call is using (caller holds the condition)."""
        for lease in self._leases:
            if lease.in_use < lease.slots:
                lease.in_use += 1
                lease.idle_since = None
                return lease
        return None

    def _claim(self, deadline: float | None) -> _Lease:
        """A slot for one call: a held one if free, else newly leased from the server."""
        with self._condition:
            self.counts["calls"] += 1
            while True:
                lease = self._take_free_slot()
                if lease is not None:
                    return lease
                if not self._leasing:
                    self._leasing = True
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise SlotWaitTimeout(f"no {self.provider} slot free before the wait limit")
                self._condition.wait(remaining)
        try:
            return self._lease_for_waiting_calls(deadline)
        finally:
            with self._condition:
                self._leasing = False
                self._condition.notify_all()

    def _lease_for_waiting_calls(self, deadline: float | None) -> _Lease:
        """Lease slots for this call and every call queued behind it; poll while another process holds them."""
        while True:
            with self._condition:
                held = sum(lease.slots for lease in self._leases)
                demand = 1 + self._gate.waiting + max(0, self._gate.in_use - 1 - sum(l.in_use for l in self._leases))
                wanted = max(1, min(demand, (self.limits.concurrency or 1) - held))
            lease, retry_after = self._try_lease(wanted)
            if lease is None and wanted > 1:  # all-or-nothing on the server: settle for one slot
                lease, retry_after = self._try_lease(1)
            with self._condition:
                if lease is not None:
                    lease.in_use = 1
                    self._leases.append(lease)
                    self.counts["server_leases"] += 1
                    self.counts["slots_leased"] += lease.slots
                    return lease
                self.counts["server_waits"] += 1
                wait = min(MAX_POLL_S, retry_after)
                if deadline is not None and time.monotonic() + wait > deadline:
                    raise SlotWaitTimeout(f"no {self.provider} slot free on the Prefect server before the wait limit")
                self._condition.wait(wait)  # a local call finishing frees a slot sooner than the server would
                freed = self._take_free_slot()
                if freed is not None:
                    return freed

    def _try_lease(self, slots: int) -> tuple[_Lease | None, float]:
        """One request to the server: a lease, or (None, seconds to wait) when the limit is full."""
        import httpx

        try:
            response = self._client.increment_concurrency_slots_with_lease(
                names=[self.name], slots=slots, mode="concurrency", lease_duration=LEASE_S
            )
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 423:  # 423 Locked: the slots are held (by another process)
                raise
            return None, float(exc.response.headers.get("Retry-After", 1.0) or 1.0)
        body = response.json()
        if not body.get("limits"):
            raise ProviderLimitMissing(
                f"global concurrency limit {self.name!r} does not exist on the Prefect server; "
                "create the limits from the roster first (tasks.limits.ensure_limits_task)"
            )
        return _Lease(id=UUID(str(body["lease_id"])), slots=slots, renewed_at=time.monotonic()), 0.0

    def housekeeping(self, now: float, *, release_all: bool = False) -> None:
        """Hand back leases idle longer than LINGER_S (all idle ones at exit); renew the rest before they expire."""
        with self._condition:
            expired = [
                lease for lease in self._leases
                if lease.in_use == 0 and (release_all or now - (lease.idle_since or now) >= LINGER_S)
            ]  # fmt: skip
            for lease in expired:
                self._leases.remove(lease)
            due = [lease for lease in self._leases if now - lease.renewed_at >= RENEW_EVERY_S]
            self.counts["leases_returned"] += len(expired)
        for lease in expired:
            self._call_server(self._client.release_concurrency_slots_with_lease, lease.id)
        for lease in due:
            if self._call_server(self._client.renew_concurrency_lease, lease_id=lease.id, lease_duration=LEASE_S):
                lease.renewed_at = now

    def _call_server(self, method: Any, *args: Any, **kwargs: Any) -> bool:
        try:
            method(*args, **kwargs)
            return True
        except Exception as exc:  # housekeeping must not die; a lost lease expires on the server
            logger.warning("%s lease housekeeping failed: %s", self.provider, type(exc).__name__)
            return False

    def stats(self) -> dict[str, int]:
        with self._condition:
            held = sum(lease.slots for lease in self._leases)
            in_use = sum(lease.in_use for lease in self._leases)
            return {**self.counts, "slots_held": held, "slots_in_use": in_use}


# ----- registry: one pool per (Prefect API, provider) in this process ------------------------------

_registry_lock = threading.Lock()
_registered: dict[tuple[str, str], ProviderLimits] = {}
_pools: dict[tuple[str, str], ProviderSlotPool] = {}
_housekeeper: threading.Thread | None = None
_stop_housekeeping = threading.Event()


def register_limits(limits: dict[str, ProviderLimits]) -> None:
    """Tell this process the limits just written to the Prefect server (resizes existing pools)."""
    api = prefect_api_url()
    with _registry_lock:
        for provider, provider_limits in limits.items():
            _registered[(api, provider)] = provider_limits
            pool = _pools.get((api, provider))
            if pool is not None:
                pool.resize(provider_limits)


def _read_limits_from_server(client: Any, provider: str) -> ProviderLimits | None:
    from prefect.exceptions import ObjectNotFound

    def active_limit(name: str) -> int | None:
        try:
            found = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return None
        return found.limit if found.active else None

    concurrency = active_limit(concurrency_limit_name(provider))
    if concurrency is None:
        return None
    return ProviderLimits(concurrency=concurrency, rpm=active_limit(rpm_limit_name(provider)),
                          tpm=active_limit(tpm_limit_name(provider)))  # fmt: skip


def _pool(provider: str) -> ProviderSlotPool:
    global _housekeeper
    key = (prefect_api_url(), provider)
    with _registry_lock:
        pool = _pools.get(key)
        if pool is not None:
            return pool
        from prefect.client.orchestration import get_client

        client = get_client(sync_client=True)
        client.__enter__()
        limits = _registered.get(key) or _read_limits_from_server(client, provider)
        if limits is None:
            client.__exit__(None, None, None)
            raise ProviderLimitMissing(
                f"global concurrency limit {concurrency_limit_name(provider)!r} does not exist on the Prefect "
                "server; create the limits from the roster first (tasks.limits.ensure_limits_task)"
            )
        pool = _pools[key] = ProviderSlotPool(provider, limits, client)
        if _housekeeper is None:
            _housekeeper = threading.Thread(target=_housekeeping_loop, name="quorum-provider-slots", daemon=True)
            _housekeeper.start()
        return pool


def _housekeeping_loop() -> None:
    while not _stop_housekeeping.wait(HOUSEKEEPING_EVERY_S):
        with _registry_lock:
            pools = list(_pools.values())
        now = time.monotonic()
        for pool in pools:
            pool.housekeeping(now)


@atexit.register
def release_all_leases() -> None:
    """Hand every idle leased slot back to the Prefect server (at exit, or between benchmark phases)."""
    with _registry_lock:
        pools = list(_pools.values())
    for pool in pools:
        pool.housekeeping(time.monotonic(), release_all=True)


def pool_stats() -> dict[str, dict[str, int]]:
    """Per provider: calls, server leases and the slots they carried, waits on the server, slots held now."""
    with _registry_lock:
        return {provider: pool.stats() for (_, provider), pool in _pools.items()}


@contextlib.contextmanager
def provider_slot(provider: str, *, tokens: int = 0, wait_s: float | None = None) -> Iterator[None]:
    """Hold one of the provider's slots (and take its rate-limit tokens) while a call is in flight.

    Inside a Prefect run the provider's global concurrency limit must exist (strict). Raises
    SlotWaitTimeout when no slot is free within `wait_s` (None: wait as long as it takes).
    """
    if not in_prefect_run():
        yield
        return
    deadline = None if wait_s is None else time.monotonic() + wait_s
    with _pool(provider).slot(tokens, deadline):
        yield
