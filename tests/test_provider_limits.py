"""Provider limits against a real Prefect server: the slot pool's global bound, cheap bursts, strictness,
expiry; then a roster's limits against a fake provider with the same caps, through litellm.

In the pool tests two pools with separate clients stand for two processes (they share nothing but
the server) and the "requests" are sleeps, counted in and out of flight.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from quorum.llm.call_policy import RetryPolicy
from tests.support.fake_provider import FakeProviderConfig, FakeProviderServer, ModelBehaviour
from quorum.llm.client import complete
from quorum.domain.models import LLMCall
from quorum.prefect_api.provider_slots import (
    LINGER_REUSED_S,
    LINGER_S,
    RENEW_EVERY_S,
    REUSED_AFTER,
    ProviderLimitMissing,
    ProviderSlotPool,
    ServerBusy,
    SlotServer,
    slot_client_settings,
    SlotWaitTimeout,
)
from quorum.domain.roster import ProviderLimits, Roster, StageModel


@pytest.fixture
def server(prefect_harness):
    """A SlotServer (one process's line to the Prefect server) and a factory of fresh limits."""
    from prefect.client.orchestration import get_client

    clients = []

    def open_server() -> SlotServer:
        client = get_client(sync_client=True, httpx_settings=slot_client_settings())
        client.__enter__()
        clients.append(client)
        return SlotServer(client)

    yield open_server
    for client in clients:
        client.__exit__(None, None, None)


def create_limit(name: str, limit: int, decay: float = 0.0) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=limit, slot_decay_per_second=decay)
        )


def make_limit(limit: int) -> str:
    """A fresh provider name with a concurrency limit of `limit` on the server."""
    provider = f"test{uuid.uuid4().hex[:8]}"
    create_limit(f"quorum-llm-{provider}", limit)
    return provider


def active_slots(provider: str) -> int:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(f"quorum-llm-{provider}").active_slots


@contextlib.contextmanager
def housekeeping(*pools: ProviderSlotPool):
    """What each process's housekeeping thread does: renew leases, hand idle ones back."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.05):
            for pool in pools:
                pool.housekeeping(time.monotonic())

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class InFlight:
    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self._lock = threading.Lock()

    def __enter__(self):
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc):
        with self._lock:
            self.now -= 1


def test_two_processes_never_exceed_the_global_limit_and_hand_slots_back(server):
    provider = make_limit(3)
    limits = ProviderLimits(concurrency=3)
    pools = [ProviderSlotPool(provider, limits, server()), ProviderSlotPool(provider, limits, server())]
    flight = InFlight()
    served = {0: 0, 1: 0}

    def request(index: int) -> None:
        pool = pools[index % 2]
        with pool.slot(tokens=0, deadline=time.monotonic() + 30):
            with flight:
                served[index % 2] += 1
                time.sleep(0.03)

    with housekeeping(*pools), ThreadPoolExecutor(max_workers=12) as executor:
        list(executor.map(request, range(60)))

    assert flight.most <= 3  # never more in flight than the limit, across both "processes"
    assert served[0] + served[1] == 60
    assert flight.most == 3  # and the limit was used (12 threads asked for it)
    for pool in pools:
        assert pool.stats()["held"] <= 3 and pool.stats()["busy"] == 0
        pool.housekeeping(time.monotonic(), release_all=True)
    assert active_slots(provider) == 0


def test_a_burst_leases_each_slot_once_then_passes_it_on_in_process(server):
    provider = make_limit(4)
    pool = ProviderSlotPool(provider, ProviderLimits(concurrency=4), server())
    flight = InFlight()

    def request(_: int) -> None:
        with pool.slot(tokens=0, deadline=None), flight:
            time.sleep(0.02)

    with ThreadPoolExecutor(max_workers=16) as executor:
        list(executor.map(request, range(64)))

    stats = pool.stats()
    assert flight.most == 4
    assert stats["requests"] == 64
    assert stats["slots_leased"] == 4 and stats["leased"] <= 4  # a few server round trips, not one per request
    assert stats["denied"] == 0
    assert active_slots(provider) == 4  # kept for the next requests (LINGER_S) ...
    pool.housekeeping(time.monotonic() + 60)  # ... and handed back once idle
    assert stats["held"] == 4 and pool.stats()["held"] == 0
    assert active_slots(provider) == 0


def test_missing_limit_is_an_error_not_a_silent_no_op(server):
    pool = ProviderSlotPool("nobody-made-this", ProviderLimits(concurrency=2), server())
    with pytest.raises(ProviderLimitMissing, match="quorum-llm-nobody-made-this"):
        with pool.slot(tokens=0, deadline=None):
            pass


def test_waiting_for_a_slot_held_elsewhere_ends_at_the_wait_limit(server):
    provider = make_limit(1)
    holder = ProviderSlotPool(provider, ProviderLimits(concurrency=1), server())
    waiter = ProviderSlotPool(provider, ProviderLimits(concurrency=1), server())
    with holder.slot(tokens=0, deadline=None):
        with pytest.raises(SlotWaitTimeout):
            with waiter.slot(tokens=0, deadline=time.monotonic() + 0.5):
                pass
    assert waiter.stats()["denied"] >= 1 and waiter.stats()["held"] == 0
    holder.housekeeping(time.monotonic() + 60)  # the holder hands its idle slot back ...
    with waiter.slot(tokens=0, deadline=time.monotonic() + 30):  # ... and the other process gets it
        assert active_slots(provider) == 1
    assert waiter.stats()["leased"] == 1


def test_a_lease_the_server_lost_is_never_used_again(server):
    provider = make_limit(1)
    slot_server = server()
    pool = ProviderSlotPool(provider, ProviderLimits(concurrency=1), slot_server)
    with pool.slot(tokens=0, deadline=None):
        (lease,) = pool._leases
        slot_server.release(lease.id)  # the server forgets it (as after an expiry)
        pool.housekeeping(lease.renewed_at + RENEW_EVERY_S + 0.1)  # renewal finds it gone
        assert pool.stats()["lost"] == 1
    pool.housekeeping(time.monotonic())
    assert pool.stats()["held"] == 0  # not kept for the next request
    with pool.slot(tokens=0, deadline=time.monotonic() + 30):
        assert active_slots(provider) == 1
    assert pool.stats()["leased"] == 2  # a new lease, not the lost one


def test_requests_per_minute_are_taken_from_the_server_and_refused_when_spent(server):
    provider = make_limit(4)
    create_limit(f"quorum-llm-{provider}-rpm", 2, decay=2 / 60)  # 2 requests, refilled at 2 per minute
    pool = ProviderSlotPool(provider, ProviderLimits(concurrency=4, rpm=2), server())
    for _ in range(2):
        with pool.slot(tokens=0, deadline=time.monotonic() + 5):
            pass
    with pytest.raises(SlotWaitTimeout, match="rpm"):
        with pool.slot(tokens=0, deadline=time.monotonic() + 0.3):
            pass
    assert pool.stats()["busy"] == 0  # the slot went back although the rate limit refused


# ----- the roster's limits against a provider with the same caps, through litellm ---------------------


CAPS = {"gpt-5-mini": 3, "claude-sonnet-4-5": 2}
BURST = {"openai/gpt-5-mini": 12, "anthropic/claude-sonnet-4-5": 8}


def _capped_provider() -> FakeProviderConfig:
    return FakeProviderConfig(models={
        name: ModelBehaviour(latency=0.2, concurrency=cap, retry_after_s=0.2) for name, cap in CAPS.items()
    })  # fmt: skip


def _burst_models(base_url: str) -> list[StageModel]:
    return [StageModel(model=name, api_base=base_url, api_key_env="QUORUM_TEST_LIMITS_KEY", max_tokens=16)
            for name, count in BURST.items() for _ in range(count)]  # fmt: skip


def test_roster_limits_at_the_providers_caps_mean_no_429s_and_without_them_there_are(prefect_harness, monkeypatch):
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    from quorum.prefect_api.limits import ensure_limits

    monkeypatch.setenv("QUORUM_TEST_LIMITS_KEY", "not-a-real-key-0000")
    policy = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, attempt_timeout_s=10, deadline_s=60)
    roster = Roster.model_validate({
        "planner": {"model": "anthropic/claude-sonnet-4-5"},
        "implementer": {"model": "deepseek/deepseek-chat"},
        "reviewers": [{"model": "openai/gpt-5-mini"}, {"model": "gemini/gemini-2.5-flash"}],
        "limits": {"openai": {"concurrency": CAPS["gpt-5-mini"]}, "anthropic": {"concurrency": CAPS["claude-sonnet-4-5"]}},
    })  # fmt: skip

    @task
    def ask(stage_model: StageModel) -> LLMCall:
        return complete("review", stage_model, [{"role": "user", "content": "hi"}], policy=policy)[1]

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=len(_burst_models("http://x"))))
    def burst(base_url: str) -> list[LLMCall]:
        futures = [ask.submit(m) for m in _burst_models(base_url)]
        return [future.result() for future in futures]

    ensure_limits(roster)
    with FakeProviderServer(_capped_provider()) as server:
        calls = burst(server.base_url)
        limited = server.stats()["models"]
    assert len(calls) == 20 and all(call.error == "" for call in calls)
    for name, cap in CAPS.items():
        assert limited[name]["requests"] == limited[name]["ok"]  # every request answered: zero 429s
        assert limited[name].get("rate_limited", 0) == 0
        assert 1 <= limited[name]["max_in_flight"] <= cap
    assert sum(call.retries for call in calls) == 0

    # The same burst with nothing holding it back (plain threads, no Prefect run): the caps answer 429.
    with FakeProviderServer(_capped_provider()) as server:
        with ThreadPoolExecutor(max_workers=20) as executor:
            unlimited = list(executor.map(lambda m: complete("review", m, [{"role": "user", "content": "hi"}],
                                                             policy=policy)[1], _burst_models(server.base_url)))
        flooded = server.stats()["models"]
    assert sum(flooded[name].get("rate_limited", 0) for name in CAPS) > 0
    assert sum(call.retries for call in unlimited) > 0


# ----- the pool's own rules, with a stand-in server (no Prefect) -----------------------------------------


class MemoryServer:
    """What the pool needs of the Prefect server: slots of one limit, leased all or nothing."""

    def __init__(self, limit: int):
        self.limit = limit
        self.leases: dict = {}
        self.lease_requests = 0

    def lease(self, name: str, slots: int = 1):
        self.lease_requests += 1
        if sum(self.leases.values()) + slots > self.limit:
            return None, 0.01
        lease_id = uuid.uuid4()
        self.leases[lease_id] = slots
        return lease_id, 0.0

    def release(self, lease_id, *, last_try: bool = False) -> bool:
        self.leases.pop(lease_id, None)
        return True

    def renew(self, lease_id) -> bool:
        return lease_id in self.leases


def test_reserved_slots_serve_the_first_requests_and_go_back_when_unused():
    memory = MemoryServer(limit=8)
    pool = ProviderSlotPool("p", ProviderLimits(concurrency=8), memory)
    assert pool.reserve(64) == 8  # never more than the limit
    with pool.slot(tokens=0, deadline=None):
        assert memory.lease_requests == 1  # served by the reservation
    now = time.monotonic()
    pool.housekeeping(now + LINGER_S + 0.1)
    assert pool.stats()["held"] == 8  # a reservation lingers longer than a one-off lease ...
    pool.housekeeping(now + LINGER_REUSED_S + 0.1)
    assert pool.stats()["held"] == 0 and memory.leases == {}  # ... then goes back


def test_a_one_off_lease_goes_back_soon_a_busy_one_later():
    memory = MemoryServer(limit=2)
    pool = ProviderSlotPool("p", ProviderLimits(concurrency=2), memory)
    with pool.slot(tokens=0, deadline=None):
        pass
    pool.housekeeping(time.monotonic() + LINGER_S + 0.1)
    assert memory.leases == {}
    for _ in range(REUSED_AFTER):
        with pool.slot(tokens=0, deadline=None):
            pass
    pool.housekeeping(time.monotonic() + LINGER_S + 0.1)
    assert len(memory.leases) == 1  # in steady use: kept through a short lull
    pool.housekeeping(time.monotonic() + LINGER_REUSED_S + 0.1)
    assert memory.leases == {}


def test_a_busy_prefect_server_is_asked_again_within_milliseconds(monkeypatch):
    """Prefect's client sleeps 2 s, 4 s, ... after a 503; a SQLite server sends them all the time under load."""
    import httpx

    import quorum.prefect_api.provider_slots as provider_limits

    answers = [503, 503, 200]
    sent = []

    def transport(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/csrf-token"):  # the client asks once; 422 means CSRF is off
            return httpx.Response(422, json={"detail": "CSRF protection is disabled."})
        sent.append(request.url.path)
        status = answers.pop(0)
        body = {"lease_id": str(uuid.uuid4()), "limits": [{"id": str(uuid.uuid4()), "name": "n", "limit": 1}]}
        return httpx.Response(status, json=body if status == 200 else {"exception_message": "Service Unavailable"})

    from prefect.client.orchestration import SyncPrefectClient

    client = SyncPrefectClient(
        "http://prefect.invalid/api",
        httpx_settings=provider_limits.slot_client_settings(transport=httpx.MockTransport(transport)),
    )
    slept: list[float] = []
    monkeypatch.setattr(provider_limits.time, "sleep", slept.append)
    server = SlotServer(client)
    lease_id, wait = server.lease("quorum-llm-p", 1)
    assert lease_id is not None and wait == 0
    assert sent == ["/api/v2/concurrency_limits/increment-with-lease"] * 3
    assert server.busy == 2 and sum(slept) < 0.3
    answers.extend([503] * 20)
    with pytest.raises(ServerBusy):  # a server that stays busy: the pool waits and asks again
        server.lease("quorum-llm-p", 1)


def test_at_exit_a_lease_is_released_with_one_request_even_when_the_server_is_gone(monkeypatch):
    """A batch's process exits after its Prefect server (the benchmark's, a CLI's temporary one): Prefect's
    client would retry the refused connection for about a minute per lease (2 s, 4 s, ... 32 s)."""
    import httpx

    import quorum.prefect_api.provider_slots as provider_limits

    sent = []

    def transport(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/csrf-token"):  # the client asks once; 422 means CSRF is off
            return httpx.Response(422, json={"detail": "CSRF protection is disabled."})
        sent.append(request.url.path)
        if request.url.path.endswith("/increment-with-lease"):  # while the server was up
            body = {"lease_id": str(uuid.uuid4()), "limits": [{"id": str(uuid.uuid4()), "name": "n", "limit": 1}]}
            return httpx.Response(200, json=body)
        raise httpx.ConnectError("connection refused", request=request)  # then it is gone

    from prefect.client.orchestration import SyncPrefectClient

    client = SyncPrefectClient(
        "http://prefect.invalid/api",
        httpx_settings=provider_limits.slot_client_settings(transport=httpx.MockTransport(transport)),
    )
    slept: list[float] = []
    monkeypatch.setattr("prefect.client.base.time.sleep", slept.append)  # what the client's retries would cost
    server = SlotServer(client)
    lease_id, _ = server.lease("quorum-llm-p", 1)
    sent.clear()
    assert server.release(lease_id, last_try=True) is False  # not handed back: it expires on the server
    assert sent == ["/api/v2/concurrency_limits/decrement-with-lease"] and slept == [], sent  # once, no retry


def test_ensure_limits_creates_updates_and_deactivates_idempotently(prefect_harness):
    from prefect.client.orchestration import get_client

    from quorum.prefect_api.limits import ensure_limits

    provider = f"ens{uuid.uuid4().hex[:6]}"

    def roster(limits: dict) -> Roster:
        return Roster.model_validate({
            "planner": {"model": f"{provider}/model-a"}, "implementer": {"model": "deepseek/deepseek-chat"},
            "reviewers": [{"model": "openai/gpt-5-mini"}, {"model": "gemini/gemini-2.5-flash"}],
            "limits": {provider: limits},
        })  # fmt: skip

    def read() -> dict:
        with get_client(sync_client=True) as client:
            found = {}
            for suffix in ("", "-rpm", "-tpm"):
                try:
                    limit = client.read_global_concurrency_limit_by_name(f"quorum-llm-{provider}{suffix}")
                except Exception:
                    continue
                found[suffix or "concurrency"] = (limit.limit, limit.active, round(limit.slot_decay_per_second, 4))
            return found

    ensure_limits(roster({"concurrency": 3, "rpm": 120}))
    first = read()
    assert first == {"concurrency": (3, True, 0.0), "-rpm": (120, True, 2.0)}
    ensure_limits(roster({"concurrency": 3, "rpm": 120}))
    assert read() == first  # idempotent
    ensure_limits(roster({"concurrency": 5}))
    assert read() == {"concurrency": (5, True, 0.0), "-rpm": (120, False, 2.0)}  # rpm no longer limits
