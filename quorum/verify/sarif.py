"""SARIF 2.1.0 from verification reports (pure): one run per tool, for code-scanning viewers.

Each report becomes one ``run``: the driver (tool name and version), the rules its findings use,
one result per finding (level from severity, location relative to the repository root under the
``SRCROOT`` base id, ``baselineState`` ``new`` for findings on added lines and ``unchanged`` for
pre-existing ones), and one invocation that says whether the tool ran to completion, with the
verdict's reason as a notification when it did not pass.

Paths: only repository-relative paths are written. A path under one of ``strip_prefixes`` (the
throwaway copy a tool ran in) is made relative to it; any other absolute path, or one that climbs
out with ``..``, is left out of the location (the message keeps the rest). Prefixes are also
removed from message texts, so temp directories do not leak into the file.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from urllib.parse import quote

from quorum.domain.models import Finding, Severity, VerificationReport, VerificationStatus

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SRCROOT = "SRCROOT"
LEVELS = {
    Severity.critical: "error",
    Severity.high: "error",
    Severity.medium: "warning",
    Severity.low: "note",
    Severity.info: "note",
}
INFORMATION_URIS = {
    "semgrep": "https://semgrep.dev",
    "bandit": "https://bandit.readthedocs.io",
    "pytest": "https://docs.pytest.org",
    "acceptance": "https://docs.pytest.org",
}
MESSAGE_LIMIT = 4000


def _strip(text: str, prefixes: Sequence[str]) -> str:
    for prefix in prefixes:
        text = text.replace(prefix.rstrip("/") + "/", "")
    return text


def relative_uri(path: str, strip_prefixes: Sequence[str] = ()) -> str | None:
    """A percent-encoded repository-relative URI for ``path``, or None when it has none."""
    if not path:
        return None
    path = path.replace("\\", "/")
    for prefix in strip_prefixes:
        prefix = prefix.rstrip("/") + "/"
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return None
    path = posixpath.normpath(path)
    if path in (".", "..") or path.startswith("../"):
        return None
    return quote(path, safe="/")


def _version(report: VerificationReport, tool_versions: dict[str, str]) -> str:
    version = tool_versions.get(report.tool) or report.tool_version
    prefix = f"{report.tool} "
    return version[len(prefix) :] if version.startswith(prefix) else version


def _rule_id(report: VerificationReport, finding: Finding) -> str:
    return finding.rule or f"{report.tool}.finding"


def _result(report: VerificationReport, finding: Finding, rule_index: int, prefixes: Sequence[str]) -> dict:
    message = _strip(finding.message, prefixes).strip() or f"{report.tool} finding"
    result: dict = {
        "ruleId": _rule_id(report, finding),
        "ruleIndex": rule_index,
        "level": LEVELS[finding.severity],
        "message": {"text": message[:MESSAGE_LIMIT]},
        "baselineState": "new" if finding.in_patch else "unchanged",
        "properties": {"severity": finding.severity.value, "inPatch": finding.in_patch},
    }
    uri = relative_uri(finding.file, prefixes)
    if uri is not None:
        physical: dict = {"artifactLocation": {"uri": uri, "uriBaseId": SRCROOT}}
        if finding.line > 0:
            physical["region"] = {"startLine": finding.line}
        result["locations"] = [{"physicalLocation": physical}]
    return result


def _run(report: VerificationReport, tool_versions: dict[str, str], prefixes: Sequence[str]) -> dict:
    rules: list[dict] = []
    index: dict[str, int] = {}
    results = []
    for finding in report.findings:
        rid = _rule_id(report, finding)
        if rid not in index:
            index[rid] = len(rules)
            rules.append(
                {
                    "id": rid,
                    "name": rid,
                    "shortDescription": {"text": f"{report.tool} rule {rid}"},
                    "defaultConfiguration": {"level": LEVELS[finding.severity]},
                }
            )
        results.append(_result(report, finding, index[rid], prefixes))

    driver: dict = {"name": report.tool, "rules": rules}
    version = _version(report, tool_versions)
    if version:
        driver["version"] = version
    if report.tool in INFORMATION_URIS:
        driver["informationUri"] = INFORMATION_URIS[report.tool]
    invocation: dict = {
        "executionSuccessful": report.status in (VerificationStatus.passed, VerificationStatus.failed),
        "properties": {"status": report.status.value, "reason": report.reason},
    }
    unexplained_failure = report.status == VerificationStatus.failed and not report.findings
    if unexplained_failure or report.status in (VerificationStatus.incomplete, VerificationStatus.error):
        summary = _strip(report.summary, prefixes).strip() or f"{report.tool}: {report.status.value}"
        invocation["toolExecutionNotifications"] = [
            {"level": "error", "message": {"text": summary[:MESSAGE_LIMIT]}}
        ]
    properties: dict = {"status": report.status.value, "reason": report.reason, "durationSeconds": report.duration_s}
    if report.limit_hit:
        properties["limitHit"] = report.limit_hit
    if report.network_isolated is not None:
        properties["networkIsolated"] = report.network_isolated
    return {
        "tool": {"driver": driver},
        "originalUriBaseIds": {SRCROOT: {"description": {"text": "The repository root."}}},
        "invocations": [invocation],
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": properties,
    }


def to_sarif(
    reports: list[VerificationReport],
    *,
    tool_versions: dict[str, str] | None = None,
    strip_prefixes: Sequence[str] = (),
) -> dict:
    """A SARIF 2.1.0 log (a JSON-ready dict) with one run per report, in order."""
    versions = tool_versions or {}
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [_run(report, versions, strip_prefixes) for report in reports],
    }
