"""The implement stage with the edit applier: the roster's format in the prompt, the dry run on a clean
workspace, the re-ask with the applier's reasons, and the cache (the workspace path is not in its key)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from quorum.domain.edit_format import EditFormat
from quorum.domain.manifest import TaskSpec
from quorum.domain.models import Plan, PlanStep
from quorum.domain.roster import StageModel
from quorum.edits import format_instructions
from quorum.stages.implement import build_implement_messages, run_implement
from quorum.stages.prompting import render_files
from quorum.workspace.workspace import prepare_workspace
from tests.support.edits import write_tree

PLAN = Plan(summary="Make greet() polite.", steps=[PlanStep(description="Change the greeting in app/greet.py.")])
SOURCE = {
    "app/__init__.py": "",
    "app/greet.py": 'def greet(name):\n    return "hi " + name\n\n\ndef shout(name):\n    return greet(name).upper()\n',
}
CONTEXT = render_files(SOURCE)  # the implementer's repository context: these whole files, line-numbered
GOOD_SR = (
    "Politer greeting.\n\napp/greet.py\n```python\n<<<<<<< SEARCH\ndef greet(name):\n    return \"hi \" + name\n"
    "=======\ndef greet(name):\n    return \"Hello, \" + name\n>>>>>>> REPLACE\n```\n"
)
NOT_IN_FILE = (
    "app/greet.py\n```python\n<<<<<<< SEARCH\ndef greet(person):\n    return \"hi \" + person\n"
    "=======\ndef greet(person):\n    return \"Hello, \" + person\n>>>>>>> REPLACE\n```\n"
)


def implementer(fmt: str | None = None) -> StageModel:
    return StageModel(model="scripted/deepseek-chat", priced_as="deepseek/deepseek-chat", edit_format=fmt)


@pytest.fixture
def setup(tmp_path: Path):
    source = write_tree(tmp_path / "source", SOURCE)
    workspace = prepare_workspace(source, tmp_path / "work")

    def spec_with(replies) -> TaskSpec:
        script = tmp_path / "script.yaml"
        script.write_text(yaml.safe_dump({"implement": {1: replies}}))
        return TaskSpec(id="greet", repo=str(source), task="Greet politely.", script=str(script))

    return workspace, spec_with


@pytest.mark.parametrize(
    ("configured", "asked", "marker"),
    [(None, EditFormat.udiff, "```diff\n--- a/src/app.py"),
     ("search_replace", EditFormat.search_replace, "<<<<<<< SEARCH"),
     ("whole_file", EditFormat.whole_file, "complete new content of that file")],
)  # fmt: skip
def test_the_system_prompt_describes_the_rosters_edit_format(configured, asked, marker):
    model = implementer(configured)
    assert model.resolved_edit_format == asked
    system = build_implement_messages("t", CONTEXT, PLAN, 1, [], [], edit_format=model.resolved_edit_format)[0]
    assert system["role"] == "system"
    assert format_instructions(asked) in system["content"] and marker in system["content"]
    assert "exactly one fenced ```diff block" not in system["content"]


def test_a_refused_reply_is_reasked_with_the_appliers_reason(setup):
    workspace, spec_with = setup
    spec = spec_with([NOT_IN_FILE, GOOD_SR])
    out = run_implement(spec, implementer("search_replace"), CONTEXT, PLAN, 1, [], [], Path(workspace.path))

    assert out.reply == GOOD_SR and out.refused == "" and out.edit_format == EditFormat.search_replace
    first, second = out.calls
    assert first.error_kind == "invalid_output" and "'def greet(person):' is not in the file" in first.error
    reask = second.messages[-1]
    assert reask["role"] == "user" and second.messages[-2] == {"role": "assistant", "content": NOT_IN_FILE}
    assert reask["content"].startswith("Your previous reply could not be applied, so NOTHING was changed")
    assert "- SEARCH/REPLACE block of app/greet.py (edit #1): it does not apply" in reask["content"]
    assert "in the search_replace format" in reask["content"]
    # The call artifacts say which format was asked for and used, and how each edit was placed or why not.
    assert first.reply_check["edit_format_asked"] == "search_replace" and first.reply_check["applies"] is False
    assert first.reply_check["edits"][0]["match"] == "none" and "is not in the file" in first.reply_check["edits"][0]["reason"]
    assert second.reply_check == {
        "edit_format_asked": "search_replace", "edit_format_used": "search_replace", "dry_run": True, "applies": True,
        "edits": [{"label": "SEARCH/REPLACE block of app/greet.py (edit #1)", "match": "exact", "placed_by": "content",
                   "start": 1, "reason": ""}],
        "problems": [],
    }  # fmt: skip
    # The normalised diff of the dry run; the workspace itself is untouched.
    assert out.diff.startswith("diff --git a/app/greet.py b/app/greet.py\n")
    assert '-    return "hi " + name\n+    return "Hello, " + name\n' in out.diff
    assert (Path(workspace.path) / "app/greet.py").read_text() == SOURCE["app/greet.py"]


def test_when_the_reasks_run_out_the_last_refused_reply_goes_to_the_round(setup):
    workspace, spec_with = setup
    out = run_implement(spec_with(NOT_IN_FILE), implementer(), CONTEXT, PLAN, 1, [], [], Path(workspace.path))
    assert out.reply == NOT_IN_FILE and out.diff == ""
    assert "'def greet(person):' is not in the file" in out.refused
    assert len(out.calls) == 3 and all(c.error_kind == "invalid_output" for c in out.calls)


def test_a_reply_that_is_never_whole_is_still_an_error(setup):
    from quorum.llm.client import StructuredOutputError

    _, spec_with = setup
    truncated = {"text": GOOD_SR[:40], "finish_reason": "length"}
    with pytest.raises(StructuredOutputError, match="no usable reply after 3 attempts"):
        run_implement(spec_with(truncated), implementer(), CONTEXT, PLAN, 1, [], [], None)


def test_without_a_workspace_only_the_form_is_checked(setup):
    _, spec_with = setup
    out = run_implement(spec_with(["no edits here", NOT_IN_FILE]), implementer(), CONTEXT, PLAN, 1, [], [], None)
    assert out.reply == NOT_IN_FILE and out.refused == "" and out.diff == ""  # not placed: nothing to place it in
    assert "malformed reply: no edit found" in out.calls[0].error and len(out.calls) == 2


def test_a_rerun_is_served_from_the_cache_although_the_workspace_path_differs(prefect_harness, tmp_path):
    from prefect import flow

    from quorum.inputs.rosters import load_roster
    from quorum.prefect_api.limits import ensure_limits
    from quorum.tasks.implement import implement_task

    ensure_limits(load_roster("scripted"))  # provider slots, as a flow run creates them
    source = write_tree(tmp_path / "source", SOURCE)
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump({"implement": {1: [NOT_IN_FILE, GOOD_SR]}}))
    spec = TaskSpec(id="greet-cache", repo=str(source), task=f"Greet politely ({tmp_path.name}).", script=str(script))
    model = implementer("search_replace")

    @flow
    def implement_in(work: str, digest: str):
        workspace = prepare_workspace(source, Path(work))
        return implement_task(spec, model, CONTEXT, PLAN, 1, [], [], repo_digest=digest or workspace.files_digest,
                              workspace=workspace.path, return_state=True)  # fmt: skip

    first = implement_in(str(tmp_path / "run1"), "")
    again = implement_in(str(tmp_path / "run2"), "")  # another temporary directory, the same content
    changed = implement_in(str(tmp_path / "run3"), "another-content-digest")
    assert first.name == "Completed" and len(first.result().calls) == 2
    assert again.name == "Cached" and again.result() == first.result()
    assert changed.name == "Completed"  # the content identity is in the key
    assert prepare_workspace(source, tmp_path / "x").files_digest == prepare_workspace(source, tmp_path / "y").files_digest
