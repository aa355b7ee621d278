"""A batch: every (repository, task) pair of a manifest through the pipeline, then one report."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from prefect import flow, task

from flows.pipeline import task_pipeline
from quorum.artifacts import slug
from quorum.llm import check_api_keys, check_roster_models
from quorum.manifest import Manifest, TaskSpec
from quorum.models import BatchReport, TaskResult, TaskStatus
from quorum.results import build_batch_report, render_batch_markdown, result_row, ui_key
from quorum.roster import Roster
from tasks.aggregate import Policy
from tasks.limits import ensure_limits_task
from tasks.store_io import publish_markdown_task, publish_table_task, save_artifacts_task


@task(name="check-roster", task_run_name="check roster · {roster.name}")
def check_roster_task(roster: Roster) -> None:
    """Unknown models and missing API keys stop the batch before any call is made."""
    check_roster_models(roster)
    check_api_keys(roster)


@flow(name="quorum-batch", flow_run_name="{manifest.batch}", log_prints=True)
def batch_pipeline(
    manifest: Manifest,
    roster: Roster,
    store_url: str,
    policy: Policy | None = None,
    max_parallel: int = 3,
    batch_id: str | None = None,
) -> BatchReport:
    policy = policy or Policy()
    batch_id = batch_id or manifest.batch
    started = time.time()
    check_roster_task(roster)
    ensure_limits_task(roster)

    def run_one(spec: TaskSpec) -> TaskResult:
        try:
            return task_pipeline(spec, roster, policy, store_url, batch_id, run_started_at=started)
        except Exception as exc:  # a crashed subflow is reported, never dropped
            return TaskResult(
                batch_id=batch_id, task_id=spec.id, repo=spec.repo, status=TaskStatus.error,
                reason=f"pipeline crashed: {type(exc).__name__}: {exc}",
            )  # fmt: skip

    with ThreadPoolExecutor(max_workers=max(1, max_parallel), thread_name_prefix="quorum-task") as pool:
        results = list(pool.map(run_one, manifest.tasks))

    report = build_batch_report(
        batch_id=batch_id, started_at=started, finished_at=time.time(),
        roster=roster.name, store=store_url, results=results,
    )  # fmt: skip
    save_artifacts_task(store_url, {f"runs/{slug(batch_id)}/report.json": report.model_dump_json(indent=2)}, label="report")
    publish_table_task(ui_key("quorum", batch_id, "results"), [result_row(r) for r in results], f"quorum batch {batch_id}")
    publish_markdown_task(ui_key("quorum", batch_id, "summary"), render_batch_markdown(report), f"quorum batch {batch_id}")
    return report


@task(name="load-batch-inputs", task_run_name="load · {manifest_path}")
def load_inputs_task(manifest_path: str, roster: str) -> tuple[Manifest, Roster]:
    from quorum.manifest import load_manifest
    from quorum.roster import load_roster

    return load_manifest(manifest_path), load_roster(roster)


@flow(name="quorum-batch-from-files", flow_run_name="{manifest_path}", log_prints=True)
def batch_from_files(
    manifest_path: str = "examples/demo.yaml",
    roster: str = "scripted",
    store_url: str = ".quorum",
    max_rounds: int = 3,
    max_parallel: int = 3,
) -> BatchReport:
    """Deployment entry point: a batch from a manifest file and a roster name or file."""
    manifest, loaded_roster = load_inputs_task(manifest_path, roster)
    return batch_pipeline(manifest, loaded_roster, store_url, Policy(max_rounds=max_rounds), max_parallel=max_parallel)
