"""Progress events (a task started a stage, a task finished) for whoever watches a run, e.g. the CLI display.

A run reports to the sink it was given (`RunContext.progress`); workers give none, so reporting is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel


class ProgressEvent(BaseModel):
    task_id: str
    stage: str
    detail: str = ""
    done: bool = False


ProgressSink = Callable[[ProgressEvent], None]


def ignore_progress(event: ProgressEvent) -> None:
    """The sink of a run nobody watches."""
