"""End to end (Prefect test server, scripted models): examples/edits.yaml, two tasks answered the ways cheap
models write edits. One implementer answers in SEARCH/REPLACE blocks (its first reply refused and re-asked
with the applier's reason), the other splits its diff over two fenced blocks, one per file. Both resolved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from quorum.domain.policy import Policy
from quorum.flows.batch import batch_pipeline
from quorum.inputs.manifests import load_manifest
from quorum.inputs.rosters import load_roster
from tests.support.reports import task_results

ROOT = Path(__file__).resolve().parents[1]
SR = "textkit-slugify-search-replace"
TWO = "userdir-permission-cache-two-blocks"


@pytest.fixture(scope="module")
def edits_run(prefect_harness, tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    report = batch_pipeline(load_manifest(ROOT / "examples/edits.yaml"), load_roster("scripted"), str(store), Policy())
    return store, report


def read(store: Path, task: str, name: str) -> str:
    return (store / "runs/edits" / task / name).read_text(encoding="utf-8")


def test_both_tasks_are_resolved_in_round_1(edits_run):
    _, report = edits_run
    assert {r.task_id: (r.status.value, r.rounds) for r in task_results(report)} == {SR: ("resolved", 1), TWO: ("resolved", 1)}
    assert all(r.acceptance and r.acceptance.status.value == "passed" for r in task_results(report))


def test_search_replace_reply_is_applied_after_a_reask_with_the_appliers_reason(edits_run):
    store, report = edits_run
    script = yaml.safe_load((ROOT / "examples/textkit/script.search_replace.yaml").read_text())
    refused_reply, good_reply = script["implement"][1]

    applied = json.loads(read(store, SR, "1/apply.json"))
    assert applied["applied"] is True and applied["format"] == "search_replace"
    assert applied["files"] == ["textkit/slug.py", "textkit/__init__.py", "tests/test_slug.py"]
    assert [(e["file"], e["match"], e["applied"]) for e in applied["edits"]] == [
        ("textkit/slug.py", "new_file", True), ("textkit/__init__.py", "exact", True), ("tests/test_slug.py", "new_file", True),
    ]  # fmt: skip
    assert "diff" not in applied  # it is patch.diff
    assert read(store, SR, "1/implement.md") == good_reply  # the raw reply that was applied

    first = json.loads(read(store, SR, "1/calls/implement-scripted_deepseek-chat-attempt1.json"))
    second = json.loads(read(store, SR, "1/calls/implement-scripted_deepseek-chat-attempt2.json"))
    assert first["response_text"] == refused_reply and first["error_kind"] == "invalid_output"
    assert "textkit/__init__.py (edit #2): it does not apply" in first["error"]
    assert first["reply_check"]["edit_format_asked"] == "udiff" and first["reply_check"]["edit_format_used"] == "search_replace"
    assert [e["match"] for e in first["reply_check"]["edits"]] == ["new_file", "none", "new_file"]
    reask = second["messages"][-1]["content"]
    assert reask.startswith("Your previous reply could not be applied, so NOTHING was changed")
    assert "- SEARCH/REPLACE block of textkit/__init__.py (edit #2): it does not apply: the line " in reask
    assert "__all__ = [\"camel_case\", \"snake_case\", \"truncate\"]" in reask
    assert second["reply_check"]["applies"] is True and second["error"] == ""
    result = next(r for r in task_results(report) if r.task_id == SR)
    assert result.cost.by_stage["implement"].calls == 2  # the re-ask is paid for and counted

    # Reviewers see the normalised diff of what was applied, not the reply.
    patch = read(store, SR, "1/patch.diff")
    assert patch.startswith("diff --git a/textkit/slug.py b/textkit/slug.py\nnew file mode 100644\n")
    assert "+from textkit.slug import slugify\n" in patch and "<<<<<<<" not in patch
    review = json.loads(read(store, SR, "1/calls/review-scripted_gpt-5-mini-attempt1.json"))
    assert "diff --git a/textkit/__init__.py b/textkit/__init__.py" in review["messages"][-1]["content"]


def test_every_fenced_diff_block_is_applied(edits_run):
    store, _ = edits_run
    applied = json.loads(read(store, TWO, "1/apply.json"))
    assert applied["applied"] is True and applied["format"] == "udiff"
    assert applied["files"] == ["userdir/directory.py", "tests/test_permission_cache.py"]
    assert [(e["label"], e["match"]) for e in applied["edits"]] == [
        ("hunk #1 of userdir/directory.py (diff #1)", "exact"),
        ("hunk #2 of userdir/directory.py (diff #1)", "exact"),
        ("new file of tests/test_permission_cache.py (diff #2)", "new_file"),
    ]
    assert applied["added_lines"]["tests/test_permission_cache.py"] == list(range(1, 27))
    patch = read(store, TWO, "1/patch.diff")
    assert "diff --git a/userdir/directory.py b/userdir/directory.py" in patch
    assert "diff --git a/tests/test_permission_cache.py b/tests/test_permission_cache.py" in patch
    # The second block's test ran with the repository's tests.
    pytest_xml = read(store, TWO, "1/verify/pytest.xml")
    assert "test_grant_and_revoke_after_a_check_take_effect" in pytest_xml
