"""What the scanners (Bandit, Semgrep) share: their reports, their targets, their JSON, their summaries."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quorum.domain.models import Finding, VerificationReport, VerificationStatus
from quorum.sandbox.runner import select_targets

DEFAULT_REASON = {VerificationStatus.failed: "findings", VerificationStatus.error: "tool_error"}


class ScanReport:
    """Makes one scan's VerificationReport: tool, timing since creation, and a reason for every non-pass."""

    def __init__(self, tool: str, raw_name: str, tool_version: str = "") -> None:
        self.tool, self.raw_name, self.tool_version = tool, raw_name, tool_version
        self.started = time.monotonic()

    def __call__(self, status: VerificationStatus, summary: str, reason: str = "", **fields: Any) -> VerificationReport:
        if not reason and status != VerificationStatus.passed:
            reason = DEFAULT_REASON.get(status, "not_scanned")
        fields.setdefault("tool_version", self.tool_version)
        return VerificationReport(
            tool=self.tool, status=status, summary=summary, duration_s=round(time.monotonic() - self.started, 3),
            raw_name=self.raw_name, reason=reason, **fields,
        )  # fmt: skip


@dataclass
class ScanTargets:
    """The files a scan may read, and notes on those it may not (missing, or outside the workspace)."""

    targets: list[str]
    outside: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def nothing_to_scan(self) -> tuple[VerificationStatus, str]:
        """The verdict when no target is left: refusing a path leaves the scan incomplete."""
        status = VerificationStatus.incomplete if self.outside else VerificationStatus.passed
        return status, "\n".join(["no files to scan", *self.notes])


def scan_targets(workspace: Path, files: list[str]) -> ScanTargets:
    targets, missing, outside = select_targets(workspace, files)
    notes = []
    if missing:
        notes.append(f"skipped (deleted or missing): {', '.join(missing[:20])}")
    if outside:
        notes.append(f"refused (outside the workspace or not a regular file): {', '.join(outside[:20])}")
    return ScanTargets(targets=targets, outside=outside, notes=notes)


def load_json_object(text: str, tool: str) -> tuple[dict | None, str]:
    """A tool's JSON output as a dict, or (None, why not) for the `error` verdict."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        return None, f"{tool} output is not JSON ({exc}): {str(text)[:300]!r}"
    if not isinstance(data, dict):
        return None, f"{tool} output is not a JSON object"
    return data, ""


def findings_summary(findings: list[Finding], blocking: list[Finding], blocking_rule: str) -> list[str]:
    """The summary's first line (counts) and one line per blocking finding (at most 10)."""
    in_patch = sum(f.in_patch for f in findings)
    head = (
        f"{len(findings)} finding(s): {in_patch} on added lines, {len(findings) - in_patch} pre-existing; "
        f"{len(blocking)} blocking ({blocking_rule})."
    )
    return [head, *(f"- {f.location()} {f.rule} ({f.severity.value}): {f.message[:200]}" for f in blocking[:10])]
