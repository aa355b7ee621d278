"""Semgrep verification: offline, with the rules quorum ships, on the files a patch touched.

``parse_semgrep_json`` is pure (JSON text in, verdict out); ``run_semgrep`` does the I/O.

Verdicts:
  * ``failed``     at least one finding on a line the patch added with severity >= medium;
  * ``incomplete`` semgrep reported errors (JSON ``errors`` non-empty: a syntax error it could
                   only partially parse, a rule that hit ``--timeout`` on a file), a requested file
                   was not scanned (too large for ``--max-target-bytes``, skipped after
                   ``--timeout-threshold`` timeouts), a file does not parse as Python (checked
                   with ``ast.parse`` first, see ``quorum.verify.syntax_check``), or semgrep timed out;
  * ``error``      semgrep could not run (binary or rules missing, output not JSON);
  * ``passed``     otherwise; pre-existing and low findings are reported but do not block.

``failed`` wins over ``incomplete`` when both apply: a concrete blocking finding is the more useful
verdict, and the errors are still listed in the summary.

Surprise worth knowing (semgrep 1.185): a file with a syntax error is only reported in
``errors`` when some rule's prefilter matched the file's text, because semgrep only parses
files that could match. A broken file with nothing rule-relevant in it would scan "clean",
which is why every target is parsed with ``ast.parse`` first. When semgrep does parse it, the
error arrives as ``PartialParsing`` with level ``warn``, and any match in the unparsed region is
lost. A rule that runs past ``--timeout`` on a file arrives as ``Timeout``, also level ``warn``,
with exit code 0: any error makes the scan ``incomplete``.

``reason`` on the report: ``findings``, ``scan_errors``, ``unparseable_files``, ``not_scanned``,
``timeout`` or ``tool_error`` ('' when passed).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from quorum.settings import settings
from quorum.domain.models import Finding, Severity, VerificationReport, VerificationStatus
from quorum.sandbox.runner import (
    ResourceLimits,
    in_patch,
    normalize_relpath,
    run_command,
    scrubbed_env,
    tail_text,
)
from quorum.verify.scanner import ScanReport, findings_summary, load_json_object, scan_targets
from quorum.verify.syntax_check import python_syntax_problems

TOOL = "semgrep"
RAW_NAME = "semgrep.json"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RULES = Path(__file__).resolve().parent / "rules" / "semgrep" / "quorum-python.yml"
VENV_SEMGREP = PROJECT_ROOT / ".venv-semgrep" / "bin" / "semgrep"

SEVERITY_MAP = {
    "ERROR": Severity.high,
    "WARNING": Severity.medium,
    "INFO": Severity.low,
    # Newer semgrep rule syntax also allows these.
    "CRITICAL": Severity.critical,
    "HIGH": Severity.high,
    "MEDIUM": Severity.medium,
    "LOW": Severity.low,
    "INVENTORY": Severity.info,
    "EXPERIMENT": Severity.info,
}
BLOCKING = Severity.medium
SEMGREP_ENV = {"SEMGREP_ENABLE_VERSION_CHECK": "0", "SEMGREP_SEND_METRICS": "off"}

_version_cache: dict[str, str] = {}


def find_semgrep() -> tuple[str | None, list[str]]:
    """(binary or None, what was looked for). QUORUM_SEMGREP, if set, is the only candidate."""
    override = settings().semgrep
    if override:
        ok = os.path.isfile(override) and os.access(override, os.X_OK)
        return (override if ok else None), [f"QUORUM_SEMGREP={override}"]
    looked = [str(VENV_SEMGREP), "semgrep on PATH"]
    if VENV_SEMGREP.is_file() and os.access(VENV_SEMGREP, os.X_OK):
        return str(VENV_SEMGREP), looked
    return shutil.which("semgrep"), looked


def semgrep_version(binary: str) -> str:
    """'semgrep 1.185.0', cached per process and binary ('' when it cannot be read)."""
    if binary in _version_cache:
        return _version_cache[binary]
    with tempfile.TemporaryDirectory(prefix="quorum-semgrep-home-") as home:
        res = run_command(
            [binary, "--version", "--disable-version-check"],
            cwd=Path(home), timeout_s=60, env=scrubbed_env(SEMGREP_ENV, home=home),
            limits=ResourceLimits(address_space_bytes=None),
        )
    if res.returncode != 0 or res.timed_out:
        return ""
    lines = res.stdout.strip().splitlines()
    version = f"semgrep {lines[-1].strip()}" if lines else ""
    _version_cache[binary] = version
    return version


def rule_id(check_id: str) -> str:
    """Strip the config-path prefix semgrep puts on local rules ('work.main....quorum.x' -> 'quorum.x')."""
    if check_id.startswith("quorum."):
        return check_id
    i = check_id.rfind(".quorum.")
    return check_id[i + 1 :] if i >= 0 else check_id


def _error_text(err: dict) -> str:
    kind = err.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else ""
    where = err.get("path") or ""
    msg = " ".join(str(err.get("message", "")).split())
    level = err.get("level", "")
    return f"[{level} {kind}] {where}: {msg}"[:300]


def parse_semgrep_json(
    text: str,
    added_lines: dict[str, list[int]] | None,
    *,
    expected_files: list[str] | None = None,
) -> tuple[VerificationStatus, list[Finding], str]:
    """Verdict, findings and a one-paragraph summary from ``semgrep --json`` output.

    ``added_lines`` maps file -> lines the patch added (None: every finding counts as in the
    patch). ``expected_files``, when given, must all appear in ``paths.scanned``.
    """
    data, problem = load_json_object(text, TOOL)
    if data is None:
        return VerificationStatus.error, [], problem

    findings: list[Finding] = []
    for res in data.get("results") or []:
        path = normalize_relpath(str(res.get("path", "")))
        line = int((res.get("start") or {}).get("line") or 0)
        extra = res.get("extra") or {}
        severity = SEVERITY_MAP.get(str(extra.get("severity", "")).upper(), Severity.medium)
        message = " ".join(str(extra.get("message", "")).split())
        findings.append(
            Finding(
                source=TOOL,
                rule=rule_id(str(res.get("check_id", ""))),
                severity=severity,
                file=path,
                line=line,
                message=message,
                in_patch=in_patch(path, line, added_lines),
            )
        )
    findings.sort(key=lambda f: (f.file, f.line, f.rule))

    errors = list(data.get("errors") or [])
    scanned = {normalize_relpath(p) for p in ((data.get("paths") or {}).get("scanned") or [])}
    not_scanned = [f for f in (expected_files or []) if normalize_relpath(f) not in scanned]

    blocking = [f for f in findings if f.in_patch and f.severity.rank >= BLOCKING.rank]
    parts = findings_summary(findings, blocking, f"severity >= {BLOCKING.value} on added lines")
    if errors:
        parts.append(f"semgrep reported {len(errors)} error(s); the scan is incomplete:")
        parts.extend(f"- {_error_text(e) if isinstance(e, dict) else str(e)[:300]}" for e in errors[:10])
    if not_scanned:
        parts.append(f"not scanned by semgrep: {', '.join(not_scanned[:20])}")

    status = VerificationStatus.judge(blocking=bool(blocking), incomplete=bool(errors or not_scanned))
    return status, findings, "\n".join(parts)


def run_semgrep(
    workspace: Path,
    files: list[str],
    added_lines: dict[str, list[int]] | None = None,
    *,
    rules: Path = DEFAULT_RULES,
    timeout_s: float = 120,
    rule_timeout_s: int = 5,
    timeout_threshold: int = 3,
    max_target_bytes: int = 1_000_000,
) -> VerificationReport:
    """Scan ``files`` (relative to ``workspace``) with our rules, offline, and judge the result.

    ``rule_timeout_s`` and ``timeout_threshold`` are semgrep's ``--timeout`` (seconds for one rule
    on one file) and ``--timeout-threshold`` (timeouts before a file is skipped); both show up as
    errors, so they make the scan ``incomplete``, never clean.
    """
    workspace = Path(workspace)
    report = ScanReport(TOOL, RAW_NAME)

    if not files:
        return report(VerificationStatus.passed, "no Python files changed")
    binary, looked_for = find_semgrep()
    if binary is None:
        return report(VerificationStatus.error, f"semgrep not found (looked for: {', '.join(looked_for)})")
    rules = Path(rules)
    if not rules.is_file():
        return report(VerificationStatus.error, f"semgrep rules file not found: {rules}")

    scan = scan_targets(workspace, files)
    targets, outside, notes = scan.targets, scan.outside, scan.notes
    report.tool_version = version = semgrep_version(binary)
    if not targets:
        return report(*scan.nothing_to_scan)

    unparseable = python_syntax_problems(workspace, targets)
    if unparseable:
        notes.append(
            f"{len(unparseable)} file(s) do not parse as Python, so the scan cannot vouch for them: "
            + "; ".join(p.describe() for p in unparseable[:10])
        )
    argv = [
        binary, "--config", str(rules.resolve()), "--json", "--metrics=off", "--disable-version-check",
        "--no-git-ignore", "--timeout", str(int(rule_timeout_s)), "--timeout-threshold", str(int(timeout_threshold)),
        "--max-target-bytes", str(int(max_target_bytes)),
        # Generated code must not be able to exempt itself with `# nosemgrep`.
        "--disable-nosem",
        "--", *targets,
    ]
    with tempfile.TemporaryDirectory(prefix="quorum-semgrep-home-") as home:
        res = run_command(
            argv,
            cwd=workspace,
            timeout_s=timeout_s,
            env=scrubbed_env(SEMGREP_ENV, home=home),
            output_cap_bytes=50_000_000,
            # semgrep-core (OCaml) reserves a lot of address space: a 2 GiB RLIMIT_AS makes it crash.
            limits=ResourceLimits(address_space_bytes=None, cpu_s=int(timeout_s * 4) + 60),
        )
    if res.spawn_error:
        return report(VerificationStatus.error, f"semgrep could not start: {res.spawn_error}", tool_version=version)
    if res.timed_out:
        return report(
            VerificationStatus.incomplete,
            "\n".join([f"semgrep timed out after {timeout_s:g}s; the scan is incomplete", *notes]),
            reason="timeout", tool_version=version, raw=res.stdout,
        )

    status, findings, summary = parse_semgrep_json(res.stdout, added_lines, expected_files=targets)
    if status == VerificationStatus.error or res.stdout_truncated:
        return report(
            VerificationStatus.error,
            f"semgrep ({res.describe()}) gave no usable JSON: {summary}\nstderr tail:\n{tail_text(res.stderr, 1500)}",
            tool_version=version, raw=res.stdout,
        )
    if res.returncode not in (0, 1):
        notes.append(f"semgrep {res.describe()}; stderr tail: {tail_text(res.stderr, 800)}")
        if status == VerificationStatus.passed:
            status = VerificationStatus.incomplete
    if (outside or unparseable) and status == VerificationStatus.passed:
        status = VerificationStatus.incomplete
    reason = ""
    if status == VerificationStatus.incomplete:
        if unparseable:
            reason = "unparseable_files"
        elif _has_errors(res.stdout) or res.returncode not in (0, 1):
            reason = "scan_errors"
    return report(
        status,
        "\n".join([summary, *notes]),
        reason=reason,
        findings=findings,
        tool_version=version,
        raw=res.stdout,
    )


def _has_errors(text: str) -> bool:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return True
    return bool(isinstance(data, dict) and data.get("errors"))
