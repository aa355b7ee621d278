"""Safety rules for every edit format, through the public `apply_reply`, on plain directories.

The same rules on git workspaces, with the cases of the git-based applier they replace, are in
tests/test_patching.py; hostile patches in tests/test_hostile.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quorum.edits import apply_reply
from tests.support.edits import UNSAFE, lines, snapshot, write_tree



@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = write_tree(tmp_path / "work" / "ws", {"app.py": "x = 1\n", "notes.txt": "one\ntwo\nthree\n"})
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    return root


@pytest.mark.parametrize("case", sorted(UNSAFE))
@pytest.mark.parametrize("wrap", ["fenced", "bare"])
def test_unsafe_diff_is_refused_naming_the_path_and_nothing_changes(case: str, wrap: str, ws: Path):
    diff, path = UNSAFE[case]
    reply = f"```diff\n{diff}```\n" if wrap == "fenced" else diff
    before = snapshot(ws.parent)
    result = apply_reply(ws, reply)
    assert result.applied is False
    assert path in result.reason, result.reason
    assert result.files == [] and result.added_lines == {} and result.diff == ""
    assert snapshot(ws.parent) == before
    assert not Path("/tmp/quorum-absolute-test.txt").exists()


@pytest.mark.parametrize(
    ("path", "expected"),
    [("../outside.txt", "path outside the repository refused: ../outside.txt"),
     ("/tmp/quorum-abs-sr.txt", "absolute path refused: /tmp/quorum-abs-sr.txt"),
     (".git/config", "path inside .git refused: .git/config"),
     ("sub/.Git./hooks/pre-commit", "path inside .git refused: sub/.Git./hooks/pre-commit")],
)  # fmt: skip
@pytest.mark.parametrize("fmt", ["search_replace", "whole_file"])
def test_the_same_path_rules_hold_for_every_format(path: str, expected: str, fmt: str, ws: Path):
    if fmt == "search_replace":
        reply = f"{path}\n```\n<<<<<<< SEARCH\n=======\nowned\n>>>>>>> REPLACE\n```\n"
    else:
        reply = f"{path}\n```\nowned\n```\n"
    before = snapshot(ws.parent)
    result = apply_reply(ws, reply)
    assert not result.applied and expected in result.reason
    assert snapshot(ws.parent) == before and not Path("/tmp/quorum-abs-sr.txt").exists()


def test_oversize_edits_are_refused_naming_the_largest_file(ws: Path):
    big = lines("--- /dev/null", "+++ b/big.txt", "@@ -0,0 +1,400 @@", *(f"+line {n}" for n in range(400)))
    small = lines("--- /dev/null", "+++ b/small.txt", "@@ -0,0 +1 @@", "+x")
    result = apply_reply(ws, small + big, max_bytes=1000)
    assert not result.applied and "patch too large" in result.reason and "big.txt" in result.reason
    assert not (ws / "big.txt").exists() and not (ws / "small.txt").exists()
    assert apply_reply(ws, small + big, max_bytes=100_000).applied


def test_default_size_limit_applies_to_whole_files_too(ws: Path):
    result = apply_reply(ws, "big.txt\n```\n" + "x" * 250_000 + "\n```\n")
    assert not result.applied and "patch too large" in result.reason and "big.txt" in result.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "empty"), ("  \n\n", "empty"), ("this is not a diff\nat all\n", "malformed"),
     ("--- a/x\n(no +++ line follows)\n", "malformed"), ("```python\nx = 1\n```", "malformed")],
    ids=["empty", "blank", "prose", "lone-minus-header", "python-block-without-path"],
)  # fmt: skip
def test_empty_or_editless_reply_is_refused(text: str, expected: str, ws: Path):
    result = apply_reply(ws, text)
    assert not result.applied and expected in result.reason


def test_repointing_an_existing_symlink_is_refused(tmp_path: Path):
    root = write_tree(tmp_path / "r", {"target.txt": "t\n"})
    (root / "link.txt").symlink_to("target.txt")
    diff = lines("--- a/link.txt", "+++ b/link.txt", "@@ -1 +1 @@", "-target.txt", "\\ No newline at end of file",
                 "+/etc/passwd", "\\ No newline at end of file")  # fmt: skip
    for reply in (diff, "link.txt\n```\n<<<<<<< SEARCH\nt\n=======\nu\n>>>>>>> REPLACE\n```\n",
                  "link.txt\n```\n/etc/passwd\n```\n"):
        result = apply_reply(root, reply)
        assert not result.applied and "symlink refused: link.txt is a symlink" in result.reason
    assert os.readlink(root / "link.txt") == "target.txt" and (root / "target.txt").read_text() == "t\n"


def test_writing_below_a_symlinked_directory_is_refused(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = write_tree(tmp_path / "r", {"app.py": "x = 1\n"})
    (root / "data").symlink_to(outside)
    for reply in (lines("--- /dev/null", "+++ b/data/evil.py", "@@ -0,0 +1 @@", "+x = 1"),
                  "data/evil.py\n```python\nx = 1\n```\n"):  # fmt: skip
        result = apply_reply(root, reply)
        assert not result.applied and "data/evil.py" in result.reason and "symlink" in result.reason
    assert list(outside.iterdir()) == []


def test_editing_a_binary_file_is_refused(tmp_path: Path):
    root = write_tree(tmp_path / "r", {"blob.dat": b"a\x00b\nline\n"})
    result = apply_reply(root, lines("--- a/blob.dat", "+++ b/blob.dat", "@@ ... @@", " line", "+more"))
    assert not result.applied and "binary file refused: blob.dat" in result.reason


def test_a_directory_or_nested_repository_is_not_a_file(tmp_path: Path):
    root = write_tree(tmp_path / "r", {"vendor/lib/.git/HEAD": "ref\n", "pkg/sub/mod.py": "x\n"})
    result = apply_reply(root, "vendor/lib\n```\nSubproject commit 1\n```\n")
    assert not result.applied and "submodule refused: vendor/lib" in result.reason
    result = apply_reply(root, "pkg/sub\n```\nx\n```\n")
    assert not result.applied and "pkg/sub is a directory" in result.reason
