"""pytest verification: run the repository's tests, or held-out acceptance tests, in a throwaway copy.

The pure part (``parse_junit_xml``, ``junit_counts``, ``terminal_counts``, ``detect_limit``,
``judge_run``) turns what a run left behind into a verdict; ``run_pytest`` does the I/O: it copies
the workspace (without ``.git`` and caches) into a fresh run directory, optionally adds the
acceptance tests under ``.quorum_acceptance/``, gives the copy to a sandbox uid and runs
``python -m pytest`` there through ``quorum.sandbox.runner.run_command`` with ``confine`` (privilege drop,
PID/network/mount namespaces, limits: see ``quorum/sandbox/runner.py``; as root or, rootless, in a
user namespace), then removes the run directory. Where neither is possible the tests do not run:
``error`` / ``no_isolation``, with how to fix it, unless ``QUORUM_SANDBOX_ALLOW_UNISOLATED=1``; then
the report's summary and ``sandbox`` say ``unisolated``.

Run directory (mode 0711): ``ws/`` (the copy), ``home/``, ``tmp/`` (TMPDIR) and ``out/`` (the JUnit
XML) belong to the sandbox uid (in root mode; our uid otherwise) and are the only writable places;
``conf/`` (read-only) holds the ini file of acceptance runs.

pytest options and why:
  * ``-p no:cacheprovider``  nothing written to ``.pytest_cache``;
  * ``-o addopts=``           the repository's ``addopts`` (``--cov``, ``-x``, plugins we lack...)
                              would make the verdict depend on its config;
  * ``-o junit_family=xunit1`` puts ``file`` and ``line`` on every testcase (xunit2 does not);
  * ``-o junit_suite_name=<nonce>`` a per-run random suite name the XML must carry;
  * ``--rootdir=<copy>``      node ids and paths are relative to the copy root, i.e. repo-relative.
Acceptance runs are held apart from the code under test as far as pytest allows: ``python -I``
(no current directory on ``sys.path``, so the repository cannot shadow ``pytest`` or plant a
``sitecustomize``; no ``PYTHON*`` variables), ``-c conf/acceptance.ini`` (the repository's pytest
config is ignored), ``--confcutdir=.quorum_acceptance`` (the repository's ``conftest.py`` files are
not loaded), ``-o pythonpath=<copy>`` (the code is importable) and ``python_files=test_*.py *_test.py``.

JUnit forgery. The XML is read only after the launcher has reported that every process of the run
is dead (the PID namespace is gone), with ``O_NOFOLLOW``, as a regular file with one link, owned
by the sandbox uid and under a size cap, so a background process cannot rewrite it late and a
symlink cannot make us read another file. It is then cross-checked: the suite name must be this
run's nonce; pytest's exit code must agree with the XML (0 with failures, or 1 without, is
suspicious); the failed+errors count on pytest's terminal summary line must equal the number of
``<failure>``/``<error>`` elements, and the line must be there at all when pytest says it
finished. Any disagreement gives ``incomplete`` with reason ``inconsistent_report``. Code running
inside the pytest process (a test, the code under test, a repository ``conftest.py`` in repo-test
runs) can still rewrite outcomes consistently through pytest's own hooks: no out-of-process check
can see that, which is why acceptance runs do not load the repository's conftest files.

Verdicts (status / reason):
  * all passed                                        -> passed / ''
  * failures or errors (including collection errors)  -> failed / failed
  * the deadline passed                               -> error / timeout
  * a resource limit was hit (CPU signal or CPU time at the limit, MemoryError, EFBIG/SIGXFSZ,
    fork failing with EAGAIN)                         -> error / resource_limit (+ limit_hit)
  * XML, exit code and summary disagree               -> incomplete / inconsistent_report
  * no JUnit XML                                      -> error / no_report
  * no isolation available (and no opt-in)            -> error / no_isolation (nothing ran)
  * killed by another signal, pytest internal/usage error -> error / crashed
  * exit code 5 (no tests) -> passed for repo tests, error / no_tests for acceptance tests.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from pydantic import BaseModel

from quorum.domain.models import Finding, Severity, VerificationReport, VerificationStatus
from quorum.sandbox.runner import (
    CommandResult,
    Confinement,
    IsolationUnavailable,
    ResourceLimits,
    SandboxUnavailable,
    chown_tree,
    interpreter_dirs,
    middle_truncate,
    run_command,
    sandbox_slot,
    scrubbed_env,
    tail_text,
)

ACCEPTANCE_DIR = ".quorum_acceptance"
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".nox",
    ".venv", ".venv-*", ".quorum", ACCEPTANCE_DIR,
)
MESSAGE_LIMIT = 2000
SUMMARY_LIMIT = 4000
OUTPUT_TAIL = 2000
OUTPUT_CAP_BYTES = 256_000  # per stream, head and tail kept: the log artifact
JUNIT_MAX_BYTES = 5_000_000
EXIT_NO_TESTS = 5

# Default limits for test runs: a dedicated uid makes RLIMIT_NPROC count this run only.
TEST_LIMITS = ResourceLimits(address_space_bytes=4 << 30, file_size_bytes=256 << 20, nproc=256)

_SUMMARY_LINE = re.compile(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+|no tests ran) in [\d.]+s\b.*$")
_SUMMARY_ITEM = re.compile(r"(\d+) ([a-z]+)")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------- pure


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


class JunitCounts(BaseModel):
    cases: int = 0
    problems: int = 0  # <failure> and <error> elements
    suite_names: list[str] = []


def junit_counts(xml_text: str) -> JunitCounts | None:
    """Test cases, failure/error elements and suite names in JUnit XML; None if it does not parse."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return None
    cases = list(root.iter("testcase"))
    return JunitCounts(
        cases=len(cases),
        problems=sum(1 for case in cases for child in case if child.tag in ("failure", "error")),
        suite_names=[s.get("name") or "" for s in root.iter("testsuite")],
    )


def terminal_counts(output: str) -> dict[str, int] | None:
    """The counts on pytest's last summary line ('1 failed, 2 passed in 0.1s'), or None without one."""
    for line in reversed(output.splitlines()):
        match = _SUMMARY_LINE.match(line.strip())
        if match:
            counts: dict[str, int] = {}
            for number, word in _SUMMARY_ITEM.findall(match.group(1)):
                key = {"error": "errors", "warning": "warnings"}.get(word, word)
                counts[key] = counts.get(key, 0) + int(number)
            return counts
    return None


def detect_limit(res: CommandResult, texts: str, cpu_limit_s: int | None) -> str:
    """Which resource limit ended or broke the run: 'cpu', 'memory', 'file_size', 'processes' or ''.

    ``texts`` is what the run reported (output and JUnit failure texts). A test can print these
    markers itself; that only turns one blocking verdict into another.
    """
    sig = res.signal_name
    if sig == "SIGXCPU" or (
        sig == "SIGKILL" and cpu_limit_s is not None and res.cpu_s is not None and res.cpu_s >= cpu_limit_s - 1
    ):
        return "cpu"
    if sig == "SIGXFSZ" or "[Errno 27] File too large" in texts:
        return "file_size"
    if re.search(r"\bMemoryError\b", texts):
        return "memory"
    if re.search(r"(BlockingIOError|OSError): \[Errno 11\] Resource temporarily unavailable", texts):
        return "processes"
    return ""


def _problem_texts(xml_text: str) -> str:
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return ""
    parts = []
    for case in root.iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                parts.append(f"{child.get('message') or ''}\n{child.text or ''}")
    return "\n".join(parts)


class Judgement(BaseModel):
    status: VerificationStatus
    reason: str
    summary: str
    findings: list[Finding] = []
    limit_hit: str = ""


def judge_run(
    res: CommandResult,
    xml_text: str,
    xml_problem: str,
    output: str,
    *,
    tool: str,
    acceptance: bool,
    nonce: str,
    cpu_limit_s: int | None,
    timeout_s: float,
) -> Judgement:
    """The verdict for one pytest run (see the module docstring). Pure."""
    findings: list[Finding] = []
    summary = ""
    status = VerificationStatus.error
    if xml_text:
        status, findings, summary = parse_junit_xml(xml_text, tool)

    def verdict(status: VerificationStatus, reason: str, text: str, limit: str = "") -> Judgement:
        joined = "\n".join(part for part in (text, summary if summary and summary not in text else "") if part)
        return Judgement(status=status, reason=reason, summary=joined, findings=findings, limit_hit=limit)

    if res.spawn_error:
        reason = "sandbox_error" if "sandbox" in res.spawn_error else "tool_error"
        hint = ""
        if "Permission denied" in res.spawn_error and res.isolation and not res.isolation.mount_namespace:
            hint = (
                " (the sandbox uid cannot reach the interpreter and no mount namespace was allowed to expose it:"
                " install Python where any user can read it, or allow namespaces)"
            )
        return verdict(VerificationStatus.error, reason, f"{tool}: could not start: {res.spawn_error}{hint}")
    if res.timed_out:
        return verdict(
            VerificationStatus.error, "timeout", f"{tool}: timed out after {timeout_s:g}s; every process killed"
        )
    if res.returncode != 0 or status != VerificationStatus.passed:
        limit = detect_limit(res, output + "\n" + _problem_texts(xml_text), cpu_limit_s)
        if limit:
            return verdict(
                VerificationStatus.error, "resource_limit",
                f"{tool}: stopped by the sandbox's {limit} limit; pytest {res.describe()}", limit,
            )
    if res.returncode < 0:
        # Killed by a signal that is not a limit we set (os.kill, the OOM killer).
        return verdict(VerificationStatus.error, "crashed", f"{tool}: pytest {res.describe()}")
    if xml_problem:
        return verdict(VerificationStatus.error, "no_report", f"{tool}: {xml_problem}; pytest {res.describe()}")

    counts = junit_counts(xml_text) if xml_text else None
    terminal = terminal_counts(output)
    if res.returncode == EXIT_NO_TESTS and (counts is None or counts.cases == 0):
        if acceptance:
            return verdict(VerificationStatus.error, "no_tests", f"{tool}: no acceptance tests collected")
        return verdict(VerificationStatus.passed, "", "no tests collected")
    if counts is None:
        if not xml_text:
            return verdict(
                VerificationStatus.error, "no_report", f"{tool}: no JUnit XML written; pytest {res.describe()}"
            )
        return verdict(VerificationStatus.error, "no_report", summary or f"{tool}: JUnit XML is not parseable")
    if res.returncode >= 3 and res.returncode != EXIT_NO_TESTS:
        # A pytest internal or usage error.
        return verdict(VerificationStatus.error, "crashed", f"{tool}: pytest {res.describe()}")

    mismatch = []
    if nonce and nonce not in counts.suite_names:
        mismatch.append(f"the XML's suite name is {counts.suite_names[:3]}, not this run's")
    if res.returncode == 0 and counts.problems:
        mismatch.append(f"pytest exited 0 but the XML records {counts.problems} failure(s)/error(s)")
    if res.returncode in (1, 2) and not counts.problems:
        mismatch.append(f"pytest {res.describe()} but the XML records no failure")
    if res.returncode == EXIT_NO_TESTS:
        mismatch.append(f"pytest said no tests were collected but the XML has {counts.cases} test case(s)")
    if terminal is None:
        mismatch.append("pytest's final summary line is missing from its output")
    else:
        bad = terminal.get("failed", 0) + terminal.get("errors", 0)
        if bad != counts.problems:
            mismatch.append(
                f"pytest's summary line counts {bad} failed/errors but the XML records {counts.problems}"
            )
    if mismatch:
        return verdict(
            VerificationStatus.incomplete, "inconsistent_report",
            f"{tool}: the test report cannot be trusted: " + "; ".join(mismatch),
        )
    if status == VerificationStatus.failed:
        return verdict(status, "failed", "")
    return verdict(status, "", "")


# -------------------------------------------------------------------------------------------- I/O


def read_report_file(path: Path, max_bytes: int, owner: int | None) -> tuple[str, str]:
    """(text, problem): a report file written by the sandbox, read without following links."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return "", ""
    except OSError as exc:
        return "", f"the JUnit XML could not be opened safely ({exc.strerror})"
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return "", "the JUnit XML is not a plain file (replaced by a link or special file)"
        if owner is not None and st.st_uid != owner:
            return "", f"the JUnit XML is owned by uid {st.st_uid}, not the sandbox's"
        if st.st_size > max_bytes:
            return "", f"the JUnit XML is {st.st_size} bytes, over the {max_bytes}-byte cap"
        return f.read(max_bytes + 1).decode("utf-8", errors="replace"), ""


def _rmtree(path: Path) -> None:
    """Remove a tree even if the tests made parts of it read-only; never chmod through a symlink."""

    def onerror(func, p, _exc):
        try:
            for target in (os.path.dirname(p), p):
                if not os.path.islink(target):
                    os.chmod(target, stat.S_IRWXU)
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


def _pytest_argv(
    python: str, copy: Path, junit: Path, conf: Path, nonce: str, acceptance: bool, source_roots: list[str] | None = None
) -> list[str]:
    common = [
        "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-o", "junit_family=xunit1",
        "-o", f"junit_suite_name={nonce}", f"--junitxml={junit}", f"--rootdir={copy}",
    ]
    if not acceptance:
        return [python, *common]
    ini = conf / "acceptance.ini"
    ini.write_text("[pytest]\n", encoding="utf-8")
    return [
        python, "-I", *common, "-c", str(ini), f"--confcutdir={copy / ACCEPTANCE_DIR}",
        "-o", "pythonpath=" + " ".join(str(copy / root) if root else str(copy) for root in (source_roots or [""])),
        "-o", "python_files=test_*.py *_test.py", ACCEPTANCE_DIR,
    ]


def run_pytest(
    workspace: Path,
    *,
    tool: str = "pytest",
    extra_tests: Path | None = None,
    timeout_s: float = 300,
    python: str = sys.executable,
    limits: ResourceLimits | None = None,
    network: bool = False,
    source_roots: list[str] | None = None,
) -> VerificationReport:
    """Run tests in a throwaway, sandboxed copy of ``workspace`` (see the module docstring).

    ``python``: quorum's interpreter by default; for a repository with its own environment, that
    environment's (acceptance runs then put ``source_roots`` of the copy on ``pythonpath``)."""
    started = time.monotonic()
    workspace = Path(workspace)
    acceptance = extra_tests is not None

    def report(status: VerificationStatus, summary: str, **kw) -> VerificationReport:
        return VerificationReport(
            tool=tool, status=status, summary=summary, duration_s=round(time.monotonic() - started, 3),
            raw_name=f"{tool}.xml", log_name=f"{tool}.log", **kw,
        )

    if not workspace.is_dir():
        return report(VerificationStatus.error, f"workspace not found: {workspace}", reason="tool_error")
    if extra_tests is not None and not Path(extra_tests).is_dir():
        return report(
            VerificationStatus.error, f"acceptance tests directory not found: {extra_tests}", reason="tool_error"
        )
    limits = limits or TEST_LIMITS.model_copy(update={"cpu_s": int(timeout_s) + 60})

    run = Path(tempfile.mkdtemp(prefix=f"quorum-{tool}-"))
    try:
        os.chmod(run, 0o711)  # the sandbox uid must reach its directories when there is no mount namespace
        copy, home, tmp, out, conf = (run / name for name in ("ws", "home", "tmp", "out", "conf"))
        for directory in (home, tmp, out, conf):
            directory.mkdir(mode=0o755)
        notes: list[str] = []
        try:
            shutil.copytree(workspace, copy, symlinks=True, ignore=COPY_IGNORE)
        except shutil.Error as exc:  # special files (fifos, sockets) that cannot be copied
            notes.append(f"some files were not copied: {str(exc)[:300]}")
        if extra_tests is not None:
            shutil.copytree(Path(extra_tests), copy / ACCEPTANCE_DIR, symlinks=True, ignore=COPY_IGNORE)
        nonce = f"quorum-{secrets.token_hex(8)}"
        junit = out / "junit.xml"
        argv = _pytest_argv(python, copy, junit, conf, nonce, acceptance, source_roots)
        env = scrubbed_env({"PYTHONPATH": str(copy), "TMPDIR": str(tmp)}, home=home)
        try:
            with sandbox_slot() as slot:
                if slot is not None:
                    for directory in (copy, home, tmp, out):
                        chown_tree(directory, slot.uid, slot.gid)
                confine = Confinement(
                    slot=slot, writable=[str(copy), str(home), str(tmp), str(out)],
                    # the launcher runs with our interpreter: its stdlib stays readable for another python
                    expose=[*interpreter_dirs(python), str(conf),
                            *([os.path.realpath(sys.base_prefix)] if python != sys.executable else [])],
                    network=network,
                )
                res = run_command(
                    argv, cwd=copy, timeout_s=timeout_s, env=env, output_cap_bytes=OUTPUT_CAP_BYTES,
                    limits=limits, confine=confine,
                )
                # Written by the sandbox uid (root mode) or by us: the owner of the directory it is in.
                owner = slot.uid if slot else os.lstat(out).st_uid
                xml_text, xml_problem = read_report_file(junit, JUNIT_MAX_BYTES, owner)
        except IsolationUnavailable as exc:
            return report(
                VerificationStatus.error, f"{tool}: {exc}", reason="no_isolation", network_isolated=False,
                sandbox={"mode": "none", "refused": True, "notes": [exc.plan.why]},
            )  # fmt: skip
        except SandboxUnavailable as exc:
            return report(VerificationStatus.error, f"{tool}: {exc}", reason="sandbox_error")

        # Paths inside the throwaway copy are shown repo-relative.
        output = (res.stdout + ("\n" + res.stderr if res.stderr.strip() else "")).replace(f"{copy}/", "")
        xml_text = xml_text.replace(f"{copy}/", "")
        judged = judge_run(
            res, xml_text, xml_problem, output, tool=tool, acceptance=acceptance, nonce=nonce,
            cpu_limit_s=limits.cpu_s, timeout_s=timeout_s,
        )
        isolation = res.isolation
        sandbox_line = isolation.describe() if isolation is not None else "sandbox: none"
        if isolation is None or isolation.unisolated or not isolation.network_isolated or not isolation.privilege_drop:
            notes.append(sandbox_line)
        summary = "\n".join([judged.summary, *notes])
        return report(
            judged.status, _with_output(summary, output), findings=judged.findings, reason=judged.reason,
            limit_hit=judged.limit_hit, raw=xml_text, log=output,
            network_isolated=bool(isolation and isolation.network_isolated),
            sandbox=isolation.model_dump() if isolation is not None else {},
        )
    finally:
        _rmtree(run)
