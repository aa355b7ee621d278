"""quorum.verify.sarif: SARIF 2.1.0 structure from verification reports (pure, no tools run)."""

from __future__ import annotations

import json

from quorum.domain.models import Finding, Severity, VerificationReport, VerificationStatus
from quorum.verify.sarif import SARIF_VERSION, relative_uri, to_sarif

COPY = "/tmp/quorum-pytest-abc123/ws"
LEVELS = {"none", "note", "warning", "error"}


def reports() -> list[VerificationReport]:
    return [
        VerificationReport(
            tool="semgrep", status=VerificationStatus.failed, tool_version="semgrep 1.185.0",
            findings=[
                Finding(source="semgrep", rule="quorum.python.eval-exec", severity=Severity.high,
                        file="pkg/app.py", line=4, message="eval of input"),
                Finding(source="semgrep", rule="quorum.python.eval-exec", severity=Severity.high,
                        file="./pkg/old.py", line=9, message="pre-existing", in_patch=False),
                Finding(source="semgrep", rule="quorum.python.weak-hash", severity=Severity.low,
                        file="it's $(touch x) a.py", line=1, message="md5"),
            ],
        ),
        VerificationReport(
            tool="bandit", status=VerificationStatus.incomplete, reason="unparseable_files",
            tool_version="bandit 1.9.4", summary=f"bandit skipped 1 file(s): {COPY}/broken.py",
            findings=[Finding(source="bandit", rule="B602", severity=Severity.medium, file="run.py", line=2,
                              message="shell=True")],
        ),
        VerificationReport(
            tool="pytest", status=VerificationStatus.failed, reason="failed", network_isolated=True,
            findings=[
                Finding(source="pytest", rule="failure", severity=Severity.high, file=f"{COPY}/tests/test_a.py",
                        line=3, message=f"{COPY}/tests/test_a.py::test_a: assert 1 == 2"),
                Finding(source="pytest", rule="error", severity=Severity.critical, file="/etc/passwd", line=1,
                        message="outside"),
                Finding(source="pytest", rule="error", severity=Severity.info, file="../escape.py", line=0,
                        message="climbs out"),
                Finding(source="pytest", rule="", severity=Severity.medium, message="no location"),
            ],
        ),
        VerificationReport(tool="acceptance", status=VerificationStatus.error, reason="timeout",
                           summary="acceptance: timed out after 3s"),
    ]


def test_structure_levels_rules_and_relative_uris() -> None:
    log = to_sarif(reports(), tool_versions={"pytest": "9.0.3"}, strip_prefixes=[COPY])
    text = json.dumps(log)  # JSON-ready
    assert "/tmp/" not in text and "quorum-pytest-abc123" not in text
    assert log["version"] == SARIF_VERSION == "2.1.0" and log["$schema"].endswith("sarif-schema-2.1.0.json")
    assert [run["tool"]["driver"]["name"] for run in log["runs"]] == ["semgrep", "bandit", "pytest", "acceptance"]
    for run in log["runs"]:
        driver = run["tool"]["driver"]
        rule_ids = [rule["id"] for rule in driver["rules"]]
        assert len(rule_ids) == len(set(rule_ids))
        assert run["originalUriBaseIds"]["SRCROOT"]["description"]["text"]
        assert isinstance(run["invocations"][0]["executionSuccessful"], bool)
        for result in run["results"]:
            assert result["level"] in LEVELS
            assert result["message"]["text"]
            assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
            assert result["baselineState"] in {"new", "unchanged"}
            for location in result.get("locations", []):
                physical = location["physicalLocation"]
                uri = physical["artifactLocation"]["uri"]
                assert physical["artifactLocation"]["uriBaseId"] == "SRCROOT"
                assert not uri.startswith("/") and ":" not in uri and ".." not in uri.split("/")
                assert physical.get("region", {"startLine": 1})["startLine"] >= 1

    semgrep, bandit, pytest_run, acceptance = log["runs"]
    assert semgrep["tool"]["driver"]["version"] == "1.185.0"
    assert pytest_run["tool"]["driver"]["version"] == "9.0.3"
    assert [r["level"] for r in semgrep["results"]] == ["error", "error", "note"]
    assert [r["baselineState"] for r in semgrep["results"]] == ["new", "unchanged", "new"]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in semgrep["results"]]
    assert uris == ["pkg/app.py", "pkg/old.py", "it%27s%20%24%28touch%20x%29%20a.py"]
    assert len(semgrep["tool"]["driver"]["rules"]) == 2

    located = [r for r in pytest_run["results"] if "locations" in r]
    assert [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in located] == ["tests/test_a.py"]
    assert located[0]["message"]["text"] == "tests/test_a.py::test_a: assert 1 == 2"
    assert [r["level"] for r in pytest_run["results"]] == ["error", "error", "note", "warning"]
    assert pytest_run["results"][3]["ruleId"] == "pytest.finding"
    assert pytest_run["properties"]["networkIsolated"] is True

    assert bandit["invocations"][0]["executionSuccessful"] is False
    assert bandit["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"].endswith("broken.py")
    assert acceptance["results"] == [] and acceptance["properties"]["reason"] == "timeout"
    assert "timed out" in acceptance["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]
    assert "toolExecutionNotifications" not in semgrep["invocations"][0]


def test_relative_uri() -> None:
    assert relative_uri("./a/./b.py") == "a/b.py"
    assert relative_uri(f"{COPY}/x y.py", [COPY]) == "x%20y.py"
    assert relative_uri("/abs/path.py") is None
    assert relative_uri("C:\\win\\path.py") is None
    assert relative_uri("a/../../up.py") is None
    assert relative_uri("") is None


def test_empty_input_is_a_valid_log() -> None:
    assert to_sarif([])["runs"] == []
