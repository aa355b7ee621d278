"""Side effects on the artifact store and the Prefect UI, one task each."""

from __future__ import annotations

from functools import lru_cache

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from quorum.store import ArtifactStore, open_store


@lru_cache(maxsize=8)
def store_for(url: str) -> ArtifactStore:
    return open_store(url)


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
