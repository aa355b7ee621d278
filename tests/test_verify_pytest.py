"""quorum.verify.pytest_runner: throwaway-copy pytest runs (pass, fail, hang, none) and the JUnit parser."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from quorum.domain.models import Severity, VerificationStatus
from quorum.sandbox.runner import CommandResult
from quorum.verify.pytest_runner import judge_run, parse_junit_xml, read_report_file, run_pytest, terminal_counts


def make_repo(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


CALC = "def add(a, b):\n    return a + b\n"


def test_passing_repo_tests_in_a_scrubbed_throwaway_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_API_KEY", "sk-must-not-leak")
    root = tmp_path / "repo"
    repo = make_repo(
        root,
        {
            "calc.py": CALC,
            ".git/HEAD": "ref: refs/heads/main\n",
            # The repo's addopts would break the run if they were honoured.
            "pytest.ini": "[pytest]\naddopts = --definitely-not-a-pytest-flag\n",
            "tests/test_calc.py": (
                "import os\nfrom calc import add\n\n"
                "def test_add():\n    assert add(2, 3) == 5\n\n"
                "def test_sandboxed():\n"
                "    assert 'FAKE_API_KEY' not in os.environ\n"
                "    assert not os.path.exists('.git')\n"
                f"    assert os.path.realpath(os.getcwd()) != {str(root)!r}\n"
            ),
        },
    )
    before = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*"))
    report = run_pytest(repo)
    assert report.status == VerificationStatus.passed, report.summary
    assert report.summary.startswith("pytest: 2 passed, 0 failed")
    assert report.raw_name == "pytest.xml" and "<testsuite" in report.raw
    assert report.findings == []
    assert report.log_name == "pytest.log" and "2 passed" in report.log
    if os.geteuid() == 0:
        assert report.network_isolated is True
        assert report.sandbox["privilege_drop"] and report.sandbox["pid_namespace"]
        assert report.sandbox["uid"] >= 1000
    after = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*"))
    assert after == before  # nothing written into the workspace (.pytest_cache, __pycache__, junit)


def test_failing_test_is_a_finding_with_location_and_copy_is_removed(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "calc.py": "def add(a, b):\n    return a - b\n",
            "tests/test_calc.py": (
                "import os\nfrom calc import add\n\n\n"
                "def test_add():\n    assert add(2, 3) == 5, 'COPY=' + os.getcwd()\n\n"
                "def test_ok():\n    assert True\n"
            ),
        },
    )
    report = run_pytest(repo)
    assert report.status == VerificationStatus.failed
    assert len(report.findings) == 1
    finding = report.findings[0]
    assert (finding.source, finding.rule, finding.severity) == ("pytest", "failure", Severity.high)
    assert (finding.file, finding.line) == ("tests/test_calc.py", 5)  # 1-based line of `def test_add`
    assert "assert -1 == 5" in finding.message
    assert "1 passed, 1 failed" in report.summary
    copy = re.search(r"COPY=(\S+)", finding.message).group(1)
    assert copy != str(repo)
    assert not os.path.exists(copy)  # the throwaway copy is gone


def test_hanging_test_times_out(tmp_path: Path) -> None:
    hang = "import time\n\ndef test_hang():\n    time.sleep(600)\n"
    repo = make_repo(tmp_path / "repo", {"tests/test_hang.py": hang})
    report = run_pytest(repo, timeout_s=3)
    assert (report.status, report.reason) == (VerificationStatus.error, "timeout")
    assert "timed out" in report.summary


def test_no_tests_collected(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": CALC})
    report = run_pytest(repo)
    assert report.status == VerificationStatus.passed
    assert report.summary.startswith("no tests collected")


def test_acceptance_tests_run_against_the_copy(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {"calc.py": CALC, "tests/test_repo.py": "def test_repo_would_fail():\n    assert False\n"},
    )
    acceptance = make_repo(
        tmp_path / "acc",
        {"test_accept.py": "from calc import add\n\ndef test_add():\n    assert add(1, 1) == 2\n"},
    )
    report = run_pytest(repo, tool="acceptance", extra_tests=acceptance)
    # Only the acceptance tests run (the repo's failing test is not collected).
    assert report.status == VerificationStatus.passed, report.summary
    assert report.tool == "acceptance" and report.raw_name == "acceptance.xml"
    assert report.summary.startswith("acceptance: 1 passed")
    assert not (repo / ".quorum_acceptance").exists()


def test_acceptance_failure_and_empty_acceptance_dir(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": "def add(a, b):\n    return 0\n"})
    acceptance = make_repo(
        tmp_path / "acc", {"test_accept.py": "from calc import add\n\ndef test_add():\n    assert add(1, 1) == 2\n"}
    )
    report = run_pytest(repo, tool="acceptance", extra_tests=acceptance)
    assert report.status == VerificationStatus.failed
    assert report.findings[0].source == "acceptance"
    assert report.findings[0].file == ".quorum_acceptance/test_accept.py"

    empty = tmp_path / "empty"
    empty.mkdir()
    report = run_pytest(repo, tool="acceptance", extra_tests=empty)
    assert report.status == VerificationStatus.error
    assert "no acceptance tests" in report.summary


def test_collection_error_is_failed(tmp_path: Path) -> None:
    broken = "import not_a_module_anywhere\n\ndef test_x():\n    pass\n"
    repo = make_repo(tmp_path / "repo", {"tests/test_imp.py": broken})
    report = run_pytest(repo)
    assert report.status == VerificationStatus.failed
    assert report.findings[0].rule == "error"
    assert report.findings[0].file == "tests/test_imp.py"
    assert "not_a_module_anywhere" in report.findings[0].message


def test_early_exit_cannot_fake_a_pass(tmp_path: Path) -> None:
    # A conftest that exits the interpreter with 0 before pytest writes its report.
    repo = make_repo(
        tmp_path / "repo",
        {"conftest.py": "import os\nos._exit(0)\n", "tests/test_x.py": "def test_x():\n    assert False\n"},
    )
    report = run_pytest(repo)
    assert (report.status, report.reason) == (VerificationStatus.error, "no_report")
    assert "no JUnit XML" in report.summary


def test_missing_acceptance_dir_is_error(tmp_path: Path) -> None:
    report = run_pytest(tmp_path, tool="acceptance", extra_tests=tmp_path / "nope")
    assert report.status == VerificationStatus.error


# ---------- pure parser on captured pytest 9 JUnit XML (junit_family=xunit1) ----------

CAPTURED = """<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" \
errors="1" failures="1" skipped="1" tests="4" time="0.084"><testcase classname=".quorum_acceptance.test_acc" \
name="test_ok" file=".quorum_acceptance/test_acc.py" line="0" time="0.001" /><testcase \
classname=".quorum_acceptance.test_acc" name="test_bad" file=".quorum_acceptance/test_acc.py" line="3" time="0.001">\
<failure message="AssertionError: nope&#10;assert 1 == 2">def test_bad():
&gt;       assert 1 == 2, "nope"
E       AssertionError: nope

.quorum_acceptance/test_acc.py:5: AssertionError</failure></testcase><testcase classname=".quorum_acceptance.test_acc" \
name="test_err" file=".quorum_acceptance/test_acc.py" line="11" time="0.001"><error message="failed on setup with \
&quot;RuntimeError: fixture fail&quot;">RuntimeError: fixture fail</error></testcase><testcase \
classname=".quorum_acceptance.test_acc" name="test_skip" file=".quorum_acceptance/test_acc.py" line="14" \
time="0.000"><skipped type="pytest.skip" message="unconditional skip">skip</skipped></testcase></testsuite>\
</testsuites>"""


def test_parse_captured_junit() -> None:
    status, findings, summary = parse_junit_xml(CAPTURED, "acceptance")
    assert status == VerificationStatus.failed
    assert summary.startswith("acceptance: 1 passed, 1 failed, 1 errors, 1 skipped")
    assert [(f.rule, f.line, f.source) for f in findings] == [("failure", 4, "acceptance"), ("error", 12, "acceptance")]
    assert findings[0].message.startswith(".quorum_acceptance/test_acc.py::test_bad: AssertionError: nope")
    assert all(f.severity == Severity.high and f.in_patch for f in findings)


def test_parse_truncates_long_messages() -> None:
    xml = (
        '<testsuite><testcase classname="t" name="test_long" file="t.py" line="0">'
        f'<failure message="boom">{"A" * 5000}END</failure></testcase></testsuite>'
    )
    status, findings, _ = parse_junit_xml(xml, "pytest")
    assert status == VerificationStatus.failed
    assert len(findings[0].message) < 2100
    assert findings[0].message.startswith("t.py::test_long: boom")
    assert findings[0].message.endswith("END")


def test_parse_all_passed_and_garbage() -> None:
    ok = '<testsuites><testsuite><testcase classname="t" name="test_a" file="t.py" line="0"/></testsuite></testsuites>'
    assert parse_junit_xml(ok, "pytest")[0] == VerificationStatus.passed
    assert parse_junit_xml("<testsuite>", "pytest")[0] == VerificationStatus.error


def _without_root_or_user_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    from quorum.sandbox import isolation

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(
        isolation, "probe_userns", lambda: isolation.UsernsProbe(available=False, error="unshare: Operation not permitted")
    )


def test_without_root_or_user_namespaces_tests_do_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_root_or_user_namespaces(monkeypatch)
    monkeypatch.delenv("QUORUM_SANDBOX_ALLOW_UNISOLATED", raising=False)
    marker = tmp_path / "ran"
    repo = make_repo(tmp_path / "repo", {"tests/test_ok.py": f"def test_ok():\n    open({str(marker)!r}, 'w')\n"})
    report = run_pytest(repo)
    assert (report.status, report.reason) == (VerificationStatus.error, "no_isolation"), report.summary
    assert not marker.exists() and report.network_isolated is False and report.sandbox["mode"] == "none"
    assert "untrusted tests were not run" in report.summary and "QUORUM_SANDBOX_ALLOW_UNISOLATED=1" in report.summary


def test_without_root_the_opted_in_report_says_it_is_not_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_root_or_user_namespaces(monkeypatch)
    monkeypatch.setenv("QUORUM_SANDBOX_ALLOW_UNISOLATED", "1")
    repo = make_repo(tmp_path / "repo", {"tests/test_ok.py": "def test_ok():\n    pass\n"})
    report = run_pytest(repo)
    assert report.status == VerificationStatus.passed
    assert report.network_isolated is False and report.sandbox["privilege_drop"] is False
    assert "NETWORK NOT ISOLATED" in report.summary and "no privilege drop" in report.summary
    assert report.sandbox["mode"] == "none" and "sandbox: unisolated (QUORUM_SANDBOX_ALLOW_UNISOLATED=1)" in report.summary


# ---------- the verdict rules, on synthetic runs (pure) ----------

NONCE = "quorum-0123456789abcdef"


def xml(*cases: str, suite: str = NONCE) -> str:
    return f'<testsuites><testsuite name="{suite}">{"".join(cases)}</testsuite></testsuites>'


PASS_CASE = '<testcase classname="t" name="test_ok" file="t.py" line="0"/>'
FAIL_CASE = (
    '<testcase classname="t" name="test_bad" file="t.py" line="3"><failure message="boom">x</failure></testcase>'
)


def judge(rc: int, xml_text: str, output: str, **kw):
    res = CommandResult(argv=["pytest"], returncode=rc, **{k: v for k, v in kw.items() if k in ("timed_out", "cpu_s")})
    return judge_run(
        res, xml_text, kw.get("xml_problem", ""), output, tool="pytest", acceptance=kw.get("acceptance", False),
        nonce=NONCE, cpu_limit_s=kw.get("cpu_limit_s", 60), timeout_s=5,
    )


@pytest.mark.parametrize(
    ("rc", "xml_text", "output", "kw", "expected"),
    [
        (0, xml(PASS_CASE), "1 passed in 0.01s", {}, ("passed", "", "")),
        (1, xml(PASS_CASE, FAIL_CASE), "1 failed, 1 passed in 0.1s", {}, ("failed", "failed", "")),
        (0, xml(FAIL_CASE), "1 passed in 0.1s", {}, ("incomplete", "inconsistent_report", "")),
        (1, xml(PASS_CASE), "1 failed in 0.1s", {}, ("incomplete", "inconsistent_report", "")),
        (0, xml(PASS_CASE), "", {}, ("incomplete", "inconsistent_report", "")),
        (0, xml(PASS_CASE, suite="pytest"), "1 passed in 0.1s", {}, ("incomplete", "inconsistent_report", "")),
        (1, xml(FAIL_CASE, FAIL_CASE), "1 failed in 0.1s", {}, ("incomplete", "inconsistent_report", "")),
        (5, xml(PASS_CASE), "no tests ran in 0.01s", {}, ("incomplete", "inconsistent_report", "")),
        (5, xml(), "no tests ran in 0.01s", {}, ("passed", "", "")),
        (5, xml(), "no tests ran in 0.01s", {"acceptance": True}, ("error", "no_tests", "")),
        (-9, "", "", {"timed_out": True}, ("error", "timeout", "")),
        (-9, "", "", {"cpu_s": 59.5}, ("error", "resource_limit", "cpu")),
        (-24, "", "", {}, ("error", "resource_limit", "cpu")),  # SIGXCPU
        (-9, "", "", {"cpu_s": 0.5}, ("error", "crashed", "")),
        (1, xml(FAIL_CASE.replace("boom", "MemoryError")), "1 failed in 1s", {}, ("error", "resource_limit", "memory")),
        (1, xml(FAIL_CASE), "BlockingIOError: [Errno 11] Resource temporarily unavailable\n1 failed in 1s", {},
         ("error", "resource_limit", "processes")),
        (1, xml(FAIL_CASE), "OSError: [Errno 27] File too large\n1 failed in 1s", {},
         ("error", "resource_limit", "file_size")),
        (0, "", "1 passed in 0.01s", {"xml_problem": "the JUnit XML is not a plain file"}, ("error", "no_report", "")),
        (0, "", "1 passed in 0.01s", {}, ("error", "no_report", "")),
        (4, "", "ERROR: usage", {}, ("error", "no_report", "")),
        (3, xml(PASS_CASE), "INTERNALERROR", {}, ("error", "crashed", "")),
    ],
    ids=[
        "passed", "failed", "exit0-with-failure", "exit1-without-failure", "no-summary-line", "foreign-suite-name",
        "count-mismatch", "exit5-with-cases", "no-tests", "no-acceptance-tests", "timeout", "cpu-sigkill",
        "cpu-sigxcpu", "sigkill-not-cpu", "memory", "processes", "file-size", "unsafe-xml", "no-xml",
        "usage-error", "internal-error",
    ],
)  # fmt: skip
def test_judge_run(rc, xml_text, output, kw, expected) -> None:
    judged = judge(rc, xml_text, output, **kw)
    assert (judged.status.value, judged.reason, judged.limit_hit) == expected, judged.summary


def test_terminal_counts() -> None:
    out = "F.\n=== FAILURES ===\n...\n3 failed, 2 passed, 1 skipped, 1 xfailed, 1 xpassed, 3 errors in 0.09s\n"
    assert terminal_counts(out) == {"failed": 3, "passed": 2, "skipped": 1, "xfailed": 1, "xpassed": 1, "errors": 3}
    assert terminal_counts("== 1 passed, 1 warning in 0.01s ==") == {"passed": 1, "warnings": 1}
    assert terminal_counts("1 error in 0.35s") == {"errors": 1}
    assert terminal_counts("no tests ran in 0.01s") == {}
    assert terminal_counts("nothing like a summary") is None


def test_read_report_file_refuses_links_and_strangers(tmp_path: Path) -> None:
    good = tmp_path / "good.xml"
    good.write_text("<testsuite/>")
    assert read_report_file(good, 1000, os.getuid()) == ("<testsuite/>", "")
    assert read_report_file(tmp_path / "missing.xml", 1000, None) == ("", "")
    link = tmp_path / "link.xml"
    link.symlink_to("/etc/passwd")
    text, problem = read_report_file(link, 1000, None)
    assert text == "" and "safely" in problem
    hard = tmp_path / "hard.xml"
    os.link(good, hard)
    assert "not a plain file" in read_report_file(hard, 1000, None)[1]
    os.unlink(hard)
    assert "owned by uid" in read_report_file(good, 1000, os.getuid() + 1)[1]
    assert "over the" in read_report_file(good, 5, None)[1]
