"""Verification tasks: Semgrep, Bandit and pytest, each its own Prefect task (thin wrappers).

Deterministic tools are not cached: they are cheap, and their verdicts must reflect this run.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task

from quorum.domain.models import VerificationReport
from quorum.verify.bandit import run_bandit
from quorum.verify.pytest_runner import run_pytest
from quorum.verify.semgrep import run_semgrep

PYTHON_SUFFIXES = (".py", ".pyi")


def python_files(files: list[str]) -> list[str]:
    return [path for path in files if path.endswith(PYTHON_SUFFIXES)]


@task(name="semgrep", task_run_name="semgrep · {label}", retries=1)
def semgrep_task(workspace: str, files: list[str], added_lines: dict[str, list[int]], label: str = "") -> VerificationReport:
    return run_semgrep(Path(workspace), python_files(files), added_lines)


@task(name="bandit", task_run_name="bandit · {label}", retries=1)
def bandit_task(
    workspace: str, files: list[str], added_lines: dict[str, list[int]], label: str = "",
    min_severity: str = "medium", min_confidence: str = "medium",
) -> VerificationReport:  # fmt: skip
    return run_bandit(
        Path(workspace), python_files(files), added_lines, min_severity=min_severity, min_confidence=min_confidence
    )


@task(name="pytest", task_run_name="pytest · {label}")
def pytest_task(workspace: str, label: str = "") -> VerificationReport:
    return run_pytest(Path(workspace), tool="pytest")


@task(name="acceptance", task_run_name="acceptance · {label}")
def acceptance_task(
    workspace: str, acceptance_dir: str, label: str = "", python: str | None = None, source_roots: list[str] | None = None
) -> VerificationReport:
    """Held-out acceptance tests, copied into a throwaway copy of the workspace only for this run
    (with the repository's own environment's ``python`` when it has one)."""
    extra = {"python": python, "source_roots": source_roots} if python else {}
    return run_pytest(Path(workspace), tool="acceptance", extra_tests=Path(acceptance_dir), **extra)
