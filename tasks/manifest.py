"""Loading a manifest inside a run, as a task (its errors show in the UI)."""

from __future__ import annotations

from prefect import task

from quorum.domain.manifest import Manifest
from quorum.inputs.manifests import load_manifest


@task(name="load-manifest", task_run_name="manifest · {manifest_path}")
def load_manifest_task(manifest_path: str) -> Manifest:
    """The manifest, keeping going past entries that cannot run (each becomes an `error` in the report)."""
    return load_manifest(manifest_path, keep_going=True)
