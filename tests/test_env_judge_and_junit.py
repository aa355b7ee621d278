"""baseline.compute_baseline / judge and testrun.parse_junit / plan_tests (pure)."""

from __future__ import annotations

from quorum.environments.baseline import compute_baseline, judge
from quorum.environments.runner import CommandResult
from quorum.environments.testrun import (
    TestOutcome,
    TestRunResult,
    alias_param_id,
    param_parent,
    parse_junit,
    parse_not_found,
    plan_tests,
    result_from,
)


def run(statuses: dict[str, str], requested=None, missing=()) -> TestRunResult:
    return TestRunResult(outcomes={k: TestOutcome(nodeid=k, status=v) for k, v in statuses.items()},
                         requested=requested, missing=list(missing), report_found=True)


def test_baseline_marks_flaky_and_keeps_real_failures():
    first = run({"a": "passed", "b": "failed", "c": "failed", "d": "error"}, missing=["e"])
    rerun = run({"b": "passed", "c": "failed", "d": "error"}, missing=["e"])
    b = compute_baseline(first, rerun)
    assert (b.passed, b.failing, b.erroring, b.flaky) == (["a"], ["c"], ["d", "e"], ["b"])


def test_judge_never_blames_preexisting_or_flaky():
    base = compute_baseline(run({"ok": "passed", "pre": "failed", "flk": "failed"}), run({"pre": "failed", "flk": "passed"}))
    after = run({"ok": "passed", "pre": "failed", "flk": "failed"})
    v = judge(base, after)
    assert v.status == "resolved"
    assert v.ignored_preexisting == ["pre"] and v.ignored_flaky == ["flk"] and v.newly_failing == []


def test_judge_blames_newly_failing_unless_rerun_passes():
    base = compute_baseline(run({"a": "passed", "b": "passed"}))
    after = run({"a": "failed", "b": "error"})
    v = judge(base, after)
    assert v.status == "unresolved" and v.newly_failing == ["a", "b"]
    v2 = judge(base, after, after_rerun=run({"a": "passed", "b": "error"}))
    assert v2.newly_failing == ["b"] and v2.ignored_flaky == ["a"]


def test_judge_fail_to_pass_and_pass_to_pass_lists():
    base = compute_baseline(run({"f1": "failed", "f2": "failed", "p1": "passed", "p2": "passed", "other": "passed"}))
    after = run({"f1": "passed", "f2": "failed", "p1": "passed", "p2": "passed", "other": "failed"})
    v = judge(base, after, fail_to_pass=["f1", "f2"], pass_to_pass=["p1", "p2"])
    assert v.status == "unresolved"
    assert v.f2p_passing == ["f1"] and v.f2p_failing == ["f2"]
    assert v.newly_failing == []  # 'other' is not in PASS_TO_PASS
    after_ok = run({"f1": "passed", "f2": "xfailed", "p1": "passed"}, missing=["p2"])
    v = judge(base, after_ok, fail_to_pass=["f1", "f2"], pass_to_pass=["p1", "p2"])
    assert v.newly_failing == ["p2"]  # a P2P test that never reported counts as failing


def test_judge_new_test_failing_is_blamed_without_lists():
    base = compute_baseline(run({"a": "passed"}))
    v = judge(base, run({"a": "passed", "new": "failed"}))
    assert v.newly_failing == ["new"]


def test_judge_no_report_is_an_error_not_a_failure():
    base = compute_baseline(run({"a": "passed"}))
    after = TestRunResult(report_found=False, error="timed out: no report", timed_out=True)
    v = judge(base, after, fail_to_pass=["a"])
    assert v.status == "error" and "no report" in v.error


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="7">
<testcase classname="tests.test_basic" name="test_plain" file="tests/test_basic.py" line="3" time="0.01"/>
<testcase classname="tests.test_basic.TestGroup" name="test_param[a-b.c]" file="tests/test_basic.py" line="9" time="0.02">
  <failure message="assert 1 == 2">trace</failure></testcase>
<testcase classname="tests.test_basic.TestGroup" name="test_param[a-b.c]" file="tests/test_basic.py" line="9" time="0.0">
  <error message="failed on teardown">trace</error></testcase>
<testcase classname="tests.test_basic" name="test_skip" file="tests/test_basic.py" line="20" time="0">
  <skipped type="pytest.skip" message="no">x</skipped></testcase>
<testcase classname="tests.test_basic" name="test_xfail" file="tests/test_basic.py" line="24" time="0">
  <skipped type="pytest.xfail" message="bug"/></testcase>
<testcase classname="src.pkg.utils" name="pkg.utils.helper" file="src/pkg/utils.py" line="1" time="0"/>
<testcase classname="tests.test_inherit.TestChild" name="test_from_base" file="tests/base.py" line="5" time="0"/>
<testcase classname="" name="tests.test_broken" time="0"><error message="collection failure">ImportError</error></testcase>
</testsuite></testsuites>"""


def test_parse_junit_node_ids_and_statuses():
    outcomes, coll = parse_junit(JUNIT, exists=lambda p: p in {"tests/test_inherit.py", "tests/test_basic.py"})
    st = {k: v.status for k, v in outcomes.items()}
    assert st == {
        "tests/test_basic.py::test_plain": "passed",
        "tests/test_basic.py::TestGroup::test_param[a-b.c]": "error",  # worst of failure + teardown error
        "tests/test_basic.py::test_skip": "skipped",
        "tests/test_basic.py::test_xfail": "xfailed",
        "src/pkg/utils.py::pkg.utils.helper": "passed",  # doctest
        "tests/test_inherit.py::TestChild::test_from_base": "passed",  # defined in another file
    }
    assert coll == ["tests.test_broken"]


def test_result_from_marks_missing_and_not_found_parsing():
    res = CommandResult(name="pytest", argv=["x"], returncode=1, duration_s=1.0)
    r = result_from(res, JUNIT, ["tests/test_basic.py::test_plain", "tests/test_basic.py::test_gone"], "/ws")
    assert r.missing == ["tests/test_basic.py::test_gone"]
    assert r.status("tests/test_basic.py::test_gone") == "missing"
    assert "tests/test_basic.py::test_gone" in r.failing
    out = "ERROR: not found: /ws/tests/test_a.py::test_nope\n(no match in any of [<Module test_a.py>])\n"
    assert parse_not_found(out, "/ws", ["tests/test_a.py::test_nope", "tests/test_a.py::test_ok"]) == ["tests/test_a.py::test_nope"]
    out2 = "ERROR: file or directory not found: tests/test_gone.py\n"
    assert parse_not_found(out2, "/ws", ["tests/test_gone.py::t[1]"]) == ["tests/test_gone.py::t[1]"]


def test_plan_tests_is_pure_and_minimal(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("PYTHONPATH", "/work/main")
    plan = plan_tests("/cache/k/venv/bin/python", tmp_path, report_dir="/r", home_dir="/h", tmp_dir="/t",
                      node_ids=["tests/test_a.py::t"], source_roots=["src"], per_test_timeout_s=30)
    cmd = plan.command
    assert cmd.argv[:3] == ["/cache/k/venv/bin/python", "-m", "pytest"]
    assert cmd.argv[-1] == "tests/test_a.py::t"
    assert "-o" in cmd.argv and "timeout=30" in cmd.argv and "--junitxml=/r/junit.xml" in cmd.argv
    assert cmd.env["PYTHONPATH"] == str(tmp_path.resolve() / "src")
    assert "OPENAI_API_KEY" not in cmd.env and "/work/main" not in cmd.env["PYTHONPATH"]
    assert cmd.network == "loopback" and str(tmp_path.resolve()) in cmd.writable
    custom = plan_tests("/v/bin/python", tmp_path, report_dir="/r", home_dir="/h", tmp_dir="/t",
                        test_command=["pytest", "-x", "tests"], per_test_timeout_s=None)
    assert custom.command.argv[:3] == ["/v/bin/python", "-m", "pytest"] and custom.command.argv[-2:] == ["-x", "tests"]


def test_judge_blames_tests_that_stopped_reporting():
    base = compute_baseline(run({"a": "passed", "b": "passed"}))
    after = run({"a": "passed"})  # b's file no longer imports: b did not report at all
    after.collection_errors = ["tests.test_b"]
    v = judge(base, after)
    assert v.status == "unresolved" and v.newly_failing == ["b"] and v.collection_errors == ["tests.test_b"]


def test_param_aliases():
    cands = ["t.py::test_u[http://a-auth0]", "t.py::test_u[http://b-auth1]", "t.py::test_u[http://c-auth2]"]
    assert param_parent("t.py::C::test_u[x::y-1]") == "t.py::C::test_u" and param_parent("t.py::f") == ""
    assert alias_param_id("t.py::test_u[url1-auth1]", cands) == "t.py::test_u[http://b-auth1]"
    assert alias_param_id("t.py::test_u[url0]", cands) == "t.py::test_u[http://a-auth0]"
    assert alias_param_id("t.py::test_u[url0-auth1]", cands) is None  # parts disagree
    assert alias_param_id("t.py::test_u[url7-auth7]", cands) is None
    assert alias_param_id("t.py::test_u[http://zz-auth0]", cands) is None  # not an auto id
