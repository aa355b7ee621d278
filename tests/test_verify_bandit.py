"""quorum.verify.bandit: real bandit runs on small files plus the pure parser on captured JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quorum.domain.models import Severity, VerificationStatus
from quorum.verify.bandit import parse_bandit_json, run_bandit

SHELL = """\
import subprocess


def run(cmd):
    return subprocess.call(cmd, shell=True)


def old(cmd):
    return subprocess.call(cmd, shell=True)
"""


def test_shell_true_on_added_line_fails(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(SHELL)
    report = run_bandit(tmp_path, ["app.py"], {"app.py": [4, 5]})
    assert report.status == VerificationStatus.failed
    assert report.tool == "bandit" and report.raw_name == "bandit.json"
    assert report.tool_version.startswith("bandit ")
    b602 = {f.line: f for f in report.findings if f.rule == "B602"}
    assert b602[5].in_patch is True and b602[5].severity == Severity.high
    assert b602[9].in_patch is False  # pre-existing
    assert b602[5].file == "app.py"  # bandit's './' prefix is removed
    assert "B602" in report.summary
    assert json.loads(report.raw)["results"]


def test_shell_true_only_preexisting_passes_but_is_reported(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(SHELL + "\n\nVALUE = 1\n")
    report = run_bandit(tmp_path, ["app.py"], {"app.py": [12]})
    assert report.status == VerificationStatus.passed
    assert {f.rule for f in report.findings} >= {"B602"}
    assert not any(f.in_patch for f in report.findings)


def test_nosec_does_not_silence_added_code(tmp_path: Path) -> None:
    code = "import subprocess\n\n\ndef run(cmd):\n    subprocess.call(cmd, shell=True)  # nosec\n"
    (tmp_path / "app.py").write_text(code)
    report = run_bandit(tmp_path, ["app.py"], {"app.py": [5]})
    assert report.status == VerificationStatus.failed


def test_syntax_error_file_is_incomplete_and_named(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("def f(:\n    pass\n")
    report = run_bandit(tmp_path, ["ok.py", "broken.py", "deleted.py"], {"broken.py": [1, 2], "ok.py": [1]})
    assert (report.status, report.reason) == (VerificationStatus.incomplete, "unparseable_files")
    assert "broken.py" in report.summary
    assert "deleted.py" in report.summary  # skipped as deleted, said so


def test_no_files(tmp_path: Path) -> None:
    report = run_bandit(tmp_path, [], {})
    assert report.status == VerificationStatus.passed
    assert report.summary == "no Python files changed"


def test_bad_threshold_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        run_bandit(tmp_path, ["a.py"], None, min_severity="severe")


# ---------- pure parser on captured bandit 1.9.4 JSON ----------


def captured(results: list[dict], errors: list[dict] | None = None) -> str:
    return json.dumps(
        {"errors": errors or [], "generated_at": "2026-11-28T13:57:02Z", "metrics": {}, "results": results}
    )


def result(test_id: str, line: int, severity: str, confidence: str, filename: str = "./a.py") -> dict:
    return {
        "code": "3     subprocess.call(x, shell=True)\n",
        "col_offset": 4,
        "filename": filename,
        "issue_confidence": confidence,
        "issue_cwe": {"id": 78, "link": "https://cwe.mitre.org/data/definitions/78.html"},
        "issue_severity": severity,
        "issue_text": "subprocess call with shell=True identified, security issue.",
        "line_number": line,
        "line_range": [line],
        "test_id": test_id,
        "test_name": "subprocess_popen_with_shell_equals_true",
    }


def test_parse_thresholds() -> None:
    text = captured(
        [
            result("B602", 3, "HIGH", "HIGH"),
            result("B608", 4, "MEDIUM", "LOW"),  # low confidence: ignored
            result("B404", 1, "LOW", "HIGH"),  # below min_severity: reported, not blocking
        ]
    )
    added = {"a.py": [1, 4]}
    status, findings, summary = parse_bandit_json(text, added)
    assert status == VerificationStatus.passed  # B602 is pre-existing (line 3 not added)
    assert [(f.rule, f.in_patch) for f in findings] == [("B404", True), ("B602", False)]
    assert "1 result(s) below confidence medium ignored" in summary

    status, findings, _ = parse_bandit_json(text, added, min_confidence="low")
    assert status == VerificationStatus.failed  # B608 medium on an added line now counts
    assert {f.rule for f in findings} == {"B404", "B602", "B608"}

    status, _, _ = parse_bandit_json(text, {"a.py": [3]}, min_severity="high")
    assert status == VerificationStatus.failed
    status, _, _ = parse_bandit_json(text, {"a.py": [1]}, min_severity="low")
    assert status == VerificationStatus.failed  # B404 LOW on an added line now blocks


def test_parse_severity_map_and_paths() -> None:
    text = captured(
        [result("B602", 3, "HIGH", "HIGH", "././pkg/a.py"), result("B603", 7, "MEDIUM", "HIGH", "./pkg/a.py")]
    )
    _, findings, _ = parse_bandit_json(text, None)
    assert [(f.file, f.severity, f.source) for f in findings] == [
        ("pkg/a.py", Severity.high, "bandit"),
        ("pkg/a.py", Severity.medium, "bandit"),
    ]
    assert all(f.in_patch for f in findings)  # no patch information: everything counts


def test_parse_errors_array_is_incomplete() -> None:
    text = captured([], [{"filename": "././bad3.py", "reason": "syntax error while parsing AST from file"}])
    status, findings, summary = parse_bandit_json(text, {"bad3.py": [1]})
    assert status == VerificationStatus.incomplete
    assert findings == []
    assert "bad3.py: syntax error while parsing AST from file" in summary


def test_parse_not_json_is_error() -> None:
    status, _, _ = parse_bandit_json("[main]\tERROR something broke", None)
    assert status == VerificationStatus.error


def test_policy_thresholds_reach_bandit(tmp_path):
    """The policy's Bandit thresholds decide what blocks. B105 (a hard-coded password) is low severity,
    medium confidence: it blocks only when the severity bar is lowered, and not when confidence is raised."""
    from quorum.domain.policy import Policy
    from quorum.tasks.verify import bandit_task

    (tmp_path / "app.py").write_text('password = "hunter2"\n')
    added = {"app.py": [1]}
    default = Policy()
    assert bandit_task.fn(
        str(tmp_path), ["app.py"], added, min_severity=default.bandit_min_severity
    ).status.value == "passed"
    strict = Policy(bandit_min_severity="low")
    report = bandit_task.fn(str(tmp_path), ["app.py"], added, min_severity=strict.bandit_min_severity)
    assert report.status.value == "failed" and "B105" in report.summary
    ignored = bandit_task.fn(str(tmp_path), ["app.py"], added, min_severity="low", min_confidence="high")
    assert ignored.status.value == "passed" and "below confidence high ignored" in ignored.summary
    with pytest.raises(ValueError):
        Policy(bandit_min_severity="severe")
