"""Roster experiments: the same tasks under each roster, one roster after another, in one run.

Each roster runs the manifest as its own batch (`quorum.flows.batch.batch_pipeline`, batch id
`<compare id>-<roster>`). Rosters run in the order given, never at the same time: a stage whose
inputs a later roster shares with an earlier one (the plan, when the planner is the same model) is
then served from the LLM cache, which keys on the stage's inputs and its own model only. Each row
still shows the cost the roster would have paid alone; the stored call records say what was paid now.
"""

from __future__ import annotations

import time

from prefect import flow

from quorum.domain.compare import (
    CompareReport,
    check_distinct_names,
    mark_pareto,
    render_compare_markdown,
    roster_row,
    shared_stages,
    table_rows,
)
from quorum.domain.figures import compare_figure
from quorum.domain.manifest import Manifest
from quorum.domain.models import TaskResult
from quorum.domain.policy import Policy
from quorum.domain.progress import ProgressEvent, ProgressSink, ignore_progress
from quorum.domain.results import ui_key
from quorum.domain.roster import Roster
from quorum.flows.batch import batch_pipeline
from quorum.tasks.calls import read_calls_task
from quorum.tasks.charts import save_figure_task
from quorum.tasks.store import open_store_task, read_report_rows_task, read_results_task, save_artifacts_task
from quorum.tasks.ui import publish_markdown_task, publish_table_task


def roster_batch_id(compare_id: str, roster: str) -> str:
    return f"{compare_id}-{roster}"


def compare_prefix(compare_id: str) -> str:
    return f"compare/{compare_id}"


def round_prefixes(result: TaskResult) -> list[str]:
    """The store prefixes of a task's rounds (each holds that round's calls/, the plan's in round 1)."""
    return [key for name, key in sorted(result.artifacts.items()) if name.startswith("round")]


@flow(name="quorum-compare", flow_run_name="{compare_id}", log_prints=True)
def compare_rosters(
    manifest: Manifest,
    rosters: list[Roster],
    store_url: str,
    compare_id: str,
    policy: Policy | None = None,
    max_parallel: int = 3,
    resume: bool = True,
    progress: ProgressSink | None = None,
) -> CompareReport:
    check_distinct_names(rosters)
    policy = policy or Policy()
    sink = progress or ignore_progress
    started = time.time()
    store = open_store_task(store_url)
    rows = []
    for roster in rosters:  # one after another, so shared stages hit the cache (see the module docstring)
        report = batch_pipeline(
            manifest, roster, store_url, policy, max_parallel=max_parallel,
            batch_id=roster_batch_id(compare_id, roster.name), resume=resume, progress=_prefixed(sink, roster.name),
        )  # fmt: skip
        batch_rows = read_report_rows_task(store, report.rows)
        results = read_results_task(store, report.batch_id, [row.task_id for row in batch_rows])
        prefixes = [prefix for row in batch_rows if row.task_id in results for prefix in round_prefixes(results[row.task_id])]
        calls = read_calls_task(store, prefixes, label=roster.name)
        rows.append(roster_row(report, roster, calls, rows=batch_rows))

    base = compare_prefix(compare_id)
    compare = CompareReport(
        compare_id=compare_id, manifest=manifest.source, tasks=[spec.id for spec in manifest.tasks], store=store_url,
        started_at=started, finished_at=time.time(), policy_version=policy.version,
        simulated=any(row.simulated for row in rows), rows=mark_pareto(rows), shared=shared_stages(rosters),
    )  # fmt: skip
    compare.artifacts = save_figure_task(store, f"{base}/compare", compare_figure(compare))
    compare.artifacts.update({"report_json": f"{base}/compare.json", "report_md": f"{base}/compare.md"})
    markdown = render_compare_markdown(compare)
    save_artifacts_task(store, {f"{base}/compare.json": compare.model_dump_json(indent=2) + "\n",
                                f"{base}/compare.md": markdown}, label="compare")  # fmt: skip
    publish_table_task(ui_key("quorum-compare", compare_id), table_rows(compare),
                       f"quorum compare {compare_id}" + (" (simulated)" if compare.simulated else ""))  # fmt: skip
    publish_markdown_task(ui_key("quorum-compare", compare_id, "summary"), markdown, f"quorum compare {compare_id}")
    return compare


def _prefixed(sink: ProgressSink, roster: str) -> ProgressSink:
    def report(event: ProgressEvent) -> None:
        sink(event.model_copy(update={"task_id": f"{roster}/{event.task_id}"}))

    return report
