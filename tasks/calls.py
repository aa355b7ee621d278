"""Reading the stored LLM call records back (what experiment tables are checked against), as a task."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from quorum.domain.models import LLMCall
from quorum.store import ArtifactStore


@task(name="read-calls", task_run_name="read calls · {label}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def read_calls_task(store: ArtifactStore, prefixes: list[str], label: str = "") -> list[LLMCall]:
    """Every `calls/*.json` record directly under each prefix, without prompts and replies (only the accounting)."""
    calls = []
    for prefix in prefixes:
        folder = prefix.rstrip("/") + "/calls/"
        for key in store.list(folder):
            if key.endswith(".json") and "/" not in key[len(folder):]:
                call = LLMCall.model_validate_json(store.get_text(key))
                calls.append(call.model_copy(update={"messages": [], "response_text": ""}))
    return calls
