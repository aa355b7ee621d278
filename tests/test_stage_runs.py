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


class _Refusing:
    """A tiny stage task, a tag set Prefect has never been asked about (it caches "no limits" per tag set for
    5 s), and the first `refusals` tag-concurrency requests refused as a busy server would."""

    def __init__(self, monkeypatch, refusals: int):
        from prefect import task

        self.ran: list[int] = []
        self.pauses: list[float] = []
        self.provider = f"p{uuid.uuid4().hex[:8]}"
        self.asked = _refuse_first(monkeypatch, refusals)

        @task(name="stage-under-test")
        def stage(x: int) -> int:
            self.ran.append(x)
            return x * 2

        self.stage = stage


def test_a_refused_stage_is_started_again_and_runs_once(prefect_harness, monkeypatch):
    from prefect import flow

    case = _Refusing(monkeypatch, 1)

    @flow
    def one() -> int:
        return stage_runs.run_stage(case.provider, "plan", lambda: case.stage(21), sleep=case.pauses.append)

    assert one() == 42
    assert case.ran == [21]  # the refused attempt never ran the body
    assert case.pauses == [stage_runs.START_PAUSES_S[0]]
    assert case.asked[0] == f"tag:provider:{case.provider},tag:stage:plan" and len(case.asked) == 2


def test_a_submitted_stage_is_submitted_again(prefect_harness, monkeypatch):
    from prefect import flow

    case = _Refusing(monkeypatch, 2)

    @flow
    def both() -> list[int]:
        futures = [stage_runs.StageFuture(case.provider, "review", lambda x=x: case.stage.submit(x),
                                          sleep=case.pauses.append) for x in (1, 2)]  # fmt: skip
        return [future.result() for future in futures]

    assert both() == [2, 4]
    assert sorted(case.ran) == [1, 2]


def test_a_stage_refused_every_time_fails_with_prefects_error(prefect_harness, monkeypatch):
    from prefect import flow
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

    case = _Refusing(monkeypatch, 99)

    @flow
    def refused() -> int:
        return stage_runs.run_stage(case.provider, "implement", lambda: case.stage(1), sleep=case.pauses.append)

    with pytest.raises(ConcurrencySlotAcquisitionError):
        refused()
    assert case.ran == [] and case.pauses == list(stage_runs.START_PAUSES_S)


def _status_error(status: int) -> Exception:
    from prefect.exceptions import PrefectHTTPStatusError

    request = httpx.Request("POST", "http://prefect/api/task_runs/")
    return PrefectHTTPStatusError(f"{status}", request=request, response=httpx.Response(status, request=request))


def test_an_unavailable_prefect_server_is_told_from_a_failed_task():
    assert stage_runs.prefect_server_unavailable(_status_error(503))
    assert stage_runs.prefect_server_unavailable(httpx.ConnectError("refused"))
    try:
        try:
            raise _status_error(503)
        except Exception as exc:
            raise RuntimeError("the subflow crashed") from exc
    except RuntimeError as wrapped:
        assert stage_runs.prefect_server_unavailable(wrapped)  # what caused it counts
    assert not stage_runs.prefect_server_unavailable(_status_error(500))  # a server bug is not "busy"
    assert not stage_runs.prefect_server_unavailable(_status_error(404))
    assert not stage_runs.prefect_server_unavailable(ValueError("a task's own error"))


class _Run:
    """What `_pipeline` needs of a RunContext: progress reports and the store."""

    batch_id = "b"

    def __init__(self, store):
        self.store, self.reports = store, []

    def report(self, task_id, stage, detail="", *, done=False):
        self.reports.append((task_id, stage, detail, done))


def _spec():
    from quorum.domain.manifest import TaskSpec

    return TaskSpec(id="t1", repo="/r", task="do it")


def test_a_pipeline_that_met_an_unavailable_server_runs_again(monkeypatch, tmp_path):
    from quorum.flows import batch as batch_flow
    from quorum.store import LocalStore

    outcomes = [_status_error(503), "finished"]

    def pipeline(spec, roster, policy, run):
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(batch_flow, "run_task_pipeline", pipeline)
    monkeypatch.setattr(batch_flow, "result_of", lambda state: state)
    pauses: list[float] = []
    run = _Run(LocalStore(tmp_path))
    assert batch_flow._pipeline(_spec(), None, None, run, sleep=pauses.append) == "finished"
    assert pauses == [batch_flow.PIPELINE_RETRY_PAUSES_S[0]]
    assert [r[1] for r in run.reports] == ["retry"]


def test_a_pipeline_failing_on_its_own_or_unavailable_every_time_is_an_error_result(monkeypatch, tmp_path):
    from quorum.domain.models import TaskStatus
    from quorum.flows import batch as batch_flow
    from quorum.store import LocalStore

    for failure, expected_pauses in ((ValueError("bad input"), []),
                                     (_status_error(503), list(batch_flow.PIPELINE_RETRY_PAUSES_S))):  # fmt: skip
        def pipeline(spec, roster, policy, run, failure=failure):
            raise failure

        monkeypatch.setattr(batch_flow, "run_task_pipeline", pipeline)
        pauses: list[float] = []
        store = LocalStore(tmp_path / type(failure).__name__)
        result = batch_flow._pipeline(_spec(), None, None, _Run(store), sleep=pauses.append)
        assert result.status == TaskStatus.error and result.reason.startswith("pipeline crashed:")
        assert pauses == expected_pauses
        assert "pipeline crashed" in store.get_text(result.artifacts["result"])  # the reason is in the store
