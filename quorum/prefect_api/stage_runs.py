"""Calling an LLM stage task under its tags, and starting it again when Prefect refused to start it; and
telling a Prefect server that was unavailable from a task that failed.

A stage's task run is tagged `provider:<provider>` and `stage:<stage>`. Before running a tagged task,
Prefect's engine asks the server for the tags' concurrency slots. A busy SQLite server answers that
request `503`; Prefect's client retries it (PREFECT_CLIENT_MAX_RETRIES, about a minute of back-off), and
then the engine raises `ConcurrencySlotAcquisitionError` from the task call, before the task's body
ran: nothing was asked of a model, nothing was paid. That used to end the whole task as an error
(seen in `bench/fanout.py` on a loaded machine); here the stage is started again after a pause, a
bounded number of times.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from prefect import tags
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

T = TypeVar("T")

START_PAUSES_S = (10.0, 30.0)  # before the 2nd and the 3rd attempt: the server was refusing for a minute already

logger = logging.getLogger("quorum.stages")


def call_again(
    attempt: Callable[[], T],
    *,
    again_when: Callable[[BaseException], bool],
    pauses: Sequence[float],
    before_again: Callable[[BaseException, float], None],
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`attempt()`; when it raises an exception `again_when` accepts, `before_again(error, pause)`, a
    pause, and `attempt()` again, once per pause. Any other exception, or the last one, propagates."""
    for pause in (*pauses, None):
        try:
            return attempt()
        except Exception as error:
            if pause is None or not again_when(error):
                raise
            before_again(error, pause)
            sleep(pause)
    raise AssertionError("unreachable")


def _refused(error: BaseException) -> bool:
    return isinstance(error, ConcurrencySlotAcquisitionError)


@contextmanager
def stage_tags(provider: str, stage: str) -> Iterator[None]:
    with tags(f"provider:{provider}", f"stage:{stage}"):
        yield


def _log_restart(stage: str) -> Callable[[BaseException, float], None]:
    def log(error: BaseException, pause: float) -> None:
        logger.warning("%s: Prefect could not start the task run (%s); starting it again in %.0f s",
                       stage, error, pause)  # fmt: skip

    return log


def run_stage(provider: str, stage: str, call: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()` (one stage task called synchronously) under the stage's tags, started again when Prefect
    refused to start it."""

    def tagged() -> T:
        with stage_tags(provider, stage):
            return call()

    return call_again(tagged, again_when=_refused, pauses=START_PAUSES_S, before_again=_log_restart(stage),
                      sleep=sleep)  # fmt: skip


class StageFuture(Generic[T]):
    """A submitted stage task (`submit()` returns its Prefect future) whose `result()` submits it again
    when Prefect refused to start it."""

    def __init__(self, provider: str, stage: str, submit: Callable[[], Any], *,
                 sleep: Callable[[float], None] = time.sleep):  # fmt: skip
        self._provider, self._stage, self._submit, self._sleep = provider, stage, submit, sleep
        self._future: Any = self._start()  # submitted now, so the stages of one round run side by side

    def _start(self) -> Any:
        with stage_tags(self._provider, self._stage):
            return self._submit()

    def _wait(self) -> T:
        if self._future is None:  # the last submission was refused: submit again
            self._future = self._start()
        try:
            return self._future.result()
        except ConcurrencySlotAcquisitionError:
            self._future = None
            raise

    def result(self) -> T:
        return call_again(self._wait, again_when=_refused, pauses=START_PAUSES_S,
                          before_again=_log_restart(self._stage), sleep=self._sleep)  # fmt: skip


UNAVAILABLE_STATUS = frozenset({408, 429, 502, 503, 504})


def prefect_server_unavailable(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is the Prefect server shedding or losing a request: a `503`
    from a busy SQLite server (after the client's own retries), a 502/504 from a proxy, a dropped
    connection, or a concurrency-slot request refused that way. Not a model's error, not a bug."""
    import httpx

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx.HTTPStatusError) and current.response.status_code in UNAVAILABLE_STATUS:
            return True
        if isinstance(current, httpx.TransportError):
            return True
        current = current.__cause__ or current.__context__
    return False
