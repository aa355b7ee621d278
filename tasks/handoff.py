"""The workspace handoff to the sandbox work pool: pack and store, unpack, answer, run the verify deployment (thin)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE
from prefect.deployments import run_deployment

from quorum.sandbox.handoff import (
    HandoffArchive,
    HandoffError,
    HandoffLimits,
    UnpackedWorkspace,
    VerifyRequest,
    VerifyResponse,
    pack_workspace,
    sha256_hex,
    unpack_workspace,
)
from quorum.store import ArtifactNotFound, ArtifactStore


@task(name="handoff-pack", task_run_name="pack workspace · {label}", cache_policy=NONE, retries=2, retry_delay_seconds=[1, 2])
def pack_to_store_task(
    store: ArtifactStore, key: str, workspace: str, acceptance: str | None = None, label: str = ""
) -> HandoffArchive:
    """Pack the workspace (and acceptance tests) and store the archive as one whole object."""
    data, manifest = pack_workspace(Path(workspace), Path(acceptance) if acceptance else None)
    store.put_bytes(key, data, "application/gzip")
    return HandoffArchive(key=key, sha256=sha256_hex(data), size=len(data), manifest=manifest)


@task(name="handoff-unpack", task_run_name="unpack workspace · {label}", cache_policy=NONE)
def unpack_from_store_task(
    store: ArtifactStore, key: str, sha256: str, dest: str, limits: HandoffLimits, label: str = ""
) -> UnpackedWorkspace:
    data = store.get_bytes(key)
    if len(data) > limits.max_bytes:
        raise HandoffError(f"archive {key} is {len(data)} bytes, over the {limits.max_bytes}-byte cap")
    return unpack_workspace(data, Path(dest), sha256, limits)


@task(name="handoff-respond", task_run_name="store reports · {label}", cache_policy=NONE, retries=3, retry_delay_seconds=[1, 2, 4])
def save_response_task(store: ArtifactStore, key: str, response: VerifyResponse, label: str = "") -> str:
    return store.put_text(key, response.model_dump_json(indent=2) + "\n")


@task(name="verify-in-sandbox", task_run_name="verify in sandbox · {label}", cache_policy=NONE)
def run_verify_deployment_task(
    deployment: str, request: VerifyRequest, store: ArtifactStore, timeout_s: float, label: str = ""
) -> VerifyResponse | str:
    """Run the verify deployment and read its response from the store; a string says why there is none."""
    flow_run = run_deployment(
        name=deployment, parameters={"request": request.model_dump(mode="json")}, timeout=timeout_s,
        as_subflow=True, tags=["quorum", "sandbox"],
    )  # fmt: skip
    state = flow_run.state
    if state is None or not state.is_completed():
        how = f"{state.type.value.lower()}: {state.message or state.name}" if state else "never reported a state"
        return f"the verify run {flow_run.name} of {deployment} did not finish ({how})"
    try:
        return VerifyResponse.model_validate_json(store.get_text(request.response_key))
    except (ArtifactNotFound, ValueError) as exc:
        return f"the verify run {flow_run.name} of {deployment} left no readable response at {request.response_key}: {exc}"
