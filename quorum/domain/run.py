"""What a pipeline run is given besides its task: where artifacts go, the batch's spend account, who watches.

One `RunContext` is made by the flow that starts the work (a batch, a single request) and passed
down to every task's pipeline; nothing of it lives in module globals.
"""

from __future__ import annotations

from typing import Protocol

from quorum.domain.budget import UNLIMITED, SpendAccount
from quorum.domain.progress import ProgressEvent, ProgressSink, ignore_progress


class ArtifactWriter(Protocol):
    """The part of an artifact store a pipeline needs (`quorum.store.ArtifactStore` is one)."""

    def put_text(self, key: str, text: str, content_type: str | None = None) -> str: ...

    def get_text(self, key: str) -> str: ...

    def url(self, key: str) -> str: ...


class RunContext:
    """Not a dataclass on purpose: Prefect builds a parameter schema for every flow argument, and an
    arbitrary class is checked with isinstance instead of having its fields (protocols) introspected."""

    def __init__(
        self,
        *,
        batch_id: str,
        store_url: str,
        store: ArtifactWriter,
        started_at: float,
        budget: SpendAccount = UNLIMITED,
        progress: ProgressSink = ignore_progress,
    ) -> None:
        self.batch_id = batch_id
        self.store_url = store_url  # how the store was named: folder, s3:// URL or block:<name>
        self.store = store
        self.started_at = started_at  # Unix time the run began; calls older than this came from the cache
        self.budget = budget
        self.progress = progress

    def __repr__(self) -> str:
        return f"RunContext(batch_id={self.batch_id!r}, store_url={self.store_url!r})"

    def report(self, task_id: str, stage: str, detail: str = "", *, done: bool = False) -> None:
        """Tell whoever watches; a broken display never breaks a pipeline."""
        try:
            self.progress(ProgressEvent(task_id=task_id, stage=stage, detail=detail, done=done))
        except Exception:  # noqa: BLE001 - the watcher's problem, not the run's
            pass
