"""Per-provider limits across a whole batch, held on the Prefect server.

- Requests in flight: a Prefect global concurrency limit `quorum-llm-<provider>`, strict (a
  missing or inactive limit is an error, never a silent no-op).
- Requests and tokens per minute: Prefect rate limits (global limits with slot decay)
  `quorum-llm-<provider>-rpm` and `-tpm`; a request takes 1 of the first and its estimated tokens
  of the second just before it is sent.

Why not `prefect.concurrency.sync.concurrency()` around every request (measured here, local
`prefect server start` on SQLite, 2 cores): one lease request takes ~10 ms alone, but 16 threads
asking at once got `503` for most of them (SQLite has one writer) and the Prefect client's retry
back-off (2 s, 4 s, ...) turned the burst into 7 s; during a busy batch single requests took up to
6 s the same way; and a caller denied a slot sleeps the server's Retry-After even when a slot frees
a moment later. So each process keeps one `ProviderSlotPool` per provider:

- every request in flight occupies one slot of a Prefect lease on the provider's global limit, so
  the global bound holds across all processes (the server refuses slots beyond the limit);
- one thread at a time asks the server, for every request then waiting (one lease of k slots,
  else one slot), and a finished request hands its slot to the next request of the process in
  microseconds; a lease goes back to the server when all its slots have been idle for `LINGER_S`
  (1 s), or `LINGER_REUSED_S` (5 s) once it has carried several requests (a process in steady use);
- a process about to start many requests (an in-process batch) may `reserve` slots up front,
  while the server is still quiet (`reserve_slots`, `quorum.prefect_api.limits.ensure_limits(roster, reserve=)`);
- a process never holds more slots than the limit and sends at most one lease request per
  provider at a time; a busy `503` is retried after 50 ms (doubling to 1 s), not 2 s (`SlotServer`);
- leases are renewed in the background; one not renewed in time is not handed to new requests,
  one the server no longer knows is dropped; a process that dies loses its leases when they
  expire on the server (60 s). A request already in flight when its lease is lost keeps running:
  during a Prefect outage longer than a lease the bound can be exceeded by those requests.

Slots are not queued fairly across processes: a freed slot goes to whichever process asks first,
and a process keeps a lease while any of its slots is in use (Prefect's limits are polled, not
queued). Outside a Prefect run nothing is throttled.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from quorum.domain.roster import ProviderLimits
from quorum.settings import settings

logger = logging.getLogger("quorum.prefect_api.provider_slots")

LEASE_S = 60.0  # the Prefect server's minimum lease
RENEW_EVERY_S = 15.0
LEASE_MARGIN_S = 20.0  # a lease not renewed for LEASE_S - LEASE_MARGIN_S is not handed to new requests
LINGER_S = 1.0  # a lease whose slots are all idle goes back to the server after this long ...
LINGER_REUSED_S = 5.0  # ... or this long once it has served REUSED_AFTER requests (steady demand)
REUSED_AFTER = 8
HOUSEKEEPING_EVERY_S = 0.1
MAX_POLL_S = 1.0  # longest sleep between asks for a slot that another process holds
BUSY_STATUSES = frozenset({408, 429, 502, 503})  # the API is busy (SQLite locked) or a proxy in front of it is
BUSY_RETRIES = 8
BUSY_PAUSE_S = 0.1  # after a server that stayed busy, before a request for slots asks again


def concurrency_limit_name(provider: str) -> str:
    return f"quorum-llm-{provider}"


def rpm_limit_name(provider: str) -> str:
    return f"quorum-llm-{provider}-rpm"


def tpm_limit_name(provider: str) -> str:
    return f"quorum-llm-{provider}-tpm"


class ProviderLimitMissing(RuntimeError):
    """The provider has no active global limit on the Prefect server (create them from the roster first)."""


class SlotWaitTimeout(TimeoutError):
    """No provider slot (or rate-limit token) became free within the allowed wait."""


def in_prefect_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def prefect_api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value() or "ephemeral")


def _missing(name: str) -> ProviderLimitMissing:
    return ProviderLimitMissing(
        f"global concurrency limit {name!r} does not exist or is not active on the Prefect server; "
        "create the limits from the roster first (quorum.prefect_api.limits.ensure_limits)"
    )


class ServerBusy(RuntimeError):
    """The Prefect server stayed busy (503/502/429/408, or unreachable) through BUSY_RETRIES quick retries."""


class _Busy(Exception):
    """A busy answer (503/502/429/408), raised by the client's response hook before its retry wrapper sees it."""

    def __init__(self, status: int):
        super().__init__(f"HTTP {status}")
        self.status = status


def _raise_when_busy(response: Any) -> None:
    if response.status_code in BUSY_STATUSES:
        raise _Busy(response.status_code)


def slot_client_settings(**httpx_settings: Any) -> dict[str, Any]:
    """`httpx_settings` for the Prefect client a SlotServer uses: busy answers reach us, not its retry wrapper."""
    hooks = dict(httpx_settings.pop("event_hooks", {}))
    hooks["response"] = [*hooks.get("response", []), _raise_when_busy]
    return {**httpx_settings, "event_hooks": hooks}


class SlotServer:
    """This process's requests to the Prefect server for slots, through the Prefect client's public methods.

    The client is made with an httpx response hook (`slot_client_settings`) that turns a busy answer
    into an exception before the client's retry wrapper sees it: that wrapper sleeps 2 s, 4 s, ...
    after a `503` (even after its last attempt), which a SQLite-backed server answers whenever
    another writer got the database first (measured here: single lease requests took up to 6.5 s in
    a busy batch that way). A busy answer is retried here after 50 ms, doubling up to 1 s, with
    jitter; after BUSY_RETRIES the caller decides (a lease request waits and asks again, like a
    denied one; a release is retried by the housekeeper).
    """

    def __init__(self, client: Any):
        self._client = client  # a SyncPrefectClient made with slot_client_settings(), kept open
        self._lock = threading.Lock()  # for the counters
        self._rng = random.Random()
        self.requests = 0
        self.busy = 0  # answers "busy" (503/502/429/408) or requests lost in transit, then retried
        self.seconds = 0.0  # spent in requests and their busy retries
        self.slowest = 0.0

    def _send(self, call: Callable[[], Any], what: str, retries: int = BUSY_RETRIES) -> Any:
        """One client call: its response, httpx.HTTPStatusError for a refusal, ServerBusy when it stays busy."""
        import httpx

        started = time.monotonic()
        busy = 0
        problem = ""
        try:
            for attempt in range(retries + 1):
                if attempt:
                    time.sleep(min(1.0, 0.05 * 2 ** (attempt - 1)) * self._rng.uniform(0.5, 1.5))
                try:
                    return call()
                except (_Busy, httpx.TransportError) as exc:
                    busy += 1
                    problem = str(exc) if isinstance(exc, _Busy) else type(exc).__name__
            raise ServerBusy(f"the Prefect server stayed busy ({problem}) for {what}")
        finally:
            took = time.monotonic() - started
            with self._lock:
                self.requests += 1
                self.busy += busy
                self.seconds += took
                self.slowest = max(self.slowest, took)

    def _granted(self, call: Callable[[], Any], what: str) -> tuple[Any, float]:
        """(response, 0), or (None, seconds to wait) when the limit is full (423). Raises ServerBusy."""
        import httpx

        try:
            return self._send(call, what), 0.0
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 423:
                raise
            return None, float(exc.response.headers.get("Retry-After") or 1.0)

    def lease(self, name: str, slots: int = 1) -> tuple[UUID | None, float]:
        """A lease on `slots` slots of `name`, or (None, seconds to wait) when that many are not free."""
        response, wait = self._granted(
            lambda: self._client.increment_concurrency_slots_with_lease(
                names=[name], slots=slots, mode="concurrency", lease_duration=LEASE_S
            ),
            f"a lease on {name}",
        )
        if response is None:
            return None, wait
        body = response.json()
        if not body.get("limits"):  # no active limit of that name: nothing was taken
            raise _missing(name)
        return UUID(str(body["lease_id"])), 0.0

    def take_rate(self, name: str, occupy: int) -> float:
        """Take `occupy` from a rate limit: 0 when taken, else seconds to wait before asking again."""
        response, wait = self._granted(
            lambda: self._client.increment_concurrency_slots(names=[name], slots=occupy, mode="rate_limit"),
            f"{occupy} of {name}",
        )
        if response is None:
            return wait
        if not response.json():
            raise _missing(name)
        return 0.0

    def release(self, lease_id: UUID, *, last_try: bool = False) -> bool:
        """True when the server has the slots back (or never knew the lease); False: try again later.

        `last_try` (at exit): one attempt, quietly; a lease not handed back expires on the server.
        """
        import httpx
        from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

        # At exit one attempt really: the client itself would retry a server already gone for a minute.
        client_retries = temporary_settings({PREFECT_CLIENT_MAX_RETRIES: 0}) if last_try else contextlib.nullcontext()
        try:
            with client_retries:
                self._send(lambda: self._client.release_concurrency_slots_with_lease(lease_id), "a release",
                           retries=0 if last_try else BUSY_RETRIES)  # fmt: skip
            return True
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code in (404, 410):
                return True
            problem = f"HTTP {exc.response.status_code}"
        except Exception as exc:  # busy or unreachable: the housekeeper tries again
            problem = type(exc).__name__
        if not last_try:
            logger.warning("handing back a provider slot lease failed (%s); trying again", problem)
        return False

    def renew(self, lease_id: UUID) -> bool | None:
        """True renewed; False the server no longer knows the lease; None the server could not be asked."""
        import httpx

        try:
            self._send(lambda: self._client.renew_concurrency_lease(lease_id, lease_duration=LEASE_S), "a renewal")
            return True
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code in (404, 410):
                return False
            logger.warning("renewing a provider slot lease failed: HTTP %s", exc.response.status_code)
            return None
        except Exception as exc:  # busy or unreachable: try again at the next round
            logger.warning("renewing a provider slot lease failed: %s", type(exc).__name__)
            return None


@dataclass(eq=False)
class _Lease:
    """A Prefect lease on `slots` slots of a provider's limit; `in_use` of them carry a request now."""

    id: UUID
    slots: int
    renewed_at: float  # when the last (successful) lease or renewal request was sent
    in_use: int = 0
    idle_since: float | None = None
    lost: bool = False  # the server no longer knows it
    retiring: bool = False  # being handed back: no new request takes it, but it counts as held until then
    served: int = 0  # requests it has carried
    reserved: bool = False  # leased ahead of requests (ProviderSlotPool.reserve)

    def usable(self, now: float) -> bool:
        return not self.lost and now - self.renewed_at < LEASE_S - LEASE_MARGIN_S

    def lingered(self, now: float) -> bool:
        """Idle long enough to go back: briefly after a one-off request, longer for a lease reserved or in
        steady use."""
        linger = LINGER_REUSED_S if self.served >= REUSED_AFTER or self.reserved else LINGER_S
        return self.in_use == 0 and now - (self.idle_since or now) >= linger


class ProviderSlotPool:
    """One provider's slots in this process: leased Prefect slots, passed from request to request.

    Invariants: slots held <= the limit (this process never asks for more than the limit; the
    server refuses the rest globally), and every request in flight occupies one slot of a lease.
    One thread at a time asks the server, for every request then waiting (up to the limit), so a
    burst costs one or a few server requests; a lease goes back when all its slots are idle.
    """

    def __init__(self, provider: str, limits: ProviderLimits, server: SlotServer):
        self.provider = provider
        self.limits = limits
        self.name = concurrency_limit_name(provider)
        self._server = server
        self._condition = threading.Condition()
        self._leases: list[_Lease] = []
        self._asking = False  # a thread is asking the server for slots
        self._waiting = 0  # requests waiting for a slot
        self.counts = {"requests": 0, "leased": 0, "slots_leased": 0, "denied": 0, "returned": 0, "renewed": 0,
                       "lost": 0}  # fmt: skip

    @property
    def capacity(self) -> int:
        return self.limits.concurrency or 1

    def resize(self, limits: ProviderLimits) -> None:
        with self._condition:
            self.limits = limits
            self._condition.notify_all()

    def _held(self) -> int:
        return sum(lease.slots for lease in self._leases)

    @contextlib.contextmanager
    def slot(self, tokens: int, deadline: float | None) -> Iterator[None]:
        lease = self._acquire(deadline)
        try:
            self._take_rate_limits(tokens, deadline)
            yield
        finally:
            self._release(lease)

    # ----- acquiring -----------------------------------------------------------------------------

    def _acquire(self, deadline: float | None) -> _Lease:
        with self._condition:
            self.counts["requests"] += 1
            self._waiting += 1
            try:
                while True:
                    lease = self._take_free()
                    if lease is not None:
                        return lease
                    if not self._asking and self._held() < self.capacity:
                        self._asking = True
                        break
                    self._wait(deadline)
            finally:
                self._waiting -= 1
        try:
            return self._lease_from_server(deadline)
        finally:
            with self._condition:
                self._asking = False
                self._condition.notify_all()

    def _take_free(self) -> _Lease | None:
        """A free slot of a lease still safe to use (caller holds the condition)."""
        now = time.monotonic()
        for lease in self._leases:
            if lease.in_use < lease.slots and not lease.retiring and lease.usable(now):
                lease.in_use += 1
                lease.served += 1
                lease.idle_since = None
                return lease
        return None

    def _wait(self, deadline: float | None, longest: float | None = None) -> None:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise SlotWaitTimeout(f"no {self.provider} slot free within the wait limit")
        timeout = remaining if longest is None else min(longest, remaining if remaining is not None else longest)
        self._condition.wait(timeout)

    def _lease_from_server(self, deadline: float | None) -> _Lease:
        while True:
            with self._condition:
                wanted = max(1, min(1 + self._waiting, self.capacity - self._held()))
            sent_at = time.monotonic()
            try:
                lease_id, retry_after = self._server.lease(self.name, wanted)
                if lease_id is None and wanted > 1:  # all or nothing on the server: settle for one slot
                    wanted = 1
                    sent_at = time.monotonic()
                    lease_id, retry_after = self._server.lease(self.name, 1)
            except ServerBusy:  # as good as denied: wait a moment (or for one of ours), then ask again
                lease_id, retry_after = None, BUSY_PAUSE_S
            with self._condition:
                if lease_id is not None:
                    lease = self._add_lease(_Lease(id=lease_id, slots=wanted, renewed_at=sent_at, in_use=1, served=1))
                    self._condition.notify_all()  # the other slots are for the requests waiting
                    return lease
                # Held by other processes: poll, but take one of ours as soon as it is free.
                self.counts["denied"] += 1
                self._wait(deadline, longest=min(MAX_POLL_S, retry_after))
                lease = self._take_free()
                if lease is not None:
                    return lease

    def _add_lease(self, lease: _Lease) -> _Lease:
        """Keep a lease the server granted (caller holds the condition)."""
        self._leases.append(lease)
        self.counts["leased"] += 1
        self.counts["slots_leased"] += lease.slots
        return lease

    def reserve(self, slots: int) -> int:
        """Lease up to `slots` slots now, idle, for requests about to come (best effort: fewer if taken).

        For a process about to start many requests (an in-process batch) while the server is still
        quiet; unused, they go back after LINGER_REUSED_S (see _Lease.lingered). Returns the slots leased.
        """
        with self._condition:
            if self._asking:
                return 0
            self._asking = True
            wanted = min(slots, self.capacity - self._held())
        try:
            while wanted > 0:
                sent_at = time.monotonic()
                try:
                    lease_id, _ = self._server.lease(self.name, wanted)
                except ServerBusy:
                    return 0
                if lease_id is not None:
                    with self._condition:
                        self._add_lease(_Lease(id=lease_id, slots=wanted, renewed_at=sent_at,
                                               idle_since=time.monotonic(), reserved=True))  # fmt: skip
                    return wanted
                wanted //= 2
            return 0
        finally:
            with self._condition:
                self._asking = False
                self._condition.notify_all()

    def _take_rate_limits(self, tokens: int, deadline: float | None) -> None:
        for name, per_minute, occupy in ((rpm_limit_name(self.provider), self.limits.rpm, 1),
                                         (tpm_limit_name(self.provider), self.limits.tpm, tokens)):  # fmt: skip
            if not per_minute or occupy <= 0:
                continue
            occupy = min(occupy, per_minute)
            while (wait := self._take_rate(name, occupy)) > 0:
                wait = min(wait, MAX_POLL_S)
                if deadline is not None and time.monotonic() + wait > deadline:
                    raise SlotWaitTimeout(f"{name}: no rate-limit capacity within the wait limit")
                time.sleep(wait)

    def _take_rate(self, name: str, occupy: int) -> float:
        try:
            return self._server.take_rate(name, occupy)
        except ServerBusy:
            return BUSY_PAUSE_S

    # ----- releasing and housekeeping ------------------------------------------------------------

    def _release(self, lease: _Lease) -> None:
        with self._condition:
            lease.in_use -= 1
            if lease.in_use == 0:
                lease.idle_since = time.monotonic()
                if not lease.usable(lease.idle_since) or self._held() > self.capacity:
                    lease.retiring = True  # lost, unrenewed, or the limit shrank: the housekeeper hands it back
            self._condition.notify()

    def housekeeping(self, now: float, *, release_all: bool = False) -> None:
        """Hand back idle leases that lingered long enough (every idle one when `release_all`) and
        retiring ones; renew the rest. Run by the process's housekeeping thread every 0.1 s."""
        with self._condition:
            for lease in self._leases:
                if lease.in_use == 0 and (release_all or not lease.usable(now) or lease.lingered(now)):
                    lease.retiring = True  # no new request takes it; it counts as held until given back
            retiring = [lease for lease in self._leases if lease.retiring and lease.in_use == 0]
            due = [lease for lease in self._leases if not release_all and not lease.retiring and not lease.lost
                   and now - lease.renewed_at >= RENEW_EVERY_S]  # fmt: skip
        for lease in retiring:
            if lease.lost or self._server.release(lease.id, last_try=release_all) or release_all:
                with self._condition:
                    if lease in self._leases:  # housekeeping at exit may overlap the housekeeper's last round
                        self._leases.remove(lease)
                        self.counts["returned"] += 1
                    self._condition.notify_all()
        for lease in due:
            sent_at = time.monotonic()
            renewed = self._server.renew(lease.id)
            with self._condition:
                if renewed:
                    lease.renewed_at = sent_at
                    self.counts["renewed"] += 1
                elif renewed is False:
                    lease.lost = True
                    self.counts["lost"] += 1
                    logger.warning("%s: the Prefect server lost a slot lease; it is not used again", self.provider)

    def stats(self) -> dict[str, int]:
        with self._condition:
            return {**self.counts, "held": self._held(), "busy": sum(lease.in_use for lease in self._leases)}


# ----- registry: one pool per (Prefect API, provider) in this process ------------------------------

_registry_lock = threading.Lock()
_registered: dict[tuple[str, str], ProviderLimits] = {}
_pools: dict[tuple[str, str], ProviderSlotPool] = {}
_servers: dict[str, SlotServer] = {}
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


def _server(api: str) -> SlotServer:
    """The process's SlotServer for this API (caller holds _registry_lock)."""
    server = _servers.get(api)
    if server is None:
        from prefect.client.orchestration import get_client

        client = get_client(sync_client=True, httpx_settings=slot_client_settings())
        client.__enter__()
        server = _servers[api] = SlotServer(client)
    return server


def _pool(provider: str) -> ProviderSlotPool:
    global _housekeeper
    api = prefect_api_url()
    key = (api, provider)
    with _registry_lock:
        pool = _pools.get(key)
        if pool is not None:
            return pool
        server = _server(api)
        limits = _registered.get(key) or _read_limits_from_server(server._client, provider)
        if limits is None:
            raise _missing(concurrency_limit_name(provider))
        pool = _pools[key] = ProviderSlotPool(provider, limits, server)
        if _housekeeper is None:
            _housekeeper = threading.Thread(target=_housekeeping_loop, name="quorum-provider-slots", daemon=True)
            _housekeeper.start()
        return pool


def _housekeeping_loop() -> None:
    while not _stop_housekeeping.wait(HOUSEKEEPING_EVERY_S):
        with _registry_lock:
            pools = list(_pools.values())
        for pool in pools:
            pool.housekeeping(time.monotonic())


@atexit.register
def release_all_leases() -> None:
    """Hand every idle lease back to the Prefect server, one quiet attempt each (at exit)."""
    _stop_housekeeping.set()
    with _registry_lock:
        pools = list(_pools.values())
    for pool in pools:
        pool.housekeeping(time.monotonic(), release_all=True)


def reserve_slots(providers: list[str], slots: int) -> dict[str, int]:
    """Lease up to `slots` idle slots per provider now (see ProviderSlotPool.reserve); slots leased per provider."""
    return {provider: _pool(provider).reserve(slots) for provider in providers} if slots > 0 else {}


def pool_stats() -> dict[str, dict[str, int]]:
    """Per provider: requests, leases taken from the server, reused, denied (423), returned, held now."""
    with _registry_lock:
        return {provider: pool.stats() for (_, provider), pool in _pools.items()}


def server_stats() -> dict[str, dict[str, float]]:
    """Per Prefect API: requests made for slots, busy answers retried, seconds spent in them, the slowest one."""
    with _registry_lock:
        return {api: {"requests": s.requests, "busy": s.busy, "seconds": round(s.seconds, 3),
                      "slowest": round(s.slowest, 3)} for api, s in _servers.items()}  # fmt: skip


@contextlib.contextmanager
def provider_slot(provider: str, *, tokens: int = 0, wait_s: float | None = None) -> Iterator[None]:
    """Hold one of the provider's slots (and take its rate-limit tokens) while a request is in flight.

    Inside a Prefect run the provider's global concurrency limit must exist (strict). Raises
    SlotWaitTimeout when no slot is free within `wait_s` (None: wait as long as it takes).
    `QUORUM_PROVIDER_SLOTS=prefect` takes the slot with Prefect's own `concurrency()` instead of the
    pool (one lease per request; docs/benchmark.md compares the two).
    """
    if not in_prefect_run():
        yield
        return
    if settings().provider_slots == "prefect":
        with _prefect_concurrency_slot(provider, tokens, wait_s):
            yield
        return
    deadline = None if wait_s is None else time.monotonic() + wait_s
    with _pool(provider).slot(tokens, deadline):
        yield


@contextlib.contextmanager
def _prefect_concurrency_slot(provider: str, tokens: int, wait_s: float | None) -> Iterator[None]:
    """One request's slot through `prefect.concurrency.sync`: a lease per request, rate limits per request."""
    from prefect.concurrency.sync import concurrency, rate_limit

    limits = _limits_of(provider)
    try:
        with concurrency(concurrency_limit_name(provider), occupy=1, timeout_seconds=wait_s, strict=True):
            if limits.rpm:
                rate_limit(rpm_limit_name(provider), occupy=1, timeout_seconds=wait_s, strict=True)
            if limits.tpm and tokens > 0:
                rate_limit(tpm_limit_name(provider), occupy=min(tokens, limits.tpm), timeout_seconds=wait_s, strict=True)
            yield
    except TimeoutError as exc:
        raise SlotWaitTimeout(f"no {provider} slot free within the wait limit") from exc


def _limits_of(provider: str) -> ProviderLimits:
    """The provider's limits as this process knows them (registered from the roster, else read from the server)."""
    api = prefect_api_url()
    with _registry_lock:
        known = _registered.get((api, provider))
        if known is not None:
            return known
        limits = _read_limits_from_server(_server(api)._client, provider)
        if limits is None:
            raise _missing(concurrency_limit_name(provider))
        _registered[(api, provider)] = limits
        return limits
