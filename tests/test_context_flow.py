"""Context in the pipeline (scripted roster, real Prefect flow runs): what each stage saw is stored in
context.json and the task's summary, the localize stage falls back to the ranking when its answer is
unusable, and every model's context stays within its own budget, counted with its own tokenizer."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from quorum.domain.models import TaskResult
from quorum.domain.policy import Policy
from quorum.domain.results import render_task_markdown
from quorum.flows.batch import batch_pipeline
from quorum.inputs.manifests import load_manifest
from quorum.inputs.rosters import load_roster
from tests.support.reports import task_results

ROOT = Path(__file__).resolve().parents[1]
TEXTKIT = ROOT / "examples" / "textkit"
REPOSITORY = re.compile(r"<repository>\n(.*)\n</repository>", re.DOTALL)


def _manifest(tmp_path: Path, script: dict, *, extra_files: dict[str, str] | None = None, task_id: str = "ctx") -> Path:
    shutil.copytree(TEXTKIT / "repo", tmp_path / "repo")
    for rel, text in (extra_files or {}).items():
        (tmp_path / "repo" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "repo" / rel).write_text(text)
    (tmp_path / "script.yaml").write_text(yaml.safe_dump(script))
    manifest = {"batch": "ctx", "tasks": [{"id": task_id, "repo": "repo", "task_file": str(TEXTKIT / "task.md"),
                                          "acceptance": str(TEXTKIT / "acceptance"), "script": "script.yaml"}]}  # fmt: skip
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(manifest))
    return tmp_path / "m.yaml"


def _textkit_script() -> dict:
    return yaml.safe_load((TEXTKIT / "script.yaml").read_text())


def _run(tmp_path: Path, script: dict, roster=None, **kwargs) -> tuple[Path, TaskResult]:
    store = tmp_path / "store"
    report = batch_pipeline(load_manifest(_manifest(tmp_path, script, **kwargs)), roster or load_roster("scripted"),
                            str(store), Policy())  # fmt: skip
    (result,) = task_results(report)
    return store / "runs/ctx" / result.task_id, result


def test_each_round_stores_what_every_stage_saw(prefect_harness, tmp_path):
    base, result = _run(tmp_path, _textkit_script())
    assert result.status.value == "resolved"
    context = json.loads((base / "1/context.json").read_text())
    stages = [(s["stage"], s["model"]) for s in context["stages"]]
    assert stages == [
        ("localize", "scripted/gemini-2.5-flash"),
        ("plan", "scripted/claude-sonnet-4-5"),
        ("implement", "scripted/deepseek-chat"),
        ("review", "scripted/gpt-5-mini"),
        ("review", "scripted/gemini-2.5-flash"),
    ]
    by_stage = {s["stage"]: s for s in context["stages"]}
    assert any("localization (model): edit textkit/__init__.py" in n for n in by_stage["localize"]["notes"])
    plan = by_stage["plan"]
    assert plan["budget"] == 12_000 and 0 < plan["tokens"] <= plan["budget"]
    # the planner saw the localized file whole, with its reasons; every region has lines and tokens
    init = next(r for r in plan["regions"] if r["path"] == "textkit/__init__.py")
    lines = (TEXTKIT / "repo/textkit/__init__.py").read_text().splitlines()
    assert (init["start_line"], init["end_line"]) == (1, len(lines))
    assert any("whole file" in reason for reason in init["reasons"])
    assert all(r["tokens"] > 0 and 1 <= r["start_line"] <= r["end_line"] for s in context["stages"] for r in s["regions"])
    # the reviewers saw the patched tree: the new module, whole, with its line numbers after the patch
    review = by_stage["review"]
    slug = next(r for r in review["regions"] if r["path"] == "textkit/slug.py")
    assert slug["start_line"] <= 11 <= slug["end_line"]  # `def slugify` in the patched file
    assert context["totals"]["tokens"] == sum(s["tokens"] for s in context["stages"])
    # what was sent is what was recorded: the planner's prompt holds exactly its regions, line-numbered
    call = json.loads((base / "1/calls/plan-scripted_claude-sonnet-4-5-attempt1.json").read_text())
    sent = REPOSITORY.search(call["messages"][1]["content"]).group(1)
    assert f'<file path="textkit/__init__.py" lines="1-{len(lines)}">\n1|{lines[0]}' in sent
    # the task's result and its UI summary carry it too
    assert [s.stage for s in result.contexts[0].stages] == [s for s, _ in stages]
    markdown = render_task_markdown(result, "store")
    assert "## Context" in markdown and "| 1 | plan | scripted/claude-sonnet-4-5 |" in markdown
    assert "textkit/__init__.py:1-" in markdown


def test_an_unusable_localize_reply_falls_back_to_the_ranking(prefect_harness, tmp_path):
    script = {**_textkit_script(), "localize": {"edit_files": ["textkit/no_such_file.py"]}}
    base, result = _run(tmp_path, script)
    assert result.status.value == "resolved"  # the task goes on with the deterministic localization
    assert result.cost.by_stage["localize"].calls == 3  # the bounded re-asks are paid for and counted
    localization = json.loads((base / "1/localization.json").read_text())
    assert localization["source"] == "deterministic"
    assert localization["edit_files"] and all(Path(tmp_path / "repo" / p).is_file() for p in localization["edit_files"])
    assert any("no usable reply after 3 attempts" in n and "not in the repository map" in n for n in localization["notes"])
    localize = json.loads((base / "1/context.json").read_text())["stages"][0]
    assert localize["stage"] == "localize" and any("localization (deterministic)" in n for n in localize["notes"])
    calls = sorted(p.name for p in (base / "1/calls").iterdir() if p.name.startswith("localize"))
    assert calls == [f"localize-scripted_gemini-2.5-flash-attempt{n}.json" for n in (1, 2, 3)]
    reask = json.loads((base / "1/calls/localize-scripted_gemini-2.5-flash-attempt2.json").read_text())
    assert "textkit/no_such_file.py" in reask["messages"][-1]["content"]  # the model is told what was wrong


def test_a_script_without_a_localize_reply_also_falls_back(prefect_harness, tmp_path):
    script = {k: v for k, v in _textkit_script().items() if k != "localize"}
    base, result = _run(tmp_path, script)
    assert result.status.value == "resolved"
    localization = json.loads((base / "1/localization.json").read_text())
    assert localization["source"] == "deterministic"
    assert any("no replies for stage 'localize'" in n for n in localization["notes"])


def big_module(n: int = 300) -> str:
    return '"""Filler: lots of code the task is not about."""\n' + "".join(
        f"\n\ndef filler_{i}(text: str) -> str:\n    \"\"\"Filler {i}.\"\"\"\n    return text.replace('{i}', '-') * {i}\n"
        for i in range(n)
    )


def test_every_model_gets_its_own_budget_counted_with_its_own_tokenizer(prefect_harness, tmp_path):
    from quorum.llm.client import get_litellm

    budgets = {"localize": 1_200, "plan": 1_800, "implement": 1_300, "review": 1_100}
    roster = load_roster("scripted")
    roster = roster.model_copy(update={
        "localizer": roster.localizer.model_copy(update={"context_tokens": budgets["localize"]}),
        "planner": roster.planner.model_copy(update={"context_tokens": budgets["plan"]}),
        "implementer": roster.implementer.model_copy(update={"context_tokens": budgets["implement"]}),
        "reviewers": [roster.reviewers[0].model_copy(update={"context_tokens": budgets["review"]}),
                      roster.reviewers[1].model_copy(update={"context_tokens": 2 * budgets["review"]})],
    })  # fmt: skip
    extra = {"textkit/filler.py": big_module(), "textkit/more_filler.py": big_module(200)}
    base, result = _run(tmp_path, _textkit_script(), roster=roster, extra_files=extra)
    assert result.status.value == "resolved"
    litellm = get_litellm()
    stages = json.loads((base / "1/context.json").read_text())["stages"]
    priced = {m.model: m.pricing_model for m in roster.all_models()}
    for record in stages:
        budget = budgets[record["stage"]] * (2 if record["model"] == "scripted/gemini-2.5-flash" and record["stage"] == "review" else 1)
        assert record["budget"] == budget, record["stage"]
        assert 0 < record["tokens"] <= budget, record
    # the prompts really sent: their repository blocks fit each model's budget by that model's tokenizer
    sent = {"localize": "localize-scripted_gemini-2.5-flash", "plan": "plan-scripted_claude-sonnet-4-5",
            "implement": "implement-scripted_deepseek-chat"}  # fmt: skip
    for stage, name in sent.items():
        call = json.loads((base / f"1/calls/{name}-attempt1.json").read_text())
        block = REPOSITORY.search(call["messages"][1]["content"]).group(1)
        tokens = litellm.token_counter(model=priced[call["model"]], text=block)
        assert tokens <= budgets[stage] + 5, (stage, tokens)  # + the <repository> wrapper's own lines
    plan = next(s for s in stages if s["stage"] == "plan")
    assert plan["tokens"] > budgets["plan"] // 2  # the budget binds: the filler does not all fit
    whole = len(big_module().splitlines())
    assert not any(r["path"] == "textkit/filler.py" and r["end_line"] - r["start_line"] + 1 == whole
                   for s in stages for r in s["regions"])  # fmt: skip
