"""Side effects on the artifact store and the Prefect UI, one task each."""

from __future__ import annotations

from functools import lru_cache

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from quorum.domain.artifacts import task_prefix
from quorum.domain.models import TaskResult
from quorum.blocks.refs import open_store_ref
from quorum.store.stores import ArtifactNotFound, ArtifactStore


@lru_cache(maxsize=8)
def store_for(url: str) -> ArtifactStore:
    """The store behind a URL, a path or `block:<name>` (a QuorumArtifactStore block), opened once per process."""
    return open_store_ref(url)


@task(name="save-artifacts", task_run_name="save · {label}", retries=3, retry_delay_seconds=[1, 2, 4])
def save_artifacts_task(store_url: str, items: dict[str, str], label: str = "artifacts") -> list[str]:
    """Write a bundle of text artifacts, each as a whole object; returns the keys written."""
    store = store_for(store_url)
    return [store.put_text(key, text) for key, text in sorted(items.items())]


@task(name="ui-markdown", task_run_name="ui · {key}")
def publish_markdown_task(key: str, markdown: str, description: str) -> None:
    create_markdown_artifact(key=key, markdown=markdown, description=description)


@task(name="ui-table", task_run_name="ui · {key}")
def publish_table_task(key: str, rows: list[dict], description: str) -> None:
    create_table_artifact(key=key, table=rows, description=description)


@task(name="read-results", task_run_name="read results · {batch_id}", retries=2, retry_delay_seconds=[1, 2])
def read_results_task(store_url: str, batch_id: str, task_ids: list[str]) -> dict[str, TaskResult]:
    """Task results already in the store for this batch (an earlier, interrupted run); unreadable ones are ignored."""
    store = store_for(store_url)
    found: dict[str, TaskResult] = {}
    for task_id in task_ids:
        key = f"{task_prefix(batch_id, task_id)}/result.json"
        try:
            found[task_id] = TaskResult.model_validate_json(store.get_text(key))
        except ArtifactNotFound:
            continue
        except ValueError:  # a result written by an older, incompatible version: run the task again
            continue
    return found
