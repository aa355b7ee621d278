"""Baseline of the unmodified base, and judging a patch against it.

:func:`compute_baseline` (pure): a first run plus a re-run of what failed -> :class:`Baseline`
(failing, erroring, flaky = failed then passed, passed). :func:`judge` (pure): baseline + the run
after the patch (+ an optional re-run of what newly failed) + optional FAIL_TO_PASS /
PASS_TO_PASS lists -> :class:`Verdict`. A patch is blamed only for tests that passed at the
baseline and fail after it (confirmed by a re-run when one is given) and for FAIL_TO_PASS tests
that still do not pass; failures that were there before, and flaky tests, are listed but never
blamed.

:func:`run_baseline` and :func:`evaluate_patch` do the runs through a ``run(node_ids)`` callable
(e.g. ``functools.partial(testrun.run_tests, python, workspace, ...)`` with ``node_ids`` bound
by keyword), and cache baselines in a JSON file keyed by base commit + environment + selection.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, Field

from quorum.environments.testrun import TestRunResult

PASSING = ("passed", "xfailed", "skipped")
BROKEN = ("failed", "error", "missing", "not_found")

RunFn = Callable[[list[str] | None], TestRunResult]


class Baseline(BaseModel):
    passed: list[str] = Field(default_factory=list, description="Passed (or skipped/xfailed) on the first run.")
    failing: list[str] = Field(default_factory=list, description="Failed twice.")
    erroring: list[str] = Field(default_factory=list, description="Errored (or never reported) twice.")
    flaky: list[str] = Field(default_factory=list, description="Failed or errored, then passed on the re-run.")
    node_ids: list[str] | None = Field(default=None, description="The selection (None: the whole suite).")
    base_commit: str = ""
    env_key: str = ""
    duration_s: float = 0.0
    first_run: str = Field(default="", description="Summary of the first run.")
    cached: bool = False

    @property
    def broken(self) -> set[str]:
        return set(self.failing) | set(self.erroring)

    def summary(self) -> str:
        return (f"baseline: {len(self.passed)} passing, {len(self.failing)} failing, {len(self.erroring)} erroring, "
                f"{len(self.flaky)} flaky")


def compute_baseline(first: TestRunResult, rerun: TestRunResult | None = None) -> Baseline:
    """Pure. Tests bad on the first run and passing on the re-run are flaky."""
    bad_first = set(first.ids_with("failed", "error")) | set(first.missing) | set(first.not_found)
    flaky, failing, erroring = [], [], []
    for nid in sorted(bad_first):
        if rerun is not None and rerun.status(nid) in PASSING:
            flaky.append(nid)
        elif first.status(nid) == "failed":
            failing.append(nid)
        else:
            erroring.append(nid)
    return Baseline(passed=first.passed, failing=failing, erroring=erroring, flaky=flaky,
                    node_ids=first.requested, first_run=first.summary())


class Verdict(BaseModel):
    status: Literal["resolved", "unresolved", "env_error", "error"]
    f2p_passing: list[str] = Field(default_factory=list)
    f2p_failing: list[str] = Field(default_factory=list, description="FAIL_TO_PASS tests that still do not pass.")
    newly_failing: list[str] = Field(default_factory=list, description="Passed at the baseline, fail now (blamed).")
    ignored_preexisting: list[str] = Field(default_factory=list, description="Failing at the baseline too.")
    ignored_flaky: list[str] = Field(default_factory=list, description="Flaky at the baseline, or passed on the re-run.")
    p2p_checked: int = 0
    collection_errors: list[str] = Field(default_factory=list)
    error: str = ""
    log: str = ""

    @property
    def resolved(self) -> bool:
        return self.status == "resolved"

    def summary(self) -> str:
        if self.status in ("env_error", "error"):
            return f"{self.status}: {self.error}"
        parts = [self.status]
        if self.f2p_passing or self.f2p_failing:
            parts.append(f"FAIL_TO_PASS {len(self.f2p_passing)}/{len(self.f2p_passing) + len(self.f2p_failing)} passing")
        parts.append(f"{len(self.newly_failing)} newly failing")
        if self.ignored_preexisting:
            parts.append(f"{len(self.ignored_preexisting)} failing before too (not blamed)")
        if self.ignored_flaky:
            parts.append(f"{len(self.ignored_flaky)} flaky (not blamed)")
        return ", ".join(parts)


def env_error_verdict(error: str, log: str = "") -> Verdict:
    return Verdict(status="env_error", error=error, log=log[-20000:])


def judge(
    baseline: Baseline,
    after: TestRunResult,
    fail_to_pass: list[str] | None = None,
    pass_to_pass: list[str] | None = None,
    after_rerun: TestRunResult | None = None,
) -> Verdict:
    """Pure. Without PASS_TO_PASS every test of the after-run is checked against the baseline
    (a test absent from the baseline -- e.g. one the patch added -- is blamed when it fails), and,
    when both runs had the same selection, every test that passed at the baseline must have passed
    again (one that did not report -- its file no longer imports -- is blamed)."""
    f2p = list(fail_to_pass or [])
    if not after.report_found and not after.outcomes and not after.not_found:
        return Verdict(status="error", error=after.error or "the test run produced no report",
                       f2p_failing=f2p, log=after.output_tail)
    v = Verdict(status="resolved", collection_errors=list(after.collection_errors))
    for nid in f2p:
        if after.status(nid) in ("passed", "xfailed"):
            v.f2p_passing.append(nid)
        elif after_rerun is not None and after_rerun.status(nid) in ("passed", "xfailed"):
            v.f2p_passing.append(nid)
            v.ignored_flaky.append(nid)
        else:
            v.f2p_failing.append(nid)
    f2p_set = set(f2p)
    if pass_to_pass is not None:
        candidates = [n for n in pass_to_pass if n not in f2p_set]
    else:
        seen = set(after.outcomes) | set(after.missing) | set(after.not_found)
        same_selection = sorted(after.requested or []) == sorted(baseline.node_ids or [])
        if same_selection:  # what passed before and did not run now (collection error, crash) is broken too
            seen |= set(baseline.passed)
        candidates = sorted(seen - f2p_set)
    v.p2p_checked = len(candidates)
    flaky_base = set(baseline.flaky)
    broken_base = baseline.broken
    for nid in candidates:
        if after.status(nid) not in BROKEN:
            continue
        if nid in flaky_base:
            v.ignored_flaky.append(nid)
        elif nid in broken_base:
            v.ignored_preexisting.append(nid)
        elif after_rerun is not None and after_rerun.status(nid) in PASSING:
            v.ignored_flaky.append(nid)
        else:
            v.newly_failing.append(nid)
    if v.f2p_failing or v.newly_failing:
        v.status = "unresolved"
    if after.timed_out:
        v.error = "the test run timed out"
    return v


# --------------------------------------------------------------------------------------------
# runs


def selection_digest(node_ids: list[str] | None, test_command: list[str] | None = None) -> str:
    blob = json.dumps({"ids": sorted(node_ids) if node_ids else None, "cmd": test_command})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def baseline_cache_path(cache_dir: str | os.PathLike[str], base_commit: str, env_key: str,
                        node_ids: list[str] | None, test_command: list[str] | None = None,
                        workspace_digest: str = "") -> Path:
    """``workspace_digest``: when the base tree is not exactly ``base_commit`` (e.g. a test patch was
    applied), a digest of what was added, so the two never share a cached baseline."""
    name = f"{base_commit or 'nocommit'}-{env_key}-{selection_digest(node_ids, test_command)}"
    if workspace_digest:
        name += f"-{workspace_digest[:16]}"
    return Path(cache_dir) / "baselines" / f"{name}.json"


def run_baseline(run: RunFn, node_ids: list[str] | None = None, *, cache_path: str | os.PathLike[str] | None = None,
                 base_commit: str = "", env_key: str = "") -> Baseline:
    """Run once, re-run what failed once; cached in ``cache_path`` when given."""
    if cache_path is not None and Path(cache_path).is_file():
        b = Baseline.model_validate_json(Path(cache_path).read_text())
        b.cached = True
        return b
    started = time.monotonic()
    first = run(node_ids)
    bad = sorted(set(first.ids_with("failed", "error")) | set(first.missing) | set(first.not_found))
    rerun = run(bad) if bad and (first.report_found or first.outcomes) else None
    b = compute_baseline(first, rerun)
    b.node_ids = list(node_ids) if node_ids else None
    b.base_commit, b.env_key, b.duration_s = base_commit, env_key, round(time.monotonic() - started, 3)
    if cache_path is not None and (first.report_found or first.outcomes):
        p = Path(cache_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(b.model_dump_json(indent=1))
        os.replace(tmp, p)
    return b


def evaluate_patch(run: RunFn, baseline: Baseline, node_ids: list[str] | None = None,
                   fail_to_pass: list[str] | None = None, pass_to_pass: list[str] | None = None) -> tuple[Verdict, TestRunResult]:
    """Run after the patch; re-run once what looks newly broken (or F2P still failing); judge."""
    after = run(node_ids)
    first = judge(baseline, after, fail_to_pass, pass_to_pass)
    again = sorted(set(first.newly_failing) | set(first.f2p_failing))
    rerun = run(again) if again and first.status != "error" else None
    return judge(baseline, after, fail_to_pass, pass_to_pass, after_rerun=rerun), after
