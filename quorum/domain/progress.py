"""In-process progress events (a task started a stage, a task finished), for the CLI's display.

Flows report here as well as in Prefect's logs; with no listener (a worker) reporting is a no-op.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pydantic import BaseModel

Listener = Callable[["ProgressEvent"], None]

_listeners: list[Listener] = []
_lock = threading.Lock()


class ProgressEvent(BaseModel):
    task_id: str
    stage: str
    detail: str = ""
    done: bool = False


def subscribe(listener: Listener) -> Callable[[], None]:
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def report(task_id: str, stage: str, detail: str = "", *, done: bool = False) -> None:
    event = ProgressEvent(task_id=task_id, stage=stage, detail=detail, done=done)
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event)
        except Exception:  # a broken display must never break a pipeline
            pass
