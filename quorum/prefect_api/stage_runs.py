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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from prefect import tags
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError

T = TypeVar("T")

START_ATTEMPTS = 3
START_PAUSE_S = (10.0, 30.0)  # before the 2nd and the 3rd attempt: the server was refusing for a minute already

logger = logging.getLogger("quorum.stages")


@contextmanager
def stage_tags(provider: str, stage: str) -> Iterator[None]:
    with tags(f"provider:{provider}", f"stage:{stage}"):
        yield


def _pause(stage: str, attempt: int, error: BaseException, sleep: Callable[[float], None]) -> None:
    pause = START_PAUSE_S[min(attempt, len(START_PAUSE_S)) - 1]
    logger.warning("%s: Prefect could not start the task run (%s); starting it again in %.0f s (attempt %d of %d)",
                   stage, error, pause, attempt + 1, START_ATTEMPTS)  # fmt: skip
    sleep(pause)


def run_stage(provider: str, stage: str, call: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()` (one stage task called synchronously) under the stage's tags, started again when Prefect
    refused to start it."""
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            with stage_tags(provider, stage):
                return call()
        except ConcurrencySlotAcquisitionError as error:
            if attempt == START_ATTEMPTS:
                raise
            _pause(stage, attempt, error, sleep)
    raise AssertionError("unreachable")


class StageFuture(Generic[T]):
    """A submitted stage task (`submit()` returns its Prefect future) whose `result()` submits it again
    when Prefect refused to start it."""

    def __init__(self, provider: str, stage: str, submit: Callable[[], Any], *,
                 sleep: Callable[[float], None] = time.sleep):  # fmt: skip
        self._provider, self._stage, self._submit, self._sleep = provider, stage, submit, sleep
        self._future = self._start()

    def _start(self) -> Any:
        with stage_tags(self._provider, self._stage):
            return self._submit()

    def result(self) -> T:
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return self._future.result()
            except ConcurrencySlotAcquisitionError as error:
                if attempt == START_ATTEMPTS:
                    raise
                _pause(self._stage, attempt, error, self._sleep)
                self._future = self._start()
        raise AssertionError("unreachable")


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
