"""What the Prefect UI shows besides runs and logs: markdown and table artifacts, one task each."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact


@task(name="ui-markdown", task_run_name="ui · {key}")
def publish_markdown_task(key: str, markdown: str, description: str) -> None:
    create_markdown_artifact(key=key, markdown=markdown, description=description)


@task(name="ui-table", task_run_name="ui · {key}")
def publish_table_task(key: str, rows: list[dict], description: str) -> None:
    create_table_artifact(key=key, table=rows, description=description)
