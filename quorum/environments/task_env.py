"""A task's test environment in the pipeline: prepare it, take the baselines, verify rounds and acceptance.

What the Prefect tasks in ``quorum/tasks/environment.py`` call (I/O), and the pure translations
to quorum's verdicts (:func:`judged_report`, :func:`summary_of`).

* :func:`prepare` derives the environment from the repository's declarations plus the task's
  additions and ensures it (built in the sandbox, or reused from the cache). A repository that
  declares no dependency (the examples) gets status ``none``: its tests run exactly as before,
  with ``quorum.verify.pytest_runner`` and quorum's interpreter. A build that fails is ``env_error``,
  with the log: never the patch's fault.
* :func:`take_baselines` runs the repository's tests on the unmodified base (its whole suite, within
  the time budget) and, for a SWE-bench instance, FAIL_TO_PASS + PASS_TO_PASS on base + ``test_patch``;
  failures are re-run once (failed-then-passed is flaky). Cached per base + environment key + selection.
* :func:`verify_round` runs the tests covering the changed files first, then the rest while the
  budget lasts, in a throwaway copy, inside the sandbox, with the environment's interpreter; a test
  is blamed only if it passed at the baseline and fails now (confirmed by one re-run).
* :func:`verify_instance` is a SWE-bench instance's acceptance: ``test_patch`` applied after the
  model's patch, judged by FAIL_TO_PASS / PASS_TO_PASS node ids against the acceptance baseline.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from quorum.domain.manifest import InstanceTests, TaskEnvironment
from quorum.domain.models import (
    EnvironmentSummary,
    Finding,
    Severity,
    TestsJudged,
    VerificationReport,
    VerificationStatus,
)
from quorum.environments.baseline import Baseline, Verdict, baseline_cache_path, judge, run_baseline
from quorum.environments.build import BuildLimits, ensure_environment, using_environment
from quorum.environments.pep import requirement_name
from quorum.environments.requirements import (
    DEFAULT_TOOL_REQUIREMENTS,
    EnvironmentSpec,
    EnvOverrides,
    PythonInterpreter,
    SpecError,
    discover_pythons,
    spec_for_tree,
)
from quorum.environments.sandboxed import sandboxed_build, test_runner
from quorum.environments.testrun import TestRunResult, run_scoped, run_tests
from quorum.sandbox.isolation import current_plan, verify_deployment
from quorum.sandbox.runner import SandboxUnavailable
from quorum.settings import settings

COPY_IGNORE = shutil.ignore_patterns(
    ".git", "__pycache__", ".pytest_cache", ".tox", ".nox", ".venv", ".venv-*", ".quorum", "*.pyc"
)
PER_TEST_TIMEOUT_S = 120
FINDINGS_SHOWN = 20


class PreparedEnvironment(BaseModel):
    """What the pipeline's tasks pass along: the environment, how to run tests in it, its baselines."""

    status: Literal["none", "built", "reused", "env_error"]
    key: str = ""
    cache_dir: str = ""
    python: str = Field(default="", description="The environment's interpreter.")
    python_version: str = ""
    readable_dirs: list[str] = Field(default_factory=list)
    source_roots: list[str] = Field(default_factory=lambda: [""])
    test_command: list[str] | None = None
    per_test_timeout_s: float | None = None
    duration_s: float = 0.0
    error: str = ""
    log: str = Field(default="", repr=False)
    sources: list[str] = Field(default_factory=list)
    base: str = Field(default="", description="The base commit (git sources) or the digest of the base's files.")
    baseline: Baseline | None = None
    acceptance_baseline: Baseline | None = None
    held_out_files: list[str] = Field(
        default_factory=list,
        description="Test files an instance's test_patch changes: judged by its acceptance, not by the rounds "
        "(the fix may rightly break their old version).",
    )

    @property
    def active(self) -> bool:
        """Tests run in this environment (not the no-dependency path, not a failed build)."""
        return self.status in ("built", "reused")


# ------------------------------------------------------------------------------------------- pure


def overrides_for(environment: TaskEnvironment) -> EnvOverrides:
    return EnvOverrides(python_deps=environment.python_deps, python=environment.python,
                        test_command=environment.test_command)  # fmt: skip


def declares_dependencies(spec: EnvironmentSpec) -> bool:
    """False when all an environment would hold is the runner's own tools (pytest, pytest-timeout)."""
    tools = {requirement_name(t) for t in DEFAULT_TOOL_REQUIREMENTS}
    return spec.install_project != "none" or any(requirement_name(r) not in tools for r in spec.requirements)


def summary_of(env: PreparedEnvironment, instance: InstanceTests | None = None) -> EnvironmentSummary:
    """The environment and its baselines as result.json shows them."""
    out = EnvironmentSummary(
        status=env.status, key=env.key, python_version=env.python_version, duration_s=round(env.duration_s, 3),
        error=env.error, sources=env.sources,
    )  # fmt: skip
    if env.baseline is not None:
        out.baseline_failing = sorted(env.baseline.broken)
        out.baseline_flaky = list(env.baseline.flaky)
        out.baseline_passing = len(env.baseline.passed)
        out.baseline_cached = env.baseline.cached
    if instance is not None:
        out.f2p_total, out.p2p_total = len(instance.fail_to_pass), len(instance.pass_to_pass)
        if env.acceptance_baseline is not None:
            ok_before = set(env.acceptance_baseline.passed) | set(env.acceptance_baseline.flaky)
            out.f2p_failing_before = sum(1 for t in instance.fail_to_pass if t not in ok_before)
            out.p2p_failing_before = [t for t in instance.pass_to_pass if t in env.acceptance_baseline.broken]
    return out


def checked_tests(
    baseline: Baseline, after: TestRunResult, ran_files: list[str] | None, held_out: list[str] | None = None
) -> list[str]:
    """What a round is judged on: every test that reported, plus every test that passed at the
    baseline in a file that ran (``None``: every file) and did not report now (its file stopped
    importing, the run crashed): those are blamed. Tests of files the budget left out are not, nor
    those of ``held_out`` files (an instance's test_patch updates them; its acceptance judges). Pure."""
    ran = None if ran_files is None else set(ran_files)
    kept = {t for t in baseline.passed if ran is None or t.split("::", 1)[0] in ran}
    skip = set(held_out or [])
    return sorted(t for t in set(after.outcomes) | kept if t.split("::", 1)[0] not in skip)


def suite_does_not_run(first: TestRunResult) -> str:
    """Why the repository's suite does not run at all on the unmodified base ('' when it does): pytest
    ended without a report and without a single outcome (a conftest or plugin that cannot import in
    this environment, say), and not because the time budget ran out. Pure."""
    if first.report_found or first.outcomes or first.timed_out:
        return ""
    tail = " ".join(line.strip() for line in first.output_tail.strip().splitlines()[-3:])
    return (f"the repository's tests do not run on the unmodified base in this environment ({first.summary()}, "
            f"pytest exit {first.returncode}): {tail}")[:1000]


def patched_files(patch: str) -> list[str]:
    """Files a unified diff changes (the b/ side of its `diff --git` lines). Pure."""
    return sorted({m.group(1) for m in re.finditer(r"^diff --git a/\S+ b/(\S+)$", patch, re.M)})


def _findings(tool: str, verdict: Verdict, after: TestRunResult) -> list[Finding]:
    blamed = [*verdict.newly_failing, *verdict.f2p_failing]
    out = []
    for nodeid in blamed[:FINDINGS_SHOWN]:
        outcome = after.outcomes.get(nodeid)
        why = outcome.message if outcome and outcome.message else after.status(nodeid)
        kind = "fail_to_pass" if nodeid in verdict.f2p_failing else "newly_failing"
        out.append(Finding(source=tool, rule=kind, severity=Severity.high, file=nodeid.split("::", 1)[0],
                           message=f"{nodeid}: {why}"[:2000]))  # fmt: skip
    return out


def judged_report(
    tool: str, env: PreparedEnvironment, verdict: Verdict, after: TestRunResult, *, duration_s: float,
    scope: TestsJudged | None = None, isolation_mode: str = "",
) -> VerificationReport:
    """A judged run as a VerificationReport: ``passed`` when nothing that passed at the baseline fails
    now and every FAIL_TO_PASS test passes; the summary separates what the patch broke from what
    was already broken or flaky (reviewers and the next round see it). Pure."""
    tests = (scope or TestsJudged()).model_copy(update=dict(
        environment=env.key, newly_failing=verdict.newly_failing, preexisting_failing=verdict.ignored_preexisting,
        flaky=verdict.ignored_flaky, fail_to_pass_passing=verdict.f2p_passing,
        fail_to_pass_failing=verdict.f2p_failing, pass_to_pass_checked=verdict.p2p_checked, counts=after.counts(),
    ))  # fmt: skip
    lines = [f"{tool}: {after.summary()} (repository environment {env.key[:8]}, python {env.python_version})"]
    if verdict.newly_failing:
        lines.append(f"NEWLY FAILING (passed at the baseline, blamed on the patch): {len(verdict.newly_failing)}")
        lines += [f"- {t}" for t in verdict.newly_failing[:10]]
    if verdict.f2p_failing:
        lines.append(f"FAIL_TO_PASS still failing: {len(verdict.f2p_failing)}")
        lines += [f"- {t}" for t in verdict.f2p_failing[:10]]
    if verdict.f2p_passing:
        lines.append(f"FAIL_TO_PASS passing: {len(verdict.f2p_passing)}/{len(verdict.f2p_passing) + len(verdict.f2p_failing)}")
    if verdict.ignored_preexisting:
        lines.append(f"failing at the baseline too (not blamed): {len(verdict.ignored_preexisting)}: "
                     + ", ".join(verdict.ignored_preexisting[:5]))  # fmt: skip
    if verdict.ignored_flaky:
        lines.append(f"flaky (not blamed): {len(verdict.ignored_flaky)}: " + ", ".join(verdict.ignored_flaky[:5]))
    if scope is not None and (scope.covering_files or scope.not_run_files or scope.ran_files):
        lines.append(f"tests run: {len(scope.covering_files)} file(s) covering the change first, "
                     f"{len(scope.ran_files)} file(s) in all")  # fmt: skip
        if scope.not_run_files:
            lines.append(f"NOT run (time budget): {len(scope.not_run_files)} file(s): "
                         + ", ".join(scope.not_run_files[:10]))  # fmt: skip
    if scope is not None and scope.held_out_files:
        lines.append(f"left to the acceptance (the instance's test_patch updates them): {len(scope.held_out_files)} "
                     "file(s): " + ", ".join(scope.held_out_files[:10]))  # fmt: skip
    if scope is not None and scope.rerun:
        lines.append(f"newly failing tests were re-run before blaming: {scope.rerun}")
    if verdict.status == "error":
        status, reason = VerificationStatus.error, "no_report"
        lines.append(f"{tool}: {verdict.error}")
    elif after.timed_out and not after.outcomes:
        status, reason = VerificationStatus.error, "timeout"
    elif verdict.status == "unresolved":
        status, reason = VerificationStatus.failed, "failed"
    else:
        status, reason = VerificationStatus.passed, ""
    raw = after.model_dump_json(indent=1, exclude={"output_tail"})
    return VerificationReport(
        tool=tool, status=status, reason=reason, summary="\n".join(lines)[:4000],
        findings=_findings(tool, verdict, after), duration_s=round(duration_s, 3), raw=raw, raw_name=f"{tool}.json",
        log=after.output_tail, log_name=f"{tool}.log", network_isolated=isolation_mode in ("root", "userns"),
        sandbox={"mode": isolation_mode}, tests=tests,
    )  # fmt: skip


def env_error_report(tool: str, env: PreparedEnvironment) -> VerificationReport:
    return VerificationReport(
        tool=tool, status=VerificationStatus.error, reason="env_error",
        summary=f"{tool}: env_error: the repository's test environment could not be built: {env.error}"[:4000],
        log=env.log[-20000:], log_name=f"{tool}.log",
    )  # fmt: skip


# -------------------------------------------------------------------------------------------- I/O


@functools.lru_cache(maxsize=1)
def _pythons() -> tuple[PythonInterpreter, ...]:
    return tuple(discover_pythons())


def cache_dir() -> Path:
    path = Path(os.path.expanduser(settings().env_cache)).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def uv_binary() -> str | None:
    """QUORUM_UV, else the checkout's .venv-tools/bin/uv (the Makefile's), else uv on PATH."""
    configured = settings().uv
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    tools = Path(__file__).resolve().parents[2] / ".venv-tools" / "bin" / "uv"
    if os.access(tools, os.X_OK):
        return str(tools)
    return shutil.which("uv")


def base_of(workspace: str) -> str:
    """The base commit of a git workspace, with a digest of its tracked files (copies are committed anew)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=workspace, capture_output=True, text=True, check=False)
    tree = subprocess.run(["git", "rev-parse", "HEAD^{tree}"], cwd=workspace, capture_output=True, text=True, check=False)
    return (tree.stdout.strip() or head.stdout.strip() or "nocommit")[:40]


def prepare(workspace: str, environment: TaskEnvironment, *, force: bool = False) -> PreparedEnvironment:
    """The environment for the repository in ``workspace`` (see the module docstring)."""
    try:
        spec = spec_for_tree(workspace, list(_pythons()), overrides_for(environment))
    except SpecError as exc:
        return PreparedEnvironment(status="env_error", error=f"spec: {exc}")
    if not force and environment.empty and not declares_dependencies(spec):
        return PreparedEnvironment(status="none", sources=spec.sources)
    if verify_deployment() is not None:
        return PreparedEnvironment(status="env_error", error=(
            "QUORUM_VERIFY_DEPLOYMENT is set, but the sandbox work pool does not build repository environments "
            "yet; run this task on a worker that verifies locally"))  # fmt: skip
    uv = uv_binary()
    if uv is None:
        return PreparedEnvironment(status="env_error", error="no uv binary: set QUORUM_UV or run `make setup`")
    cache = cache_dir()
    limits = BuildLimits(timeout_s=settings().env_build_timeout_s)
    started = time.monotonic()  # the environment's own time: build (or wait for one), or reuse
    try:
        built = ensure_environment(spec, cache, uv=uv, tree=workspace, limits=limits, runner_factory=sandboxed_build)
    except SandboxUnavailable as exc:  # includes IsolationUnavailable: the build's code never ran
        return PreparedEnvironment(status="env_error", error=f"build not run: {exc}", sources=spec.sources)
    common = dict(key=built.key, cache_dir=str(cache), duration_s=time.monotonic() - started, sources=spec.sources,
                  python_version=spec.python_version)  # fmt: skip
    if not built.ok:
        return PreparedEnvironment(status="env_error", error=built.error, log=built.log, **common)
    return PreparedEnvironment(
        status=built.status, python=built.python, readable_dirs=built.readable_dirs, source_roots=spec.source_roots,
        test_command=spec.test_command, log=built.log,
        per_test_timeout_s=PER_TEST_TIMEOUT_S if spec.tool_available("pytest-timeout") else None, **common,
    )  # fmt: skip


def apply_patch(workspace: Path, patch: str) -> str:
    """Apply a unified diff with git (held-out test patches: trusted input). '' or the error."""
    if not patch.strip():
        return ""
    done = subprocess.run(["git", "apply", "--whitespace=nowarn", "-p1", "-"], cwd=workspace, input=patch,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    return "" if done.returncode == 0 else (done.stderr or done.stdout)[-2000:]


def _copy(workspace: str, into: Path) -> Path:
    copy = into / "ws"
    shutil.copytree(workspace, copy, symlinks=True, ignore=COPY_IGNORE)
    os.chmod(into, 0o711)
    return copy


def _runner_kw(env: PreparedEnvironment, timeout_s: float) -> dict:
    runs = Path(env.cache_dir) / ".runs"
    runs.mkdir(parents=True, exist_ok=True)
    os.chmod(runs, 0o711)
    return dict(source_roots=env.source_roots, test_command=env.test_command, timeout_s=timeout_s,
                per_test_timeout_s=env.per_test_timeout_s, readable=env.readable_dirs, runner=test_runner(),
                work_dir=str(runs))  # fmt: skip


def _ids_runner(env: PreparedEnvironment, copy: Path, timeout_s: float):
    kw = _runner_kw(env, timeout_s)

    def run(node_ids: list[str] | None) -> TestRunResult:
        return run_tests(env.python, copy, node_ids=node_ids, **kw)

    return run


def take_baselines(
    env: PreparedEnvironment, workspace: str, instance: InstanceTests | None, *, budget_s: float | None = None
) -> PreparedEnvironment:
    """The baseline of the repository's suite on the base and, for an instance, the acceptance baseline."""
    if not env.active:
        return env
    budget_s = budget_s or settings().test_budget_s
    base = env.base or base_of(workspace)
    cache = Path(env.cache_dir)
    with using_environment(cache, env.key), tempfile.TemporaryDirectory(prefix="quorum-baseline-") as tmp:
        copy = _copy(workspace, Path(tmp))
        runs: list[TestRunResult] = []
        run_suite = _ids_runner(env, copy, budget_s)

        def recorded(node_ids: list[str] | None) -> TestRunResult:
            runs.append(run_suite(node_ids))
            return runs[-1]

        suite = run_baseline(
            recorded, None,
            cache_path=baseline_cache_path(cache, base, env.key, None, env.test_command), base_commit=base, env_key=env.key,
        )  # fmt: skip
        problem = suite_does_not_run(runs[0]) if runs else ""
        if problem:  # the environment cannot run the repository's tests: no patch can be judged in it
            return env.model_copy(update={
                "status": "env_error", "baseline": suite, "error": problem,
                "log": f"{env.log}\n--- the suite on the unmodified base ---\n{runs[0].output_tail}",
            })  # fmt: skip
        accept = None
        if instance is not None:
            shutil.rmtree(copy)
            copy = _copy(workspace, Path(tmp))
            problem = apply_patch(copy, instance.test_patch)
            if problem:
                return env.model_copy(update={"status": "env_error", "error": f"test_patch does not apply: {problem}"})
            ids = list(dict.fromkeys(instance.fail_to_pass + instance.pass_to_pass))
            digest = hashlib.sha256(instance.test_patch.encode()).hexdigest()
            accept = run_baseline(
                _ids_runner(env, copy, budget_s), ids,
                cache_path=baseline_cache_path(cache, base, env.key, ids, env.test_command, digest),
                base_commit=base, env_key=env.key,
            )  # fmt: skip
    held_out = patched_files(instance.test_patch) if instance is not None else []
    return env.model_copy(update={"base": base, "baseline": suite, "acceptance_baseline": accept,
                                  "held_out_files": held_out})


def verify_round(env: PreparedEnvironment, workspace: str, changed_files: list[str], *,
                 budget_s: float | None = None) -> VerificationReport:  # fmt: skip
    """The repository's tests on the patched workspace: covering tests first, judged against the baseline."""
    if not env.active:
        return env_error_report("pytest", env)
    started = time.monotonic()
    budget_s = budget_s or settings().test_budget_s
    mode = current_plan().mode
    with using_environment(Path(env.cache_dir), env.key), tempfile.TemporaryDirectory(prefix="quorum-tests-") as tmp:
        copy = _copy(workspace, Path(tmp))
        kw = _runner_kw(env, budget_s)
        kw.pop("timeout_s")
        if env.test_command:  # the task's own command decides what runs: no scoping
            scoped = None
            after = run_tests(env.python, copy, timeout_s=budget_s, **kw)
        else:
            scoped = run_scoped(env.python, copy, changed_files=changed_files, budget_s=budget_s, **kw)
            after = scoped.result
        baseline = env.baseline or Baseline()
        checked = checked_tests(baseline, after, None if scoped is None else scoped.ran_files, env.held_out_files)
        first = judge(baseline, after, pass_to_pass=checked)
        again = sorted(set(first.newly_failing))
        rerun, how = None, ""
        if again:
            # Confirmed the baseline's way before blaming. The baseline ran the whole suite in one
            # process; a split run (covering files first, then chunks) can fail a test that needs what
            # ran before it (click's test_echo_via_pager reads click._termui_impl, which only an
            # earlier test file imports).
            whole = scoped is not None and scoped.runs > 1
            rerun = run_tests(env.python, copy, node_ids=None if whole else again, timeout_s=budget_s, **kw)
            how = ("the whole suite in one process, as at the baseline" if whole
                   else f"{len(again)} test(s) by node id")  # fmt: skip
        verdict = judge(baseline, after, pass_to_pass=checked, after_rerun=rerun)
    scope = TestsJudged(held_out_files=env.held_out_files, rerun=how)
    if scoped is not None:
        scope = scope.model_copy(update=dict(covering_files=scoped.covering_files, ran_files=scoped.ran_files,
                                             not_run_files=scoped.not_run_files))  # fmt: skip
    return judged_report("pytest", env, verdict, after, duration_s=time.monotonic() - started, scope=scope,
                         isolation_mode=mode)  # fmt: skip


def verify_instance(env: PreparedEnvironment, workspace: str, instance: InstanceTests, *,
                    budget_s: float | None = None) -> VerificationReport:  # fmt: skip
    """A SWE-bench instance's acceptance: test_patch after the model's patch, FAIL_TO_PASS / PASS_TO_PASS."""
    if not env.active:
        return env_error_report("acceptance", env)
    started = time.monotonic()
    budget_s = budget_s or settings().test_budget_s
    ids = list(dict.fromkeys(instance.fail_to_pass + instance.pass_to_pass))
    with using_environment(Path(env.cache_dir), env.key), tempfile.TemporaryDirectory(prefix="quorum-accept-") as tmp:
        copy = _copy(workspace, Path(tmp))
        problem = apply_patch(copy, instance.test_patch)
        if problem:
            return VerificationReport(
                tool="acceptance", status=VerificationStatus.failed, reason="failed",
                summary=f"acceptance: the instance's test_patch does not apply after the patch: {problem}"[:4000],
            )  # fmt: skip
        run = _ids_runner(env, copy, budget_s)
        after = run(ids)
        baseline = env.acceptance_baseline or Baseline()
        first = judge(baseline, after, instance.fail_to_pass, instance.pass_to_pass)
        again = sorted(set(first.newly_failing) | set(first.f2p_failing))
        rerun = run(again) if again and first.status != "error" else None
        verdict = judge(baseline, after, instance.fail_to_pass, instance.pass_to_pass, after_rerun=rerun)
    return judged_report("acceptance", env, verdict, after, duration_s=time.monotonic() - started,
                         isolation_mode=current_plan().mode)  # fmt: skip
