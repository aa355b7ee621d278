"""Side effects on the artifact store, one task each."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from quorum.domain.artifacts import predictions_jsonl, predictions_key, result_key, round_prefix
from quorum.domain.manifest import TaskSpec
from quorum.domain.models import TaskResult
from quorum.blocks.refs import open_store_ref
from quorum.store import ArtifactNotFound, ArtifactStore


@task(name="save-artifacts", task_run_name="save · {label}", retries=3, retry_delay_seconds=[1, 2, 4], cache_policy=NONE)
def save_artifacts_task(store: ArtifactStore, items: dict[str, str], label: str = "artifacts") -> list[str]:
    """Write a bundle of text artifacts, each as a whole object; returns the keys written."""
    return [store.put_text(key, text) for key, text in sorted(items.items())]


@task(name="read-results", task_run_name="read results · {batch_id}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def read_results_task(store: ArtifactStore, batch_id: str, task_ids: list[str]) -> dict[str, TaskResult]:
    """Task results already in the store for this batch (an earlier, interrupted run); unreadable ones are ignored."""
    found: dict[str, TaskResult] = {}
    for task_id in task_ids:
        try:
            found[task_id] = TaskResult.model_validate_json(store.get_text(result_key(batch_id, task_id)))
        except ArtifactNotFound:
            continue
        except ValueError:  # a result written by an older, incompatible version: run the task again
            continue
    return found


@task(name="open-store", task_run_name="store · {ref}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def open_store_task(ref: str) -> ArtifactStore:
    """The store behind a URL, a path or `block:<name>` (a QuorumArtifactStore block), opened once per run."""
    return open_store_ref(ref)


@task(name="write-predictions", task_run_name="predictions · {batch_id}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def write_predictions_task(
    store: ArtifactStore, batch_id: str, specs: list[TaskSpec], results: list[TaskResult], model: str
) -> str:
    """`runs/<batch>/predictions.jsonl` in SWE-bench's harness format: per task its last round's patch
    ('' when no round ran), keyed by the instance id (the task id for manifest tasks)."""
    by_id = {result.task_id: result for result in results}
    rows = []
    for spec in specs:
        result = by_id.get(spec.id)
        patch = ""
        if result is not None and result.rounds:
            try:
                patch = store.get_text(f"{round_prefix(batch_id, spec.id, result.rounds)}/patch.diff")
            except ArtifactNotFound:
                patch = ""
        rows.append((spec.instance.instance_id if spec.instance else spec.id, model, patch))
    return store.put_text(predictions_key(batch_id), predictions_jsonl(rows))
