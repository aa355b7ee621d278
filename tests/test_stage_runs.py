"""A stage task that Prefect refused to start (a busy server's 503 on the tag-concurrency request) is
started again, on a real Prefect server; the 503s are injected into the client's request."""

from __future__ import annotations

import uuid

import httpx
import pytest

from quorum.prefect_api import stage_runs


def _refuse_first(monkeypatch, refusals: int) -> list[str]:
    """The first `refusals` tag-concurrency requests fail as a busy server's would, after the client's retries."""
    from prefect.client.orchestration import PrefectClient

    real = PrefectClient.increment_concurrency_slots_with_lease
    asked: list[str] = []

    async def flaky(self, names, *args, **kwargs):
        asked.append(",".join(names))
        if len(asked) <= refusals:
            request = httpx.Request("POST", "http://prefect/v2/concurrency_limits/increment-with-lease")
            raise httpx.HTTPStatusError("503", request=request, response=httpx.Response(503, request=request))
        return await real(self, names, *args, **kwargs)

    monkeypatch.setattr(PrefectClient, "increment_concurrency_slots_with_lease", flaky)
    return asked


def _flow_and_task(ran: list[int]):
    from prefect import flow, task

    @task(name="stage-under-test")
    def stage(x: int) -> int:
        ran.append(x)
        return x * 2

    return flow, stage


def test_a_refused_stage_is_started_again_and_runs_once(prefect_harness, monkeypatch):
    ran: list[int] = []
    flow, stage = _flow_and_task(ran)
    provider = f"p{uuid.uuid4().hex[:8]}"  # Prefect caches "no limits" per tag set for 5 s: a set never asked before
    asked = _refuse_first(monkeypatch, 1)
    pauses: list[float] = []

    @flow
    def one() -> int:
        return stage_runs.run_stage(provider, "plan", lambda: stage(21), sleep=pauses.append)

    assert one() == 42
    assert ran == [21]  # the refused attempt never ran the body
    assert pauses == [stage_runs.START_PAUSE_S[0]]
    assert asked[0] == f"tag:provider:{provider},tag:stage:plan" and len(asked) == 2


def test_a_submitted_stage_is_submitted_again(prefect_harness, monkeypatch):
    ran: list[int] = []
    flow, stage = _flow_and_task(ran)
    provider = f"p{uuid.uuid4().hex[:8]}"
    _refuse_first(monkeypatch, 2)
    pauses: list[float] = []

    @flow
    def both() -> list[int]:
        futures = [stage_runs.StageFuture(provider, "review", lambda x=x: stage.submit(x), sleep=pauses.append)
                   for x in (1, 2)]  # fmt: skip
        return [future.result() for future in futures]

    assert both() == [2, 4]
    assert sorted(ran) == [1, 2]


def test_a_stage_refused_every_time_fails_with_prefects_error(prefect_harness, monkeypatch):
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

    ran: list[int] = []
    flow, stage = _flow_and_task(ran)
    provider = f"p{uuid.uuid4().hex[:8]}"
    _refuse_first(monkeypatch, 99)
    pauses: list[float] = []

    @flow
    def refused() -> int:
        return stage_runs.run_stage(provider, "implement", lambda: stage(1), sleep=pauses.append)

    with pytest.raises(ConcurrencySlotAcquisitionError):
        refused()
    assert ran == [] and pauses == list(stage_runs.START_PAUSE_S)
