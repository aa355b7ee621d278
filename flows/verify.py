"""Verification on the sandbox work pool, and the choice the pipeline makes: verify here or there.

`verify_workspace` is the flow of the `quorum-verify/sandbox` deployment (work pool `quorum-sandbox`):
an execution context that holds no model key, no cloud credential beyond the store and, on
Docker/Kubernetes, no route out (infra/README.md). It unpacks the workspace the pipeline stored
(`quorum.sandbox.handoff`), runs the requested tools exactly as the pipeline would (the same
tasks), stores a `VerifyResponse` and returns it.

`verify_round` and `verify_acceptance` are what the pipeline calls: with `QUORUM_VERIFY_DEPLOYMENT`
unset they submit the local tasks as before; set (e.g. `quorum-verify/sandbox`), the process that
holds the model keys packs the workspace, runs the deployment and reads the reports back, and runs
no repository code at all. A sandbox that does not answer gives `error` reports, never a pass.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

from prefect import flow
from prefect.runtime import flow_run

from quorum.domain.manifest import InstanceTests
from quorum.domain.models import PatchResult, VerificationReport
from quorum.domain.policy import Policy
from quorum.sandbox.handoff import (
    HandoffError,
    VerifyRequest,
    VerifyResponse,
    error_reports,
    secret_env_names,
)
from quorum.sandbox.isolation import current_plan, handoff_store, verify_deployment
from quorum.environments.task_env import PreparedEnvironment
from quorum.tasks.environment import instance_acceptance_task, repo_tests_task
from quorum.tasks.handoff import (
    pack_to_store_task,
    run_verify_deployment_task,
    save_response_task,
    unpack_from_store_task,
)
from quorum.tasks.store import open_store_task
from quorum.tasks.verify import acceptance_task, bandit_task, pytest_task, semgrep_task

ROUND_TOOLS = ["semgrep", "bandit", "pytest"]
REMOTE_TIMEOUT_S = 3600.0


def _verify_run_name() -> str:
    request = (flow_run.parameters or {}).get("request") or {}
    label = request.get("label") if isinstance(request, dict) else getattr(request, "label", "")
    return f"verify · {label or 'workspace'}"


@flow(name="quorum-verify", flow_run_name=_verify_run_name, log_prints=True)
def verify_workspace(request: VerifyRequest) -> VerifyResponse:
    """Unpack the stored workspace, run the requested tools on it, store and return the reports."""
    work = tempfile.mkdtemp(prefix="quorum-verify-")
    label = request.label
    store = open_store_task(request.store_url)
    try:
        try:
            unpacked = unpack_from_store_task(
                store, request.archive_key, request.archive_sha256, os.path.join(work, "in"),
                request.limits, label=label,
            )  # fmt: skip
        except HandoffError as exc:
            reports = error_reports(list(request.tools), "handoff_refused", f"the workspace archive was refused: {exc}")
        else:
            reports = _run_tools(request, unpacked.workspace, unpacked.acceptance)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    response = VerifyResponse(
        reports=reports, secret_env_names=secret_env_names(dict(os.environ)), sandbox_mode=current_plan().mode,
        uid=os.geteuid(), hostname=socket.gethostname(), flow_run_id=str(flow_run.id or ""),
    )  # fmt: skip
    save_response_task(store, request.response_key, response, label=label)
    return response


def submit_round_tool(
    tool: str, workspace: str, files: list[str], added_lines: dict[str, list[int]], *, label: str,
    bandit_min_severity: str, bandit_min_confidence: str,
):  # fmt: skip
    """Submit one of ROUND_TOOLS (semgrep, bandit, pytest) on a patched workspace; returns its future."""
    if tool == "semgrep":
        return semgrep_task.submit(workspace, files, added_lines, label=label)
    if tool == "bandit":
        return bandit_task.submit(workspace, files, added_lines, label=label,
                                  min_severity=bandit_min_severity, min_confidence=bandit_min_confidence)  # fmt: skip
    if tool == "pytest":
        return pytest_task.submit(workspace, label=label)
    raise ValueError(f"unknown verification tool {tool!r} (known: {', '.join(ROUND_TOOLS)})")


def _run_tools(request: VerifyRequest, workspace: str, acceptance: str | None) -> list[VerificationReport]:
    label = request.label
    futures = []
    for tool in request.tools:
        if tool in ROUND_TOOLS:
            futures.append(submit_round_tool(
                tool, workspace, request.files, request.added_lines, label=label,
                bandit_min_severity=request.bandit_min_severity, bandit_min_confidence=request.bandit_min_confidence,
            ))  # fmt: skip
        elif acceptance is None:
            futures.append(None)
        else:
            futures.append(acceptance_task.submit(workspace, acceptance, label=label))
    return [
        future.result() if future is not None
        else error_reports(["acceptance"], "handoff_refused", "the archive holds no acceptance tests")[0]
        for future in futures
    ]  # fmt: skip


# ------------------------------------------------------------------------------- pipeline side


def verify_round(
    workspace: str, patch: PatchResult, *, label: str, policy: Policy, store_url: str, prefix: str,
    environment: PreparedEnvironment | None = None,
) -> list[VerificationReport]:
    """Semgrep, Bandit and pytest on a patched workspace: here, or on the sandbox work pool when
    QUORUM_VERIFY_DEPLOYMENT names its deployment. ``prefix`` is the round's store prefix.
    With the repository's own ``environment``, pytest runs its tests there, judged against the baseline."""
    deployment = verify_deployment()
    if deployment is None or (environment is not None and environment.active):
        def submit(tool: str):
            return submit_round_tool(tool, workspace, patch.files, patch.added_lines, label=label,
                                     bandit_min_severity=policy.bandit_min_severity,
                                     bandit_min_confidence=policy.bandit_min_confidence)  # fmt: skip

        if environment is not None and environment.active:
            tests = repo_tests_task.submit(environment, workspace, patch.files, label=label)
        else:
            tests = submit("pytest")
        futures = [submit("semgrep"), submit("bandit"), tests]
        return [future.result() for future in futures]
    return verify_remotely(
        deployment, workspace, None, ROUND_TOOLS, store_url=store_url, prefix=prefix, label=label,
        files=patch.files, added_lines=patch.added_lines, policy=policy,
    )  # fmt: skip


def verify_acceptance(
    workspace: str, acceptance_dir: str | None, *, label: str, store_url: str, prefix: str,
    environment: PreparedEnvironment | None = None, instance: InstanceTests | None = None,
) -> VerificationReport:
    """The held-out acceptance tests, here or on the sandbox work pool (see ``verify_round``): a
    SWE-bench ``instance``'s test_patch and node ids, or an acceptance directory."""
    if instance is not None and environment is not None:
        return instance_acceptance_task(environment, workspace, instance, label=label)
    assert acceptance_dir is not None
    if environment is not None and environment.active:
        return acceptance_task(workspace, acceptance_dir, label=label, python=environment.python,
                               source_roots=environment.source_roots)  # fmt: skip
    deployment = verify_deployment()
    if deployment is None:
        return acceptance_task(workspace, acceptance_dir, label=label)
    (report,) = verify_remotely(
        deployment, workspace, acceptance_dir, ["acceptance"], store_url=store_url, prefix=prefix, label=label
    )
    return report


def verify_remotely(
    deployment: str,
    workspace: str,
    acceptance: str | None,
    tools: list[str],
    *,
    store_url: str,
    prefix: str,
    label: str,
    files: list[str] | None = None,
    added_lines: dict[str, list[int]] | None = None,
    policy: Policy | None = None,
    timeout_s: float = REMOTE_TIMEOUT_S,
) -> list[VerificationReport]:
    """Pack and store the workspace (in ``QUORUM_HANDOFF_STORE`` if set, else ``store_url``), run the verify
    deployment, return its reports (``error`` ones if it fails or does not answer)."""
    policy = policy or Policy()
    store_url = handoff_store(store_url)
    store = open_store_task(store_url)
    where = f"{prefix}/sandbox/{'-'.join(tools)}"
    archive = pack_to_store_task(store, f"{where}/workspace.tar.gz", workspace, acceptance, label=label)
    request = VerifyRequest(
        store_url=store_url, archive_key=archive.key, archive_sha256=archive.sha256,
        response_key=f"{where}/response.json", tools=tools, files=files or [], added_lines=added_lines or {},
        label=label, bandit_min_severity=policy.bandit_min_severity, bandit_min_confidence=policy.bandit_min_confidence,
    )  # fmt: skip
    answer = run_verify_deployment_task(deployment, request, store, timeout_s, label=label)
    if isinstance(answer, str):
        return error_reports(tools, "sandbox_error", answer)
    by_tool = {report.tool: report for report in answer.reports}
    missing = [tool for tool in tools if tool not in by_tool]
    if missing:
        return error_reports(tools, "sandbox_error", f"the verify run returned no report for {', '.join(missing)}")
    return [by_tool[tool] for tool in tools]
