"""Gold validation of SWE-bench-style instances (what ``quorum validate MANIFEST`` runs per task).

Per instance: copy the base tree to a fresh workspace, apply ``test_patch``, derive and ensure the
environment (its own step: a failure is ``env_error`` with the build log, never a patch failure),
run the baseline on the FAIL_TO_PASS + PASS_TO_PASS node ids (re-running failures once), apply the
gold ``patch``, run again and judge. The report says: env ok, baseline failing count,
FAIL_TO_PASS failing before / passing after, PASS_TO_PASS kept, resolved.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from quorum.environments.baseline import baseline_cache_path, evaluate_patch, run_baseline
from quorum.environments.build import BuildLimits, EnvBuildResult, ensure_environment, using_environment
from quorum.environments.requirements import EnvOverrides, EnvironmentSpec, PythonInterpreter, SpecError, spec_for_tree
from quorum.environments.runner import Runner, run_local
from quorum.environments.swebench import Instance
from quorum.environments.testrun import run_tests

COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", ".tox", ".nox", ".venv", "*.pyc")


class ValidationReport(BaseModel):
    instance_id: str
    repo: str = ""
    outcome: Literal["resolved", "unresolved", "env_error", "invalid", "error"] = "error"
    env_key: str = ""
    env_status: str = ""
    env_s: float = 0.0
    env_error: str = ""
    env_log_path: str = ""
    python_version: str = ""
    baseline_failing: int = 0
    baseline_flaky: int = 0
    baseline_cached: bool = False
    f2p_total: int = 0
    f2p_fail_before: int = 0
    f2p_pass_after: int = 0
    p2p_total: int = 0
    p2p_ok: bool = False
    newly_failing: list[str] = Field(default_factory=list)
    f2p_still_failing: list[str] = Field(default_factory=list)
    f2p_passing_before: list[str] = Field(default_factory=list)
    baseline_s: float = 0.0
    after_s: float = 0.0
    notes: list[str] = Field(default_factory=list)

    @property
    def resolved(self) -> bool:
        return self.outcome == "resolved"


def apply_patch(workspace: str | os.PathLike[str], patch: str) -> tuple[bool, str]:
    """Apply a unified diff in ``workspace`` (``git apply``, falling back to ``patch -p1``)."""
    if not patch.strip():
        return True, "empty patch"
    res = subprocess.run(["git", "apply", "--whitespace=nowarn", "-p1", "-"], cwd=workspace, input=patch,
                         capture_output=True, text=True, timeout=120)
    if res.returncode == 0:
        return True, ""
    res2 = subprocess.run(["patch", "-p1", "--forward", "--batch"], cwd=workspace, input=patch,
                          capture_output=True, text=True, timeout=120)
    if res2.returncode == 0:
        return True, "applied with patch(1)"
    return False, (res.stderr + res2.stdout + res2.stderr)[-4000:]


def prepare_environment(
    tree: Path, pythons: list[PythonInterpreter], overrides: EnvOverrides, cache_dir: Path, *, uv: str,
    runner: Runner = run_local, limits: BuildLimits | None = None,
) -> tuple[EnvironmentSpec | None, EnvBuildResult]:
    """Spec + build, with a spec error reported as an env_error too."""
    try:
        spec = spec_for_tree(tree, pythons, overrides)
    except SpecError as exc:
        return None, EnvBuildResult(key="", status="env_error", error=f"spec: {exc}")
    return spec, ensure_environment(spec, cache_dir, uv=uv, tree=str(tree), runner=runner, limits=limits)


def validate_instance(
    inst: Instance,
    tree: str | os.PathLike[str],
    *,
    work_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    pythons: list[PythonInterpreter],
    overrides: EnvOverrides | None = None,
    uv: str,
    runner: Runner = run_local,
    per_test_timeout_s: float = 60,
    run_timeout_s: float = 900,
    limits: BuildLimits | None = None,
) -> ValidationReport:
    rep = ValidationReport(instance_id=inst.instance_id, repo=inst.repo, f2p_total=len(inst.FAIL_TO_PASS),
                           p2p_total=len(inst.PASS_TO_PASS))
    cache_dir = Path(cache_dir).resolve()
    ws = Path(work_dir).resolve() / inst.instance_id
    if ws.exists():
        shutil.rmtree(ws)
    ws.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(tree, ws, symlinks=True, ignore=COPY_IGNORE)
    try:
        ok, msg = apply_patch(ws, inst.test_patch)
        if not ok:
            rep.outcome, rep.notes = "invalid", [f"test_patch does not apply: {msg}"]
            return rep
        ovr = (overrides or EnvOverrides()).merged(inst.overrides())
        t0 = time.monotonic()
        spec, env = prepare_environment(ws, pythons, ovr, cache_dir, uv=uv, runner=runner, limits=limits)
        rep.env_s = round(time.monotonic() - t0, 3)
        rep.env_key, rep.env_status, rep.env_log_path = env.key, env.status, env.log_path
        if not env.ok or spec is None:
            rep.outcome, rep.env_error = "env_error", env.error
            return rep
        rep.python_version = spec.python_version
        ids = list(dict.fromkeys(inst.FAIL_TO_PASS + inst.PASS_TO_PASS))
        run = functools.partial(
            _run_ids, env.python, ws, source_roots=spec.source_roots,
            test_command=spec.test_command, timeout_s=run_timeout_s,
            per_test_timeout_s=per_test_timeout_s if spec.tool_available("pytest-timeout") else None,
            readable=env.readable_dirs, runner=runner, work_dir=str(cache_dir / ".runs"),
        )
        (cache_dir / ".runs").mkdir(parents=True, exist_ok=True)
        with using_environment(cache_dir, env.key):
            t1 = time.monotonic()
            digest = hashlib.sha256(inst.test_patch.encode()).hexdigest()
            base = run_baseline(run, ids, cache_path=baseline_cache_path(cache_dir, inst.base_commit, env.key, ids,
                                                                          spec.test_command, digest),
                                base_commit=inst.base_commit, env_key=env.key)
            rep.baseline_s = round(time.monotonic() - t1, 3)
            rep.baseline_cached = base.cached
            rep.baseline_failing = len(base.broken)
            rep.baseline_flaky = len(base.flaky)
            passed_before = set(base.passed) | set(base.flaky)
            rep.f2p_passing_before = [t for t in inst.FAIL_TO_PASS if t in passed_before]
            rep.f2p_fail_before = len(inst.FAIL_TO_PASS) - len(rep.f2p_passing_before)
            ok, msg = apply_patch(ws, inst.patch)
            if not ok:
                rep.outcome, rep.notes = "invalid", [f"gold patch does not apply: {msg}"]
                return rep
            t2 = time.monotonic()
            verdict, after = evaluate_patch(run, base, ids, inst.FAIL_TO_PASS, inst.PASS_TO_PASS)
            rep.after_s = round(time.monotonic() - t2, 3)
        rep.f2p_pass_after = len(verdict.f2p_passing)
        rep.f2p_still_failing = verdict.f2p_failing
        rep.newly_failing = verdict.newly_failing
        p2p_broken_before = [t for t in inst.PASS_TO_PASS if t in base.broken]
        rep.p2p_ok = not verdict.newly_failing and not p2p_broken_before
        if p2p_broken_before:
            rep.notes.append(f"PASS_TO_PASS failing at the baseline: {p2p_broken_before[:5]}")
        if after.aliases:
            rep.notes.append(f"{len(after.aliases)} id(s) matched by parameter index, e.g. "
                             f"{next(iter(after.aliases.items()))}")
        if after.via_parent:
            rep.notes.append(f"{len(after.via_parent)} id(s) pytest could not address, run through their function")
        if after.not_found:
            rep.notes.append(f"{len(after.not_found)} id(s) not collectable: {after.not_found[:3]}")
        if verdict.ignored_flaky:
            rep.notes.append(f"flaky: {verdict.ignored_flaky[:5]}")
        if verdict.status == "error":
            rep.outcome = "error"
            rep.notes.append(verdict.error)
        elif rep.f2p_passing_before:
            rep.outcome = "invalid"
            rep.notes.append(f"FAIL_TO_PASS passing without the fix: {rep.f2p_passing_before[:5]}")
        else:
            rep.outcome = "resolved" if verdict.resolved and rep.p2p_ok else "unresolved"
        return rep
    finally:
        shutil.rmtree(ws, ignore_errors=True)


def _run_ids(python, ws, node_ids, **kw):
    return run_tests(python, ws, node_ids=node_ids, **kw)


# ---------------------------------------------------------------------------------------------
# command line: python -m quorum.environments.validate INSTANCES.jsonl


def main(argv: list[str] | None = None) -> int:
    """Gold-validate every instance of a SWE-bench-style file; one line per instance, JSON report."""
    import argparse
    import json

    from quorum.environments.requirements import discover_pythons
    from quorum.environments.swebench import load_instances

    ap = argparse.ArgumentParser(prog="python -m quorum.environments.validate")
    ap.add_argument("instances", help="instances .jsonl; each needs a tree: 'snapshot' (relative to the file) or --trees")
    ap.add_argument("--trees", help="directory holding <instance_id>/repo")
    ap.add_argument("--cache", required=True, help="environment cache directory")
    ap.add_argument("--overrides", help="JSON: {\"repos\": {repo: EnvOverrides}, \"instances\": {id: EnvOverrides}}")
    ap.add_argument("--uv", default=shutil.which("uv"))
    ap.add_argument("--per-test-timeout", type=float, default=60)
    ap.add_argument("--report", help="write the reports here (JSON)")
    args = ap.parse_args(argv)
    base = Path(args.instances).resolve().parent
    cfg = json.loads(Path(args.overrides).read_text()) if args.overrides else {}
    repos = {k: EnvOverrides.model_validate(v) for k, v in cfg.get("repos", {}).items()}
    per_inst = {k: EnvOverrides.model_validate(v) for k, v in cfg.get("instances", {}).items()}
    pythons = discover_pythons()
    cache = Path(args.cache)
    reports = []
    for inst in load_instances(args.instances):
        tree = (Path(args.trees) / inst.instance_id / "repo") if args.trees else base / str(inst.model_extra.get("snapshot"))
        ovr = repos.get(inst.repo, EnvOverrides()).merged(per_inst.get(inst.instance_id))
        rep = validate_instance(inst, tree, work_dir=cache / "work", cache_dir=cache, pythons=pythons, overrides=ovr,
                                uv=args.uv, per_test_timeout_s=args.per_test_timeout)
        reports.append(rep)
        print(f"{rep.instance_id}: {rep.outcome}; env {'ok' if rep.env_status != 'env_error' else 'ERROR'} "
              f"({rep.env_status}, {rep.env_s:.1f}s); baseline failing {rep.baseline_failing}; "
              f"FAIL_TO_PASS fail-before {rep.f2p_fail_before}/{rep.f2p_total}, pass-after "
              f"{rep.f2p_pass_after}/{rep.f2p_total}; resolved {rep.resolved}"
              + (f"; {rep.env_error}" if rep.env_error else ""), flush=True)
    if args.report:
        Path(args.report).write_text(json.dumps([r.model_dump() for r in reports], indent=1))
    return 0 if all(r.resolved for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
