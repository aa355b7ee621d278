"""What the Prefect UI shows of a task and a batch (pure renderers), and the stages' one log line each."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import yaml

from quorum.domain.cost import describe_calls, summarize_calls
from quorum.domain.models import (
    BatchReport,
    CostSummary,
    Decision,
    Finding,
    LLMCall,
    Outcome,
    Plan,
    PlanStep,
    ReportRow,
    Review,
    ReviewFinding,
    ReviewResult,
    RoundRecord,
    Severity,
    StageCost,
    TaskResult,
    TaskStatus,
    VerificationReport,
    VerificationStatus,
)
from quorum.domain.report import MAX_REASON, BatchTally
from quorum.domain.results import flow_run_url, render_batch_markdown, render_task_markdown, result_row
from quorum.domain.story import (
    MAX_DIFF_CHARS,
    MAX_PLAN_CHARS,
    TaskStory,
    capped,
    fenced,
    implement_detail,
    render_plan_markdown,
    review_detail,
)
from quorum.store import LocalStore, S3Store

ROOT = Path(__file__).resolve().parents[1]
DIFF = """diff --git a/textkit/slug.py b/textkit/slug.py
new file mode 100644
--- /dev/null
+++ b/textkit/slug.py
@@ -0,0 +1,2 @@
+def slugify(text):
+    return text.lower()
"""


def _call(model: str, stage: str, prompt: int, completion: int, cost: float, latency: float) -> LLMCall:
    return LLMCall(stage=stage, model=model, provider=model.split("/")[0], priced_as=model, simulated=False,
                   prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost, latency_s=latency,
                   started_at=100.0)  # fmt: skip


def _review(model: str, verdict: str, *findings: ReviewFinding, summary: str = "") -> ReviewResult:
    return ReviewResult(reviewer=model, provider=model.split("/")[0],
                        review=Review(verdict=verdict, summary=summary, findings=list(findings)))  # fmt: skip


def _story(diff: str = DIFF, plan: Plan | None = None) -> TaskStory:
    plan = plan or Plan(summary="Add slugify.", steps=[PlanStep(description="Write slug.py", files=["textkit/slug.py"])],
                        files_to_change=["textkit/slug.py"], risks=["unicode"])  # fmt: skip
    bandit = VerificationReport(
        tool="bandit", status=VerificationStatus.failed, summary="1 finding (B602)", tool_version="bandit 1.8.3",
        findings=[Finding(source="bandit", rule="B101", severity=Severity.low, file="tests/test_slug.py", line=3,
                          message="assert used"),
                  Finding(source="bandit", rule="B404", severity=Severity.low, file="textkit/old.py", line=1,
                          message="pre-existing import", in_patch=False),
                  Finding(source="bandit", rule="B602", severity=Severity.high, file="textkit/slug.py", line=2,
                          message="subprocess call with shell=True")],
    )  # fmt: skip
    round1 = RoundRecord(round=1, patch_applied=True, verification=[bandit], diff="old diff",
                         decision=Decision(outcome=Outcome.revise, reasons=["bandit B602"], policy_version="p1", round=1))  # fmt: skip
    pytest_ok = VerificationReport(tool="pytest", status=VerificationStatus.passed, summary="3 passed")
    reviews = [
        _review("openai/gpt-5-mini", "approve", summary="Looks right."),
        _review("gemini/gemini-2.5-flash", "request_changes",
                ReviewFinding(severity=Severity.medium, file="textkit/slug.py", line=2, category="correctness",
                              message="Non-ASCII letters | are dropped"))  # fmt: skip
    ]
    round2 = RoundRecord(round=2, patch_applied=True, verification=[pytest_ok], reviews=reviews, diff=diff,
                         decision=Decision(outcome=Outcome.approve, reasons=["approved"], policy_version="p1", round=2))  # fmt: skip
    return TaskStory(plan=plan, rounds=[round1, round2])


def _result(**update) -> TaskResult:
    calls = [_call("anthropic/claude-sonnet-4-5", "plan", 1234, 567, 0.0123, 2.0),
             _call("deepseek/deepseek-chat", "implement", 2000, 300, 0.001, 1.0),
             _call("deepseek/deepseek-chat", "implement", 2100, 280, 0.001, 3.0)]  # fmt: skip
    acceptance = VerificationReport(tool="acceptance", status=VerificationStatus.passed, summary="2 passed")
    result = TaskResult(batch_id="demo", task_id="textkit-slugify", repo="/r/textkit", status=TaskStatus.resolved,
                        reason="approved and acceptance tests passed", rounds=2, cost=summarize_calls(calls),
                        acceptance=acceptance, artifacts={"plan": "runs/demo/textkit-slugify/1/plan.md"},
                        decision=Decision(outcome=Outcome.approve, reasons=["approved"], policy_version="p1", round=2))  # fmt: skip
    return result.model_copy(update=update)


# --------------------------------------------------------------------------------------- the task artifact


def test_the_task_markdown_tells_the_story_of_the_task(tmp_path):
    store = LocalStore(tmp_path / "store")
    text = render_task_markdown(_result(), store.url, _story())
    task_dir = (tmp_path / "store" / "runs" / "demo" / "textkit-slugify").as_uri()
    assert f"- artifacts: `{task_dir}`" in text and task_dir.startswith("file:///")
    # the plan
    assert "## Plan\n\nAdd slugify." in text and "1. Write slug.py (textkit/slug.py)" in text and "### Risks" in text
    # the last round's patch, as a diff block, and where it is
    assert "## Patch (round 2)\n\n```diff\n" + DIFF.rstrip("\n") + "\n```" in text
    assert f"`{task_dir}/2/patch.diff`" in text
    # each round: its tools, each reviewer's verdict and findings, the outcome
    assert "## Round 1: revise" in text and "## Round 2: approve" in text
    assert "| bandit 1.8.3 | failed | 3 | 1 finding (B602) |" in text
    # the findings on the patch's lines, most severe first; pre-existing ones are left to verify/
    assert ("- [high] bandit/B602 at `textkit/slug.py:2`: subprocess call with shell=True\n"
            "- [low] bandit/B101 at `tests/test_slug.py:3`: assert used\n") in text  # fmt: skip
    assert "B404" not in text
    assert "| pytest | passed | 0 | 3 passed |" in text
    assert "- **openai/gpt-5-mini** (openai): **approve**: Looks right." in text
    assert "- **gemini/gemini-2.5-flash** (gemini): **request_changes**" in text
    assert "  - [medium] correctness at `textkit/slug.py:2`: Non-ASCII letters | are dropped" in text
    assert "None this round" in text  # round 1: the blocking bandit finding skipped the paid reviews
    # the held-out acceptance tests
    assert "## Acceptance tests" in text and "| acceptance | passed | 0 | 2 passed |" in text
    # per model: calls, tokens, money, latency
    assert "| anthropic/claude-sonnet-4-5 | 1 | 1,234 + 567 | 0 | $0.0123 | 2.0 s |" in text
    assert "| deepseek/deepseek-chat | 2 | 4,100 + 580 | 0 | $0.0020 | 2.0 s |" in text


def test_the_task_markdown_locates_artifacts_on_s3():
    store = S3Store("team-bucket", "quorum", client=object())
    text = render_task_markdown(_result(), store.url, _story())
    assert "- artifacts: `s3://team-bucket/quorum/runs/demo/textkit-slugify`" in text
    assert "`s3://team-bucket/quorum/runs/demo/textkit-slugify/2/patch.diff`" in text


def test_big_plans_and_patches_are_cut_with_a_note_and_the_whole_files_location(tmp_path):
    store = LocalStore(tmp_path)
    diff = "".join(f"+line {n} " + "x" * 60 + "\n" for n in range(2_000))
    plan = Plan(summary="s", steps=[PlanStep(description="step " + "y" * 200) for _ in range(100)])
    text = render_task_markdown(_result(), store.url, _story(diff=diff, plan=plan))
    assert len(text) < MAX_DIFF_CHARS + MAX_PLAN_CHARS + 10_000
    patch = text[text.index("## Patch (round 2)"):]
    block = patch[patch.index("```diff\n") + 8: patch.index("\n```\n")]
    assert 0 < len(block) <= MAX_DIFF_CHARS and diff.startswith(block) and block.endswith(" " + "x" * 60)  # whole lines
    assert f"*The patch cut to {len(block) + 1:,} of {len(diff):,} characters; the whole of it: " \
           f"`{(tmp_path / 'runs/demo/textkit-slugify/2/patch.diff').as_uri()}`*" in patch  # fmt: skip
    assert "*The plan cut to" in text and (tmp_path / "runs/demo/textkit-slugify/1/plan.md").as_uri() in text


def test_a_patch_with_backticks_cannot_close_its_fence():
    lines = fenced("+x = '```'\n", "diff")
    assert lines == ["````diff", "+x = '```'", "````"]
    assert capped("a\nb\nc\n", 4) == ("a\nb\n", True) and capped("abc", 3) == ("abc", False)


def test_a_task_without_a_story_still_renders_and_a_string_location_is_shown_as_given():
    text = render_task_markdown(_result(acceptance=None), "store")
    assert "- artifacts: `store/runs/demo/textkit-slugify`" in text
    assert "## Plan" not in text and "## Patch" not in text and "| model |" in text


def test_a_round_without_a_patch_says_why():
    story = TaskStory(rounds=[RoundRecord(round=1, patch_applied=False, patch_reason="hunk #1 of a.py does not apply",
                                          decision=Decision(outcome=Outcome.fail, reasons=["no patch"], policy_version="p", round=1))])  # fmt: skip
    text = render_task_markdown(_result(), "store", story)
    assert "No patch applied: hunk #1 of a.py does not apply" in text and "```diff" not in text


def test_the_plan_markdown_of_plan_md_is_unchanged_at_level_one():
    plan = Plan(summary="S.", steps=[PlanStep(description="d", files=["a.py"])], files_to_change=["a.py"], risks=["r"])
    assert render_plan_markdown(plan) == "# Plan\n\nS.\n\n## Steps\n\n1. d (a.py)\n\n## Files to change\n\n- `a.py`\n\n## Risks\n\n- r\n"
    assert render_plan_markdown(plan, level=2).startswith("## Plan\n\nS.\n\n### Steps\n")


# ------------------------------------------------------------------------------------------ the batch table


def _row(task_id: str, reason: str, **update) -> ReportRow:
    cost = CostSummary(total=StageCost(calls=5, cost_usd=0.013634123))
    row = ReportRow(task_id=task_id, repo="/r", status=TaskStatus.escalated, reason=reason, rounds=1, cost=cost,
                    result=f"runs/demo/{task_id}/result.json", flow_run_id="0b9e6a1c-1111-2222-3333-444455556666")  # fmt: skip
    return row.model_copy(update=update)


def test_the_batch_table_formats_money_keeps_reasons_whole_and_links(tmp_path):
    store = LocalStore(tmp_path)
    reason = "reviewers disagree on a blocking finding: " + "scripted/gpt-5-mini says the cache is world-writable; " * 6
    assert 300 < len(reason) < MAX_REASON  # longer than the old cut
    row = result_row(_row("userdir-permission-cache", reason), store.url, "http://127.0.0.1:4200")
    assert row == {
        "task": "userdir-permission-cache",
        "outcome": "escalated",
        "rounds": 1,
        "cost": "$0.0136",
        "llm_calls": 5,
        "reason": reason,
        "result": (tmp_path / "runs/demo/userdir-permission-cache/result.json").as_uri(),
        "flow_run": "http://127.0.0.1:4200/runs/flow-run/0b9e6a1c-1111-2222-3333-444455556666",
    }
    on_s3 = result_row(_row("t", "r"), S3Store("team-bucket", "q", client=object()).url, None)
    assert on_s3["result"] == "s3://team-bucket/q/runs/demo/t/result.json" and on_s3["flow_run"] == "0b9e6a1c-1111-2222-3333-444455556666"
    assert flow_run_url("http://ui/", "") == "" and flow_run_url("http://ui/", "id") == "http://ui/runs/flow-run/id"


def test_the_tally_keeps_a_real_reason_whole_for_the_table():
    tally = BatchTally()
    reason = "approved but acceptance tests failed: " + "tests/test_x.py::test_y AssertionError; " * 15
    tally.add(0, _row("t", reason))
    report = tally.report(batch_id="demo", started_at=0, finished_at=1, roster="r", store="s")
    assert result_row(report.needs_human[0])["reason"] == reason


def test_the_batch_markdown_links_each_task_and_locates_its_result(tmp_path):
    store = LocalStore(tmp_path)
    report = BatchReport(batch_id="demo", started_at=0, finished_at=1, roster="r", store=str(tmp_path),
                         cost=CostSummary(by_model={"openai/gpt-5": StageCost(calls=2, prompt_tokens=10, completion_tokens=5,
                                                                              cost_usd=0.5, latency_s=3.0)}),
                         counts={"escalated": 1}, resolved_rate=0, cost_per_task_usd=0.5, cost_per_resolved_usd=None,
                         fresh_llm_calls=2, cached_llm_calls=0, needs_human=[_row("t1", "why | not")], needs_human_total=1)  # fmt: skip
    text = render_batch_markdown(report, store.url("runs/demo/report.jsonl"), store.url, "http://ui")
    result = (tmp_path / "runs/demo/t1/result.json").as_uri()
    assert f"| [t1](http://ui/runs/flow-run/0b9e6a1c-1111-2222-3333-444455556666) | escalated | 1 | $0.0136 | why \\| not | `{result}` |" in text
    assert "| openai/gpt-5 | 2 | 10 + 5 | 0 | $0.5000 | 1.5 s |" in text
    assert "| t1 | escalated" in render_batch_markdown(report)  # no UI address: no link


# ------------------------------------------------------------------------------------------ the log lines


def test_one_log_line_per_stage_names_model_tokens_cost_latency_and_outcome():
    calls = [_call("openai/gpt-5", "plan", 1234, 567, 0.0123, 2.06)]
    assert describe_calls("plan", calls) == "plan · openai/gpt-5 · 1,234+567 tokens · $0.0123 · 2.1 s"
    again = [*calls, _call("openai/gpt-5", "plan", 1000, 10, 0.01, 1.0).model_copy(update={"fallback_from": "x/y"})]
    assert describe_calls("plan", again, "3 steps") == (
        "plan · openai/gpt-5 (fallback from x/y) · 2,234+577 tokens · $0.0223 · 3.1 s · 2 calls · 3 steps")
    review = _review("g/m", "request_changes", ReviewFinding(severity=Severity.high, message="m"),
                     ReviewFinding(severity=Severity.low, message="n"), ReviewFinding(severity=Severity.high, message="o"))  # fmt: skip
    assert review_detail(review) == "request_changes · 3 finding(s) (1 low, 2 high)"
    assert review_detail(_review("g/m", "approve")) == "approve · 0 finding(s)"
    assert implement_detail(DIFF, "", dry_run=True) == "reply applies: 1 file(s) changed"
    assert implement_detail("", "hunk #1 of a.py\ndoes not apply", dry_run=True) == "reply refused: hunk #1 of a.py does not apply"


def _run_logs(flow_run_id) -> list[str]:
    """The INFO lines of a flow run's task runs as the Prefect server holds them (what the UI shows)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterLevel
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs are shipped in batches: send what is queued
    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]), level=LogFilterLevel(ge_=logging.INFO))
    with get_client(sync_client=True) as client:
        return [log.message for log in client.read_logs(log_filter, limit=200) if log.task_run_id]


def test_each_llm_stage_task_logs_its_one_line(prefect_harness, caplog):
    """plan, localize, implement and review run as Prefect tasks (scripted models) and log one INFO line each."""
    from prefect import flow
    from prefect.cache_policies import NONE

    from quorum.context.models import Localization
    from quorum.domain.manifest import TaskSpec
    from quorum.inputs.rosters import load_roster
    from quorum.prefect_api.limits import ensure_limits
    from quorum.tasks.implement import implement_task
    from quorum.tasks.localize import localize_task
    from quorum.tasks.plan import plan_task
    from quorum.tasks.review import review_task

    example = ROOT / "examples" / "textkit"
    spec = TaskSpec(id=f"log-{uuid.uuid4().hex[:8]}", repo=str(example / "repo"), task="Add slugify.",
                    script=str(example / "script.yaml"))  # fmt: skip
    paths = sorted(str(p.relative_to(example / "repo")) for p in (example / "repo").rglob("*.py"))
    roster = load_roster("scripted")
    ensure_limits(roster)  # provider slots, as a batch creates them
    fresh = {"cache_policy": NONE, "persist_result": False}

    @flow
    def stages() -> None:
        localize_task.with_options(**fresh)(spec, roster.localizer, "(map)", paths, Localization())
        planned = plan_task.with_options(**fresh)(spec, roster.planner, "")
        implement_task.with_options(**fresh)(spec, roster.implementer, "", planned.plan, 1, [], [])
        for reviewer in roster.reviewers:
            review_task.with_options(**fresh)(spec, reviewer, "", planned.plan, DIFF, "", 1)

    caplog.set_level(logging.INFO, logger="prefect.task_runs")  # the tests' default is WARNING
    state = stages(return_state=True)
    assert state.is_completed(), state
    lines = _run_logs(state.state_details.flow_run_id)
    ours = [line for line in lines if " tokens · $" in line]
    by_stage = {line.split(" · ")[0]: line for line in ours}
    assert sorted(line.split(" · ")[0] for line in ours) == ["implement", "localize", "plan", "review", "review"], lines
    assert by_stage["plan"].startswith(f"plan · {roster.planner.model} · ") and " s · 3 steps, 3 files to change" in by_stage["plan"]
    assert by_stage["localize"].endswith("1 file(s) to edit, 2 to read (model)"), by_stage["localize"]
    assert by_stage["implement"].startswith(f"implement · {roster.implementer.model} · ")
    assert by_stage["implement"].endswith("reply not dry-run (no workspace)")
    reviews = [line for line in ours if line.startswith("review · ")]
    assert all(line.split(" · ")[-2] in ("approve", "request_changes") for line in reviews), reviews
    assert {line.split(" · ")[1] for line in reviews} == {r.model for r in roster.reviewers}
    assert "simulated" in by_stage["plan"]  # scripted models are labelled as such


# ------------------------------------------------------------------------------------------ the automation


def test_the_request_automation_has_a_readable_name_and_description():
    from pydantic import TypeAdapter
    from prefect.events import DeploymentTriggerTypes

    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (spec,) = {d["name"]: d for d in config["deployments"]}["on-request"]["triggers"]
    trigger = TypeAdapter(DeploymentTriggerTypes).validate_python(spec)
    trigger.set_deployment_id(uuid.uuid4())
    automation = trigger.as_automation()
    assert automation.name == "quorum task on request"
    assert automation.description.startswith("Run quorum on one task when a quorum.task.requested event arrives")


def test_model_text_in_the_ui_keeps_underscores_and_stars_literal():
    """`textkit/__init__.py` in a plan step or a context cell must not render as a bold `init`; code spans
    are left alone, and plan.md (part of the implementer's prompt) is not escaped at all."""
    from quorum.domain.models import Plan, PlanStep
    from quorum.domain.story import escape_md, plan_section, render_plan_markdown

    assert escape_md("edit textkit/__init__.py, *not* `a_b*c`") == "edit textkit/\\_\\_init\\_\\_.py, \\*not\\* `a_b*c`"
    plan = Plan(summary="Touch __init__", steps=[PlanStep(description="Export it from textkit/__init__.py", files=[])],
                files_to_change=["textkit/__init__.py"], risks=[])  # fmt: skip
    assert "textkit/__init__.py" in render_plan_markdown(plan)
    shown = "\n".join(plan_section(plan, "file:///store/plan.md"))
    assert "textkit/\\_\\_init\\_\\_.py" in shown and "`textkit/__init__.py`" in shown


def test_a_stage_called_outside_a_run_logs_to_the_quorum_logger(caplog):
    """`.fn` of a stage task (the benchmark's sequential baseline) has no run context: the line still logs."""
    from tasks.llm_options import log_stage

    calls = [_call("openai/gpt-5", "plan", 1234, 567, 0.0123, 2.06)]
    with caplog.at_level(logging.INFO, logger="quorum.stages"):
        log_stage("plan", calls, "3 steps")
    assert [r.getMessage() for r in caplog.records if r.name == "quorum.stages"] == [
        "plan · openai/gpt-5 · 1,234+567 tokens · $0.0123 · 2.1 s · 3 steps"]
