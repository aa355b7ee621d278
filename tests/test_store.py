"""The artifact store contract, run against both backends (local folder and S3 via moto)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from pydantic import BaseModel

from quorum.domain.models import Decision, Outcome
from quorum.store import (
    ArtifactNotFound,
    ArtifactStore,
    LocalStore,
    S3Store,
    open_store,
    validate_key,
)

BUCKET = "quorum-test"


@pytest.fixture
def aws(monkeypatch):
    """moto's in-memory S3 with fake credentials and no endpoint overrides from the environment."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "QUORUM_S3_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalStore(tmp_path / "artifacts")
    request.getfixturevalue("aws")
    return S3Store(BUCKET, "team/quorum", region_name="us-east-1")


class Untouchable:
    """A stand-in S3 client that fails the test if the store ever reaches the network."""

    def __getattr__(self, name):
        raise AssertionError(f"the S3 client was used ({name}) for an invalid request")


@pytest.fixture(params=["local", "s3"])
def offline_store(request, tmp_path: Path) -> ArtifactStore:
    """Both backends, for checks that must fail before any I/O (S3 gets a client that must not be used)."""
    if request.param == "local":
        return LocalStore(tmp_path / "artifacts")
    return S3Store(BUCKET, "team", client=Untouchable())


# ---------------------------------------------------------------------------------------- contract


def test_bytes_text_and_json_round_trip(store: ArtifactStore):
    assert store.put_bytes("runs/b1/t1/blob.bin", b"\x00\xffdata") == "runs/b1/t1/blob.bin"
    assert store.get_bytes("runs/b1/t1/blob.bin") == b"\x00\xffdata"
    assert store.put_text("runs/b1/t1/1/plan.md", "# Plan\nčeský ✓\n") == "runs/b1/t1/1/plan.md"
    assert store.get_text("runs/b1/t1/1/plan.md") == "# Plan\nčeský ✓\n"
    assert store.put_json("runs/b1/t1/meta.json", {"b": 1, "a": [1, 2]}) == "runs/b1/t1/meta.json"
    assert store.get_text("runs/b1/t1/meta.json") == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert store.exists("runs/b1/t1/meta.json") and store.exists("runs/b1/t1/blob.bin")


def test_put_json_of_a_pydantic_model_is_pretty_sorted_and_stable(store: ArtifactStore):
    decision = Decision(outcome=Outcome.approve, reasons=["all checks passed"], policy_version="p1", round=2)
    store.put_json("runs/b/t/2/decision.json", decision)
    text = store.get_text("runs/b/t/2/decision.json")
    assert json.loads(text) == decision.model_dump(mode="json")
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert text.startswith("{\n  ") and text.endswith("}\n")
    store.put_json("runs/b/t/2/again.json", Decision.model_validate_json(decision.model_dump_json()))
    assert store.get_bytes("runs/b/t/2/again.json") == store.get_bytes("runs/b/t/2/decision.json")


def test_overwrite_replaces_the_whole_object(store: ArtifactStore):
    store.put_text("a/report.md", "a much longer first version\n" * 10)
    store.put_text("a/report.md", "short\n")
    assert store.get_text("a/report.md") == "short\n"
    assert store.list("a/") == ["a/report.md"]


def test_missing_key(store: ArtifactStore):
    assert not store.exists("runs/none.json")
    with pytest.raises(ArtifactNotFound) as info:
        store.get_bytes("runs/none.json")
    assert isinstance(info.value, KeyError)
    assert "runs/none.json" in str(info.value)
    with pytest.raises(KeyError):
        store.get_text("runs/none.json")
    store.put_text("runs/dir/file.txt", "x")
    assert not store.exists("runs/dir")  # a "directory" is not an object
    with pytest.raises(ArtifactNotFound):
        store.get_bytes("runs/dir")


def test_list_with_prefixes_is_sorted_and_relative(store: ArtifactStore):
    keys = ["runs/b2/t1/x.json", "runs/b1/t2/result.json", "runs/b1/t1/1/patch.diff", "runs/b10/r.json", "top.txt"]
    for key in keys:
        store.put_text(key, key)
    assert store.list() == sorted(keys)
    assert store.list("") == sorted(keys)
    assert store.list("runs/b1/") == ["runs/b1/t1/1/patch.diff", "runs/b1/t2/result.json"]
    assert store.list("runs/b1") == ["runs/b1/t1/1/patch.diff", "runs/b1/t2/result.json", "runs/b10/r.json"]
    assert store.list("runs/b1/t1/1/patch.diff") == ["runs/b1/t1/1/patch.diff"]
    assert store.list("nothing/") == []


def test_children_of_a_folder_are_its_subfolders_only(store: ArtifactStore):
    for key in ("runs/b1/t1/1/patch.diff", "runs/b1/t1/result.json", "runs/b1/t2/result.json", "runs/b1/report.json",
                "runs/b10/t9/result.json", "top.txt"):  # fmt: skip
        store.put_text(key, key)
    assert store.list_children("runs/b1/") == ["t1", "t2"]  # not report.json (a file), not b10's folders
    assert store.list_children("runs/") == ["b1", "b10"]
    assert store.list_children("") == ["runs"]
    assert store.list_children("runs/none/") == []
    with pytest.raises(ValueError, match="ending with '/'"):
        store.list_children("runs/b1")


def test_get_many_fetches_every_key_in_order_with_none_for_missing(store: ArtifactStore):
    keys = [f"runs/b/t{n:03d}/result.json" for n in range(40)]
    for key in keys[::2]:
        store.put_text(key, key)
    got = list(store.get_many(keys, workers=8))
    assert [key for key, _ in got] == keys
    assert [data for _, data in got] == [key.encode() if n % 2 == 0 else None for n, key in enumerate(keys)]


def test_put_file_writes_a_whole_object_from_disk(store: ArtifactStore, tmp_path: Path):
    source = tmp_path / "rows.jsonl"
    source.write_bytes(b'{"n": 1}\n' * 200_000)  # 1.8 MB
    assert store.put_file("runs/b/report.jsonl", source) == "runs/b/report.jsonl"
    assert store.get_bytes("runs/b/report.jsonl") == source.read_bytes()
    source.write_bytes(b"shorter\n")
    store.put_file("runs/b/report.jsonl", source)
    assert store.get_text("runs/b/report.jsonl") == "shorter\n"


@pytest.mark.parametrize(
    "key",
    ["", "/abs/key", "a/../b", "../up", "a//b", "a/b/", "a\\b", "./a", "a/./b", "with\nnewline", ".quorum-tmp-x"],
    ids=["empty", "absolute", "dotdot-inside", "dotdot-start", "double-slash", "trailing-slash", "backslash",
         "dot-start", "dot-inside", "control-char", "reserved-temp-prefix"],
)  # fmt: skip
def test_invalid_keys_are_refused_everywhere(offline_store: ArtifactStore, key: str, tmp_path: Path):
    store = offline_store
    for call in (lambda: store.put_bytes(key, b"x"), lambda: store.put_text(key, "x"), lambda: store.get_bytes(key),
                 lambda: store.exists(key), lambda: store.url(key)):  # fmt: skip
        with pytest.raises(ValueError, match="invalid artifact key"):
            call()
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # nothing written anywhere


@pytest.mark.parametrize("prefix", ["/abs", "../x", "a//", "a\\b"])
def test_invalid_list_prefixes_are_refused(offline_store: ArtifactStore, prefix: str):
    with pytest.raises(ValueError, match="invalid artifact key"):
        offline_store.list(prefix)


def test_keys_with_spaces_and_unicode_work(store: ArtifactStore):
    key = "runs/b 1/tâche/reviews/scripted_gpt-5.json"
    store.put_text(key, "{}")
    assert store.get_text(key) == "{}" and store.list("runs/b 1/") == [key]


# ----------------------------------------------------------------------------------- local backend


def test_local_url_and_layout(tmp_path: Path):
    store = LocalStore(tmp_path / "root")
    store.put_text("runs/b/t/plan.md", "p")
    assert store.url("runs/b/t/plan.md") == (tmp_path / "root" / "runs" / "b" / "t" / "plan.md").as_uri()
    assert store.url("runs/b/t") == f"file://{tmp_path}/root/runs/b/t"  # absolute, a folder too
    relative = LocalStore(".quorum")  # named relatively, located absolutely (and read back by open_store)
    assert relative.url("runs/b") == (Path.cwd() / ".quorum" / "runs" / "b").as_uri()
    assert open_store(relative.url("runs/b")).root == Path.cwd() / ".quorum" / "runs" / "b"
    assert (tmp_path / "root/runs/b/t/plan.md").read_text() == "p"
    assert str(tmp_path / "root") in store.description
    assert LocalStore(tmp_path / "does-not-exist").list() == []


def test_local_writes_leave_no_temp_files_and_fsync(tmp_path: Path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    store = LocalStore(tmp_path)
    for n in range(5):
        store.put_text(f"runs/b/t/{n}.txt", "x" * n)
    assert sorted(p.name for p in (tmp_path / "runs/b/t").iterdir()) == [f"{n}.txt" for n in range(5)]
    assert len(synced) >= 5
    assert oct((tmp_path / "runs/b/t/1.txt").stat().st_mode & 0o777) == oct(0o644)


def test_local_failed_write_keeps_the_old_object_and_no_temp_file(tmp_path: Path, monkeypatch):
    store = LocalStore(tmp_path)
    store.put_text("r/result.json", '{"old": true}\n')

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.put_text("r/result.json", '{"new": true, "padding": "' + "x" * 10_000 + '"}\n')
    assert store.get_text("r/result.json") == '{"old": true}\n'
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["result.json"]
    assert store.list() == ["r/result.json"]


def test_local_list_ignores_stray_temp_files_from_a_crash(tmp_path: Path):
    store = LocalStore(tmp_path)
    store.put_text("a/x.txt", "x")
    (tmp_path / "a" / ".quorum-tmp-abc123").write_text("partial")
    assert store.list() == ["a/x.txt"]


# -------------------------------------------------------------------------------------- S3 backend


def test_s3_objects_live_under_the_prefix_with_content_types(aws):
    store = S3Store(BUCKET, "/team/quorum/", region_name="us-east-1")
    store.put_text("runs/b/t/1/plan.md", "# plan")
    store.put_json("runs/b/t/1/decision.json", {"ok": True})
    store.put_bytes("runs/b/t/1/blob", b"\x00")
    head = aws.head_object(Bucket=BUCKET, Key="team/quorum/runs/b/t/1/plan.md")
    assert head["ContentType"].startswith("text/markdown")
    def content_type(key: str) -> str:
        return aws.head_object(Bucket=BUCKET, Key=f"team/quorum/{key}")["ContentType"]

    assert content_type("runs/b/t/1/decision.json") == "application/json"
    assert content_type("runs/b/t/1/blob") == "application/octet-stream"
    assert store.url("runs/b/t/1/plan.md") == f"s3://{BUCKET}/team/quorum/runs/b/t/1/plan.md"
    assert store.description == f"s3://{BUCKET}/team/quorum"
    # Objects outside the prefix are not part of this store.
    aws.put_object(Bucket=BUCKET, Key="team/other/runs/x.json", Body=b"{}")
    aws.put_object(Bucket=BUCKET, Key="team/quorumish/y.json", Body=b"{}")
    assert store.list() == ["runs/b/t/1/blob", "runs/b/t/1/decision.json", "runs/b/t/1/plan.md"]


def test_s3_without_prefix_and_listing_across_pages(aws):
    store = S3Store(BUCKET, region_name="us-east-1")
    store.page_size = 2
    calls: list[str] = []
    store.client.meta.events.register("before-call.s3.ListObjectsV2", lambda **kw: calls.append("list"))
    keys = [f"k/{n:02d}.txt" for n in range(7)]
    for key in reversed(keys):
        store.put_text(key, key)
    assert store.list("k/") == keys
    assert len(calls) == 4
    assert store.url("k/00.txt") == f"s3://{BUCKET}/k/00.txt"


def test_s3_client_config_and_endpoint_from_environment(monkeypatch):
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("QUORUM_S3_ENDPOINT_URL", "http://127.0.0.1:8333")
    store = S3Store(BUCKET, "p", region_name="us-east-1")
    config = store.client.meta.config
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.retries == {"total_max_attempts": 6, "mode": "standard"}  # botocore: 5 retries + the first try
    assert config.max_pool_connections == 32  # one connection per concurrent get
    assert store.client.meta.endpoint_url == "http://127.0.0.1:8333"
    assert "127.0.0.1:8333" in store.description
    explicit = S3Store(BUCKET, endpoint_url="http://localhost:9000", region_name="us-east-1")
    assert explicit.client.meta.endpoint_url == "http://localhost:9000"


def test_s3_missing_bucket_is_an_error_not_a_missing_key(aws):
    store = S3Store("no-such-bucket", region_name="us-east-1")
    with pytest.raises(Exception) as info:
        store.get_bytes("a.txt")
    assert not isinstance(info.value, ArtifactNotFound)
    assert "NoSuchBucket" in str(info.value)


def test_s3_uses_an_injected_client(aws):
    store = S3Store(BUCKET, client=aws)
    assert store.client is aws
    store.put_text("x.txt", "x")
    assert aws.get_object(Bucket=BUCKET, Key="x.txt")["Body"].read() == b"x"


# --------------------------------------------------------------------------------------- open_store


def test_open_store_s3_urls():
    store = open_store("s3://my-bucket/some/prefix/")
    assert isinstance(store, S3Store) and (store.bucket, store.prefix) == ("my-bucket", "some/prefix")
    bare = open_store("s3://my-bucket")
    assert isinstance(bare, S3Store) and bare.prefix == ""


def test_open_store_local_forms(tmp_path: Path, monkeypatch):
    by_url = open_store(f"file://{tmp_path}/arts")
    assert isinstance(by_url, LocalStore) and by_url.root == tmp_path / "arts"
    assert open_store(f"file://localhost{tmp_path}").root == tmp_path
    assert open_store(str(tmp_path / "plain")).root == tmp_path / "plain"
    monkeypatch.chdir(tmp_path)
    relative = open_store("./.quorum")
    assert isinstance(relative, LocalStore) and relative.root == tmp_path / ".quorum"
    relative.put_text("k.txt", "v")
    assert (tmp_path / ".quorum" / "k.txt").read_text() == "v"


@pytest.mark.parametrize(
    "url",
    ["gs://bucket/prefix", "http://example.com/artifacts", "s3://", "s3:///prefix-without-bucket",
     "", "   ", "s3://Bad_Bucket!/x", "s3://bucket/a/../b", "file://otherhost/path", "s3://bucket/p?x=1"],
)  # fmt: skip
def test_open_store_refuses_other_urls_with_a_one_line_message(url: str):
    with pytest.raises(ValueError) as info:
        open_store(url)
    message = str(info.value)
    assert "\n" not in message
    assert repr(url.strip()) in message or repr(url) in message
    assert "s3://bucket[/prefix]" in message and "file:///" in message


def test_validate_key_returns_valid_keys():
    assert validate_key("runs/b/t/1/reviews/openai_gpt-5.json") == "runs/b/t/1/reviews/openai_gpt-5.json"
    assert validate_key("..hidden/x..y") == "..hidden/x..y"


def test_put_json_accepts_nested_models_and_plain_values(store: ArtifactStore):
    class Row(BaseModel):
        name: str
        score: float

    store.put_json("rows.json", [Row(name="a", score=1.5).model_dump(), {"z": None}])
    assert store.get_json("rows.json") == [{"name": "a", "score": 1.5}, {"z": None}]
