"""What every LLM stage task shares: its Prefect options and its output shape."""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.tasks import exponential_backoff
from pydantic import BaseModel, Field

from quorum.llm import retry_on_transient
from quorum.models import LLMCall

# LLM stages cache on their inputs and code with persisted results, so re-running a batch after a
# crash or a policy change pays for no call twice. Retries happen only on transient errors.
LLM_TASK_OPTIONS: dict[str, Any] = {
    "cache_policy": INPUTS + TASK_SOURCE,
    "persist_result": True,
    "retries": 4,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_on_transient,
}


class StageOutput(BaseModel):
    """A stage's parsed output (as text or JSON-able data) plus every call it paid for."""

    calls: list[LLMCall] = Field(default_factory=list)
