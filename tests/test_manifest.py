"""Manifest loading: every bad entry is a one-line error naming the entry and the problem."""

from __future__ import annotations

import pytest
import yaml

from quorum.domain.manifest import ManifestError
from quorum.inputs.manifests import load_manifest


@pytest.fixture
def layout(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "a.py").write_text("x = 1\n")
    (tmp_path / "acc").mkdir()
    (tmp_path / "task.md").write_text("Do the thing.\n")
    (tmp_path / "s.yaml").write_text("plan: {}\n")
    return tmp_path


def write(tmp_path, data) -> str:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


def entry(**overrides):
    return {"id": "t1", "repo": "repo", "task_file": "task.md", "acceptance": "acc", "script": "s.yaml", **overrides}


def test_valid_manifest_resolves_paths_and_digests_script(layout):
    manifest = load_manifest(write(layout, {"batch": "nightly", "tasks": [entry()]}))
    spec = manifest.tasks[0]
    assert manifest.batch == "nightly"
    assert spec.repo == str((layout / "repo").resolve())
    assert spec.task == "Do the thing."
    assert len(spec.script_sha256) == 64


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tasks": [entry(repo="missing")]}, "repository path .*missing does not exist"),
        ({"tasks": [entry(colour="blue")]}, r"task #1 \('t1'\) field 'colour': Extra inputs are not permitted"),
        ({"tasks": [entry(), entry()]}, "duplicate task id"),
        ({"tasks": [entry(id="bad id!")]}, "task id 'bad id!'"),
        ({"tasks": [entry(task="inline")]}, "exactly one of 'task'"),
        ({"tasks": [entry(acceptance="repo")]}, "outside the repository"),
        ({"tasks": [entry(script="nope.yaml")]}, "script .*nope.yaml does not exist"),
        ({"tasks": []}, "tasks"),
        ({"tasks": [{"repo": "repo", "task": "x"}]}, r"task #1 field 'id': Field required"),
        ("[not, a, mapping]", "must be a mapping"),
        ("tasks: [", "not valid YAML"),
    ],
)
def test_bad_manifests_are_refused_with_a_clear_message(layout, data, message):
    with pytest.raises(ManifestError, match=message) as err:
        load_manifest(write(layout, data))
    assert "\n" not in str(err.value).strip() or "YAML" in str(err.value)


def test_missing_manifest_file(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "none.yaml")
