"""pytest verification: run the repository's tests, or held-out acceptance tests, in a throwaway copy.

``parse_junit_xml`` is pure; ``run_pytest`` copies the workspace (without ``.git`` and caches) into
a fresh temporary directory, optionally adds the acceptance tests under ``.quorum_acceptance/``,
runs ``python -m pytest`` there through ``tasks.sandbox.run_command`` (own process group, limits,
scrubbed environment, capped output) and removes the copy afterwards.

pytest options and why:
  * ``-p no:cacheprovider``  nothing written to ``.pytest_cache``;
  * ``-o addopts=``           the repository's ``addopts`` (``--cov``, ``-x``, plugins we lack...)
                              would make the verdict depend on its config; the rest of its config
                              (markers, ``testpaths``, conftest.py) still applies;
  * ``-o junit_family=xunit1`` puts ``file`` and ``line`` on every testcase (xunit2 does not);
  * ``--rootdir=<copy>``      node ids and paths are relative to the copy root, i.e. repo-relative;
  * acceptance runs also get ``-o python_files=test_*.py *_test.py`` so the repo's
    ``python_files`` cannot hide them.

Verdicts: all passed -> passed; failures or errors (including collection errors) -> failed;
exit code 5 (no tests) -> passed for repo tests ("no tests collected"), error for acceptance
tests; timeout, missing JUnit XML, killed by a signal, pytest internal/usage error -> error.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from quorum.models import Finding, Severity, VerificationReport, VerificationStatus
from tasks.sandbox import ResourceLimits, middle_truncate, run_command, scrubbed_env, tail_text

ACCEPTANCE_DIR = ".quorum_acceptance"
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".nox",
    ".venv", ".venv-*", ".quorum", ACCEPTANCE_DIR,
)
MESSAGE_LIMIT = 2000
SUMMARY_LIMIT = 4000
OUTPUT_TAIL = 2000
EXIT_NO_TESTS = 5


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_junit_xml(xml_text: str, tool: str) -> tuple[VerificationStatus, list[Finding], str]:
    """Verdict, findings (one per failed or errored test, severity high) and a summary from JUnit XML."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        return VerificationStatus.error, [], f"{tool}: JUnit XML is not parseable ({exc})"

    findings: list[Finding] = []
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    cases = list(root.iter("testcase"))
    for case in cases:
        problems = [child for child in case if child.tag in ("failure", "error")]
        if not problems:
            if any(child.tag == "skipped" for child in case):
                counts["skipped"] += 1
            else:
                counts["passed"] += 1
            continue
        counts["failed" if any(p.tag == "failure" for p in problems) else "errors"] += 1
        file = case.get("file") or ""
        line0 = _int(case.get("line"))
        line = line0 + 1 if line0 is not None and line0 >= 0 else 0  # pytest writes 0-based lines
        name = case.get("name") or ""
        classname = case.get("classname") or ""
        if file:  # collection errors have no classname and the module as name: show the file only
            test_id = f"{file}::{name}" if classname else file
        else:
            test_id = ".".join(p for p in (classname, name) if p)
        for problem in problems:
            text = f"{test_id}: {problem.get('message') or ''}\n{problem.text or ''}".strip()
            findings.append(
                Finding(
                    source=tool,
                    rule=problem.tag,
                    severity=Severity.high,
                    file=file,
                    line=line,
                    message=middle_truncate(text, MESSAGE_LIMIT),
                    in_patch=True,
                )
            )

    if not cases:
        return VerificationStatus.passed, [], f"{tool}: no tests collected"
    summary = (
        f"{tool}: {counts['passed']} passed, {counts['failed']} failed, {counts['errors']} errors, "
        f"{counts['skipped']} skipped"
    )
    if findings:
        shown = [f"- {f.message.splitlines()[0][:200]}" for f in findings[:10]]
        more = [f"- ... and {len(findings) - 10} more"] if len(findings) > 10 else []
        summary = "\n".join([summary, *shown, *more])
        return VerificationStatus.failed, findings, summary
    return VerificationStatus.passed, findings, summary


def _rmtree(path: Path) -> None:
    """Remove a tree even if the tests made parts of it read-only."""

    def onerror(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=onerror)


def _with_output(summary: str, output: str) -> str:
    """Summary plus the tail of the pytest output, kept under SUMMARY_LIMIT characters."""
    output = output.strip()
    if not output:
        return summary[:SUMMARY_LIMIT]
    head = middle_truncate(summary, SUMMARY_LIMIT - OUTPUT_TAIL - 100)
    return f"{head}\n--- output (tail) ---\n{tail_text(output, OUTPUT_TAIL)}"


def run_pytest(
    workspace: Path,
    *,
    tool: str = "pytest",
    extra_tests: Path | None = None,
    timeout_s: float = 300,
    python: str = sys.executable,
) -> VerificationReport:
    """Run tests in a throwaway copy of ``workspace`` (see the module docstring for the verdicts)."""
    started = time.monotonic()
    workspace = Path(workspace)
    raw_name = f"{tool}.xml"

    def report(status: VerificationStatus, summary: str, **kw) -> VerificationReport:
        return VerificationReport(
            tool=tool, status=status, summary=summary, duration_s=round(time.monotonic() - started, 3),
            raw_name=raw_name, **kw,
        )

    if not workspace.is_dir():
        return report(VerificationStatus.error, f"workspace not found: {workspace}")
    if extra_tests is not None and not Path(extra_tests).is_dir():
        return report(VerificationStatus.error, f"acceptance tests directory not found: {extra_tests}")

    tmp = Path(tempfile.mkdtemp(prefix=f"quorum-{tool}-"))
    try:
        copy = tmp / "ws"
        home = tmp / "home"
        junit = tmp / "junit.xml"
        home.mkdir()
        notes: list[str] = []
        try:
            shutil.copytree(workspace, copy, symlinks=True, ignore=COPY_IGNORE)
        except shutil.Error as exc:  # special files (fifos, sockets) that cannot be copied
            notes.append(f"some files were not copied: {str(exc)[:300]}")
        argv = [
            python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-o", "junit_family=xunit1",
            f"--junitxml={junit}", f"--rootdir={copy}",
        ]
        if extra_tests is not None:
            shutil.copytree(Path(extra_tests), copy / ACCEPTANCE_DIR, symlinks=True, ignore=COPY_IGNORE)
            argv += ["-o", "python_files=test_*.py *_test.py", ACCEPTANCE_DIR]
        res = run_command(
            argv,
            cwd=copy,
            timeout_s=timeout_s,
            env=scrubbed_env({"PYTHONPATH": str(copy)}, home=home),
            output_cap_bytes=200_000,
            limits=ResourceLimits(cpu_s=int(timeout_s) + 60),
        )
        # Paths inside the throwaway copy are shown repo-relative.
        output = (res.stdout + ("\n" + res.stderr if res.stderr.strip() else "")).replace(f"{copy}/", "")
        raw = junit.read_text(encoding="utf-8", errors="replace") if junit.is_file() else ""
        raw = raw.replace(f"{copy}/", "")

        def done(status: VerificationStatus, summary: str, **kw) -> VerificationReport:
            return report(status, _with_output("\n".join([summary, *notes]), output), raw=raw, **kw)

        if res.spawn_error:
            return done(VerificationStatus.error, f"{tool}: could not start {python}: {res.spawn_error}")
        if res.timed_out:
            return done(VerificationStatus.error, f"{tool}: timed out after {timeout_s:g}s; process group killed")
        if res.returncode == EXIT_NO_TESTS:
            if extra_tests is not None:
                return done(VerificationStatus.error, f"{tool}: no acceptance tests collected from {extra_tests}")
            return done(VerificationStatus.passed, "no tests collected")
        if not raw:
            return done(VerificationStatus.error, f"{tool}: no JUnit XML written; pytest {res.describe()}")
        status, findings, summary = parse_junit_xml(raw, tool)
        if res.returncode < 0 or res.returncode >= 3:
            # Killed by a signal (CPU or memory limit, os.kill) or a pytest internal/usage error.
            return done(VerificationStatus.error, f"{summary}\npytest {res.describe()}", findings=findings)
        if res.returncode in (1, 2) and status == VerificationStatus.passed:
            return done(
                VerificationStatus.error,
                f"{summary}\npytest {res.describe()} but the JUnit XML records no failure", findings=findings,
            )
        return done(status, summary, findings=findings)
    finally:
        _rmtree(tmp)
