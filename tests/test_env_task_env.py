"""Pure parts of the pipeline's environment glue: what a round is judged on, and how a verdict reads."""

from __future__ import annotations

from quorum.domain.models import EnvironmentSummary, TaskResult, TaskStatus, VerificationReport, TestsJudged
from quorum.domain.validation import validation_row
from quorum.environments.baseline import Baseline, judge
from quorum.environments.task_env import (
    PreparedEnvironment,
    checked_tests,
    judged_report,
    patched_files,
    suite_does_not_run,
)
from quorum.environments.testrun import TestOutcome, TestRunResult


def run(statuses: dict[str, str]) -> TestRunResult:
    return TestRunResult(outcomes={n: TestOutcome(nodeid=n, status=s) for n, s in statuses.items()}, report_found=True)


def test_a_round_blames_only_what_passed_before_and_fails_now():
    baseline = Baseline(passed=["tests/a.py::ok", "tests/a.py::gone", "tests/c.py::later"],
                        failing=["tests/a.py::old"], flaky=["tests/a.py::wobbly"])
    after = run({"tests/a.py::ok": "failed", "tests/a.py::old": "failed", "tests/a.py::wobbly": "failed",
                 "tests/b.py::new": "passed"})
    checked = checked_tests(baseline, after, ["tests/a.py", "tests/b.py"])
    assert "tests/c.py::later" not in checked  # its file did not run (budget): not judged
    verdict = judge(baseline, after, pass_to_pass=checked)
    assert sorted(verdict.newly_failing) == ["tests/a.py::gone", "tests/a.py::ok"]  # gone: no longer reports
    assert verdict.ignored_preexisting == ["tests/a.py::old"] and verdict.ignored_flaky == ["tests/a.py::wobbly"]
    env = PreparedEnvironment(status="reused", key="k" * 32, python_version="3.12.1")
    report = judged_report("pytest", env, verdict, after, duration_s=1.0, scope=TestsJudged(not_run_files=["tests/c.py"]))
    assert report.status.value == "failed" and report.reason == "failed"
    assert "NEWLY FAILING" in report.summary and "failing at the baseline too (not blamed): 1" in report.summary
    assert "flaky (not blamed): 1" in report.summary and "NOT run (time budget): 1 file(s): tests/c.py" in report.summary
    assert {f.rule for f in report.findings} == {"newly_failing"}


def test_files_an_instance_test_patch_updates_are_left_to_its_acceptance():
    patch = "diff --git a/tests/t.py b/tests/t.py\n--- a/tests/t.py\n+++ b/tests/t.py\n@@ -1 +1 @@\n-a\n+b\n"
    assert patched_files(patch) == ["tests/t.py"]
    after = run({"tests/t.py::x": "failed", "tests/u.py::y": "passed"})
    assert checked_tests(Baseline(passed=["tests/t.py::x", "tests/u.py::y"]), after, None, ["tests/t.py"]) == ["tests/u.py::y"]


def test_validation_row_names_what_is_broken():
    ok = TaskResult(batch_id="b", task_id="t", repo="r", status=TaskStatus.resolved,
                    environment=EnvironmentSummary(status="built", f2p_total=2, f2p_failing_before=2, p2p_total=3),
                    acceptance=VerificationReport(tool="acceptance", status="passed",
                                                  tests=TestsJudged(fail_to_pass_passing=["a", "b"])))  # fmt: skip
    row = validation_row(ok)
    assert row.ok and row.f2p_pass_after == 2 and row.env_status == "built"
    env_error = TaskResult(batch_id="b", task_id="e", repo="r", status=TaskStatus.error, reason="env_error: x",
                           environment=EnvironmentSummary(status="env_error", error="x", f2p_total=1))  # fmt: skip
    assert validation_row(env_error).problems == ["env_error: x"]
    stale = ok.model_copy(update={"environment": ok.environment.model_copy(update={"f2p_failing_before": 1})})
    assert validation_row(stale).problems == ["1 FAIL_TO_PASS test(s) pass without the fix"]


def test_the_report_says_what_was_left_to_the_acceptance_and_how_failures_were_confirmed():
    baseline = Baseline(passed=["tests/a.py::ok"])
    after = run({"tests/a.py::ok": "passed"})
    env = PreparedEnvironment(status="reused", key="k" * 32, python_version="3.12.1")
    scope = TestsJudged(held_out_files=["tests/t.py"], rerun="the whole suite in one process, as at the baseline")
    report = judged_report("pytest", env, judge(baseline, after), after, duration_s=1.0, scope=scope)
    assert report.status.value == "passed"
    assert "left to the acceptance (the instance's test_patch updates them): 1 file(s): tests/t.py" in report.summary
    assert "re-run before blaming: the whole suite in one process, as at the baseline" in report.summary
    assert report.tests.held_out_files == ["tests/t.py"]


def test_a_suite_that_does_not_start_on_the_base_is_the_environments_problem():
    crashed = TestRunResult(returncode=1, output_tail="...\nImportError: cannot import name 'soft_unicode' from 'markupsafe'\n")
    why = suite_does_not_run(crashed)
    assert "do not run on the unmodified base" in why and "soft_unicode" in why and "pytest exit 1" in why
    assert suite_does_not_run(run({"tests/a.py::x": "failed"})) == ""  # it ran: failures are the baseline's
    assert suite_does_not_run(TestRunResult(report_found=True)) == ""  # no tests at all is not a crash
    assert suite_does_not_run(TestRunResult(timed_out=True)) == ""  # the budget, not the environment
