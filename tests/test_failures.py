"""Failures that explain themselves: a bad manifest entry does not sink the batch, a crashed batch says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from quorum.domain.manifest import ManifestError
from quorum.inputs.manifests import load_manifest
from tests.event_helpers import wait_for_events

ROOT = Path(__file__).resolve().parents[1]
TEXTKIT = ROOT / "examples" / "textkit"


def _manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"batch": "mixed", "tasks": [
        {"id": "textkit-slugify", "repo": str(TEXTKIT / "repo"), "task_file": str(TEXTKIT / "task.md"),
         "script": str(TEXTKIT / "script.yaml"), "acceptance": str(TEXTKIT / "acceptance")},
        {"id": "gone", "repo": str(tmp_path / "no-such-repo"), "task": "fix it"},
        {"id": "no-text", "repo": str(TEXTKIT / "repo"), "task_file": str(tmp_path / "missing.md")},
    ]}))  # fmt: skip
    return path


def test_the_cli_still_refuses_a_manifest_with_a_bad_entry(tmp_path):
    with pytest.raises(ManifestError, match="'gone': repository path .* does not exist"):
        load_manifest(_manifest(tmp_path))


def test_a_lenient_load_sets_bad_entries_aside_with_their_reasons(tmp_path):
    manifest = load_manifest(_manifest(tmp_path), keep_going=True)
    assert [spec.id for spec in manifest.tasks] == ["textkit-slugify"]
    reasons = {entry.id: entry.reason for entry in manifest.rejected}
    assert set(reasons) == {"gone", "no-text"}
    assert "repository path" in reasons["gone"] and "no-such-repo" in reasons["gone"]
    assert "task_file" in reasons["no-text"] and "missing.md" in reasons["no-text"]


def test_a_lenient_load_still_refuses_what_is_not_a_manifest(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"batch": "b", "tasks": [{"id": "a", "repo": ".", "task": "x"}] * 2}))
    with pytest.raises(ManifestError, match="duplicate task id"):
        load_manifest(path, keep_going=True)


def test_the_deployment_batch_runs_the_good_tasks_and_reports_the_bad_ones(prefect_harness, tmp_path):
    """`batch_from_files` (the nightly deployment's entry point) with one runnable task and two broken entries:
    the runnable one is resolved, each broken one is an `error` with its reason, and the run's state counts both."""
    from quorum.flows.batch import batch_from_files

    store = tmp_path / "store"
    state = batch_from_files(manifest_path=str(_manifest(tmp_path)), store_url=str(store), return_state=True)
    assert (state.type.value, state.name) == ("FAILED", "1 resolved · 2 error")
    rows = {row["task_id"]: row for row in map(json.loads, (store / "runs/mixed/report.jsonl").read_text().splitlines())}
    assert {task: row["status"] for task, row in rows.items()} == {"textkit-slugify": "resolved", "gone": "error",
                                                                   "no-text": "error"}  # fmt: skip
    assert rows["gone"]["reason"].startswith("not run: ") and "no-such-repo" in rows["gone"]["reason"]
    stored = json.loads((store / "runs/mixed/gone/result.json").read_text())
    assert stored["status"] == "error" and "does not exist" in stored["reason"]


def test_a_crashed_batch_says_how_to_resume_it(prefect_harness):
    """A batch flow whose process is told to exit (what a stopping worker does) ends Crashed, and its hook sends
    `quorum.batch.crashed` whose payload says how to resume the batch by its id."""
    from prefect import flow

    from quorum.domain.events import BATCH_CRASHED
    from quorum.prefect_api.crash import on_batch_crashed

    @flow(name="quorum-batch-from-files", on_crashed=[on_batch_crashed])
    def stopped(batch_id: str) -> None:
        raise SystemExit(1)

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with pytest.raises(SystemExit):
        stopped(batch_id="crash-test-1")
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["quorum-batch-from-files"])))
    [run] = [r for r in runs if r.parameters.get("batch_id") == "crash-test-1"]
    assert run.state.type.value == "CRASHED"
    assert "resume batch 'crash-test-1'" in run.state.message and "--batch-id crash-test-1" in run.state.message
    events = wait_for_events(BATCH_CRASHED, resource_id="quorum.batch.crash-test-1")
    assert len(events) == 1
    payload = events[0].payload
    assert payload["batch_id"] == "crash-test-1"
    assert "batch_id=crash-test-1" in payload["resume"] and "--batch-id crash-test-1" in payload["resume"]


def test_a_scripted_roster_refuses_a_request_without_a_script():
    from quorum.domain.roster import request_refusal
    from quorum.inputs.rosters import load_roster

    scripted = load_roster("scripted")
    assert "set the deployment's `roster` parameter" in request_refusal(scripted, has_script=False)
    assert request_refusal(scripted, has_script=True) is None
    assert request_refusal(load_roster("default"), has_script=False) is None
