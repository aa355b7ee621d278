"""Bandit verification on the files a patch touched.

``parse_bandit_json`` is pure; ``run_bandit`` runs ``<python> -m bandit -f json -q`` in the workspace.

Verdicts:
  * ``failed``     a finding on a line the patch added passes both thresholds
                   (severity >= ``min_severity`` and confidence >= ``min_confidence``);
  * ``incomplete`` bandit skipped files (syntax errors and the like: the JSON ``errors`` array,
                   named in the summary), refused paths, or bandit timed out;
  * ``error``      bandit could not run or its output is not JSON;
  * ``passed``     otherwise.

Findings below ``min_confidence`` are left out of ``findings`` (bandit's low-confidence results
are mostly noise) and only counted in the summary; they stay in ``raw``. Findings below
``min_severity`` are kept with their (low) severity. ``--ignore-nosec`` is passed so generated
code cannot silence bandit with ``# nosec``. Both thresholds are parameters of ``run_bandit``
(default medium/medium).

``reason`` on the report: ``findings``, ``unparseable_files`` (every skipped file was a syntax
error), ``scan_errors``, ``not_scanned``, ``timeout`` or ``tool_error`` ('' when passed).
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

from quorum.domain.models import Finding, Severity, VerificationReport, VerificationStatus
from quorum.sandbox.runner import in_patch, normalize_relpath, run_command, tail_text
from quorum.verify.scanner import ScanReport, findings_summary, load_json_object, scan_targets

TOOL = "bandit"
RAW_NAME = "bandit.json"
SEVERITY_MAP = {"LOW": Severity.low, "MEDIUM": Severity.medium, "HIGH": Severity.high, "UNDEFINED": Severity.info}
LEVELS = {"undefined": 0, "low": 1, "medium": 2, "high": 3}

_version: str | None = None


def bandit_version() -> str:
    global _version
    if _version is None:
        try:
            _version = f"bandit {metadata.version('bandit')}"
        except metadata.PackageNotFoundError:
            _version = ""
    return _version


def _level(value: str) -> int:
    try:
        return LEVELS[str(value).lower()]
    except KeyError:
        raise ValueError(f"unknown bandit level {value!r}; expected one of low, medium, high") from None


def parse_bandit_json(
    text: str,
    added_lines: dict[str, list[int]] | None,
    *,
    min_severity: str = "medium",
    min_confidence: str = "medium",
) -> tuple[VerificationStatus, list[Finding], str]:
    """Verdict, findings and summary from ``bandit -f json`` output (see the module docstring)."""
    sev_min, conf_min = _level(min_severity), _level(min_confidence)
    data, problem = load_json_object(text, TOOL)
    if data is None:
        return VerificationStatus.error, [], problem

    findings: list[Finding] = []
    blocking: list[Finding] = []
    low_confidence = 0
    for res in data.get("results") or []:
        severity_raw = str(res.get("issue_severity", "UNDEFINED")).upper()
        confidence_raw = str(res.get("issue_confidence", "UNDEFINED")).upper()
        if LEVELS.get(confidence_raw.lower(), 0) < conf_min:
            low_confidence += 1
            continue
        path = normalize_relpath(str(res.get("filename", "")))
        line = int(res.get("line_number") or 0)
        finding = Finding(
            source=TOOL,
            rule=str(res.get("test_id", "")),
            severity=SEVERITY_MAP.get(severity_raw, Severity.medium),
            file=path,
            line=line,
            message=f"{res.get('issue_text', '')} [{res.get('test_name', '')}, confidence {confidence_raw.lower()}]",
            in_patch=in_patch(path, line, added_lines),
        )
        findings.append(finding)
        if finding.in_patch and LEVELS.get(severity_raw.lower(), 0) >= sev_min:
            blocking.append(finding)
    findings.sort(key=lambda f: (f.file, f.line, f.rule))

    errors = list(data.get("errors") or [])
    rule = f"severity >= {min_severity.lower()} and confidence >= {min_confidence.lower()} on added lines"
    parts = findings_summary(findings, blocking, rule)
    if low_confidence:
        parts[0] += f" {low_confidence} result(s) below confidence {min_confidence.lower()} ignored."
    if errors:
        parts.append(f"bandit skipped {len(errors)} file(s); the scan is incomplete:")
        for err in errors[:20]:
            if isinstance(err, dict):
                parts.append(f"- {normalize_relpath(str(err.get('filename', '?')))}: {err.get('reason', '')}")
            else:
                parts.append(f"- {str(err)[:200]}")

    status = VerificationStatus.judge(blocking=bool(blocking), incomplete=bool(errors))
    return status, findings, "\n".join(parts)


def run_bandit(
    workspace: Path,
    files: list[str],
    added_lines: dict[str, list[int]] | None = None,
    *,
    min_severity: str = "medium",
    min_confidence: str = "medium",
    timeout_s: float = 120,
) -> VerificationReport:
    """Run bandit on ``files`` (relative to ``workspace``) and judge the result."""
    workspace = Path(workspace)
    _level(min_severity)  # fail fast on a typo
    _level(min_confidence)
    report = ScanReport(TOOL, RAW_NAME, bandit_version())

    if not files:
        return report(VerificationStatus.passed, "no Python files changed")
    if not bandit_version():
        return report(VerificationStatus.error, f"bandit is not installed for {sys.executable}")

    scan = scan_targets(workspace, files)
    notes, outside = scan.notes, scan.outside
    if not scan.targets:
        return report(*scan.nothing_to_scan)

    argv = [sys.executable, "-m", "bandit", "-f", "json", "-q", "--ignore-nosec", "--", *scan.targets]
    res = run_command(
        argv, cwd=workspace, timeout_s=timeout_s, env=None, output_cap_bytes=50_000_000,
    )
    if res.spawn_error:
        return report(VerificationStatus.error, f"bandit could not start: {res.spawn_error}")
    if res.timed_out:
        return report(
            VerificationStatus.incomplete,
            "\n".join([f"bandit timed out after {timeout_s:g}s; the scan is incomplete", *notes]),
            reason="timeout",
        )
    status, findings, summary = parse_bandit_json(
        res.stdout, added_lines, min_severity=min_severity, min_confidence=min_confidence
    )
    if status == VerificationStatus.error or res.stdout_truncated or res.returncode not in (0, 1):
        return report(
            VerificationStatus.error,
            f"bandit ({res.describe()}) did not produce a usable report: {summary[:1000]}\n"
            f"stderr tail:\n{tail_text(res.stderr, 1500)}",
            raw=res.stdout,
        )
    if outside and status == VerificationStatus.passed:
        status = VerificationStatus.incomplete
    return report(
        status, "\n".join([summary, *notes]), reason=_incomplete_reason(status, res.stdout), findings=findings,
        raw=res.stdout,
    )


def _incomplete_reason(status: VerificationStatus, text: str) -> str:
    if status != VerificationStatus.incomplete:
        return ""
    try:
        errors = json.loads(text).get("errors") or []
    except (json.JSONDecodeError, AttributeError, TypeError):
        return "scan_errors"
    if not errors:
        return "not_scanned"
    syntax = all(isinstance(e, dict) and "syntax error" in str(e.get("reason", "")).lower() for e in errors)
    return "unparseable_files" if syntax else "scan_errors"
