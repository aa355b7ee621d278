"""Patches: extraction from replies, parsing, safety rules, and applying with git."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quorum.edits.patching import apply_patch, check_patch_safety, extract_diff, parse_patch
from quorum.workspace.workspace import prepare_workspace, run_git, workspace_diff


def lines(*items: str) -> str:
    """Join diff lines explicitly, so significant trailing spaces survive editors."""
    return "\n".join(items) + "\n"


MULTI_FILE = lines(
    "diff --git a/src/app.py b/src/app.py",
    "index 1111111..2222222 100644",
    "--- a/src/app.py",
    "+++ b/src/app.py",
    "@@ -1,4 +1,5 @@",
    " import os",
    "+import sys",
    " ",
    " def main():",
    "     return 1",
    "@@ -10,3 +11,4 @@ def helper():",
    " a",
    "-b",
    "+B",
    "+C",
    " c",
    "diff --git a/docs/new.md b/docs/new.md",
    "new file mode 100644",
    "index 0000000..3333333",
    "--- /dev/null",
    "+++ b/docs/new.md",
    "@@ -0,0 +1,2 @@",
    "+# Title",
    "+text",
    "diff --git a/old.txt b/old.txt",
    "deleted file mode 100644",
    "index 4444444..0000000",
    "--- a/old.txt",
    "+++ /dev/null",
    "@@ -1,2 +0,0 @@",
    "-x",
    "-y",
    "diff --git a/lib/a.py b/lib/b.py",
    "similarity index 90%",
    "rename from lib/a.py",
    "rename to lib/b.py",
    "index 5555555..6666666 100644",
    "--- a/lib/a.py",
    "+++ b/lib/b.py",
    "@@ -3,2 +3,3 @@",
    " x = 1",
    "+y = 2",
    " z = 3",
    "diff --git a/run.sh b/run.sh",
    "old mode 100644",
    "new mode 100755",
)


# ------------------------------------------------------------------------------------------- parse


def test_parse_multi_file_diff_paths_flags_and_added_lines():
    parsed = parse_patch(MULTI_FILE)
    assert parsed.problems == []
    assert parsed.paths == ["src/app.py", "docs/new.md", "old.txt", "lib/b.py", "run.sh"]
    assert parsed.added_lines == {"src/app.py": [2, 12, 13], "docs/new.md": [1, 2], "lib/b.py": [4]}

    app, new, old, renamed, script = parsed.files
    assert [h.added_lines for h in app.hunks] == [[2], [12, 13]]
    assert (app.is_new, app.is_deleted, app.is_rename, app.mode_changed) == (False, False, False, False)
    assert new.is_new and new.old_path is None and new.new_mode == "100644"
    assert old.is_deleted and old.path == "old.txt" and old.new_path is None and old.added_lines == []
    assert renamed.is_rename and renamed.old_path == "lib/a.py" and renamed.new_path == "lib/b.py"
    assert script.mode_changed and (script.old_mode, script.new_mode) == ("100644", "100755")
    assert not any(f.is_binary or f.is_symlink or f.is_submodule for f in parsed.files)
    assert check_patch_safety(MULTI_FILE) == []


def test_parse_traditional_diff_without_git_headers():
    diff = lines("--- a/pkg/mod.py\t2024-01-01 10:00:00", "+++ b/pkg/mod.py\t2024-01-02 10:00:00",
                 "@@ -5 +5,2 @@", " keep", "+added")  # fmt: skip
    parsed = parse_patch(diff)
    assert parsed.problems == []
    assert parsed.added_lines == {"pkg/mod.py": [6]}


def test_parse_quoted_names_with_escapes_and_spaces():
    diff = lines(
        'diff --git "a/d\\303\\251j\\303\\240 vu.py" "b/d\\303\\251j\\303\\240 vu.py"',
        "new file mode 100644",
        "--- /dev/null",
        '+++ "b/d\\303\\251j\\303\\240 vu.py"',
        "@@ -0,0 +1 @@",
        "+x = 1",
        "diff --git a/my file.py b/my file.py",
        "--- a/my file.py\t",
        "+++ b/my file.py\t",
        "@@ -1 +1 @@",
        "-a",
        "+b",
    )
    parsed = parse_patch(diff)
    assert parsed.problems == []
    assert parsed.paths == ["déjà vu.py", "my file.py"]
    assert parsed.added_lines == {"déjà vu.py": [1], "my file.py": [1]}


@pytest.mark.parametrize(
    ("diff", "expected"),
    [
        (lines("--- a/f.py", "+++ b/f.py", "@@ -1,3 +1,3 @@", " a", "-b", "+B"), "ends before"),
        (lines("--- a/f.py", "+++ b/f.py", "@@ -1 +1 @@", "-a", "+A", "+lost line"), "silently ignore"),
        (lines("--- a/f.py", "+++ b/f.py", "@@ -1 +1 @@", "-a", "+A", "-lost deletion"), "silently ignore"),
        (lines("--- a/f.py", "+++ b/f.py", "@@ -1 +1 @@", "garbage", "+A"), "not a diff line"),
        (lines("--- a/f.py", "+++ b/f.py", "@@ bad header @@", "+A"), "malformed hunk header"),
        (lines("diff --git a/f.py b/f.py", "--- a/f.py", "+++ b/f.py"), "no hunks for f.py"),
    ],
    ids=["truncated", "extra-added-line", "extra-removed-line", "garbage-inside", "bad-header", "no-hunks"],
)
def test_parse_reports_broken_hunks_naming_the_file(diff, expected):
    problems = check_patch_safety(diff)
    assert any(expected in p and "f.py" in p and "malformed" in p for p in problems), problems


# ------------------------------------------------------------------------------------------ safety

SYMLINK_TO_ETC = lines(
    "diff --git a/etc_link b/etc_link",
    "new file mode 120000",
    "index 0000000..1111111",
    "--- /dev/null",
    "+++ b/etc_link",
    "@@ -0,0 +1 @@",
    "+/etc",
    "\\ No newline at end of file",
)

UNSAFE = {
    "dotdot": (lines("diff --git a/../outside.txt b/../outside.txt", "new file mode 100644", "--- /dev/null",
                     "+++ b/../outside.txt", "@@ -0,0 +1 @@", "+owned"), "../outside.txt"),
    "dotdot-rename": (lines("diff --git a/app.py b/app.py", "similarity index 100%", "rename from app.py",
                            "rename to ../../escaped.py"), "../../escaped.py"),
    "absolute": (lines("--- /dev/null", "+++ /tmp/quorum-absolute-test.txt", "@@ -0,0 +1 @@", "+owned"),
                 "/tmp/quorum-absolute-test.txt"),
    "git-config": (lines("diff --git a/.git/config b/.git/config", "--- a/.git/config", "+++ b/.git/config",
                         "@@ -1 +1,2 @@", " [core]", "+\tfsmonitor = touch pwned"), ".git/config"),
    "git-hooks-case": (lines("--- /dev/null", "+++ b/sub/.GIT/hooks/post-checkout", "@@ -0,0 +1 @@", "+#!/bin/sh"),
                       "sub/.GIT/hooks/post-checkout"),
    "symlink": (SYMLINK_TO_ETC, "etc_link"),
    "submodule": (lines("diff --git a/vendor/lib b/vendor/lib", "new file mode 160000", "index 0000000..abcdef1",
                        "--- /dev/null", "+++ b/vendor/lib", "@@ -0,0 +1 @@",
                        "+Subproject commit abcdef1234567890abcdef1234567890abcdef12"), "vendor/lib"),
    "binary-literal": (lines("diff --git a/logo.png b/logo.png", "new file mode 100644", "index 0000000..1111111",
                             "GIT binary patch", "literal 5", "McmZ?wbaG<=000310ssI2", "", "literal 0",
                             "HcmV?d00001", ""), "logo.png"),
    "binary-differ": (lines("diff --git a/data.bin b/data.bin", "index 1111111..2222222 100644",
                            "Binary files a/data.bin and b/data.bin differ"), "data.bin"),
    "malformed-hunk": (lines("--- a/app.py", "+++ b/app.py", "@@ -1,5 +1,6 @@", " x = 1", "+y = 2"), "app.py"),
}  # fmt: skip


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    source.mkdir()
    (source / "app.py").write_text("x = 1\n", encoding="utf-8")
    (source / "notes.txt").write_text("one\ntwo\nthree\n", encoding="utf-8")
    return Path(prepare_workspace(source, tmp_path / "work").path)


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under root (following nothing): files by content, links by target."""
    state: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            state[key] = "-> " + os.readlink(path)
        elif path.is_file() and "/.git/objects/" not in str(path) and ".git/index" not in key:
            state[key] = path.read_bytes()
        elif path.is_dir():
            state[key] = "dir"
    return state


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_patch_is_refused_naming_the_path_and_nothing_changes(case, workspace: Path):
    diff, path = UNSAFE[case]
    problems = check_patch_safety(diff)
    assert problems, f"{case} was considered safe"
    assert any(path in problem for problem in problems), problems

    before = snapshot(workspace.parent)
    result = apply_patch(workspace, diff)
    assert result.applied is False
    assert path in result.reason
    assert result.files == [] and result.added_lines == {}
    assert snapshot(workspace.parent) == before
    assert workspace_diff(workspace) == ""
    assert not Path("/tmp/quorum-absolute-test.txt").exists()


def test_oversize_patch_is_refused_naming_the_largest_file(workspace: Path):
    big = lines("--- /dev/null", "+++ b/big.txt", "@@ -0,0 +1,400 @@", *(f"+line {n}" for n in range(400)))
    small = lines("--- /dev/null", "+++ b/small.txt", "@@ -0,0 +1 @@", "+x")
    problems = check_patch_safety(small + big, max_bytes=1000)
    assert len(problems) == 1 and "too large" in problems[0] and "big.txt" in problems[0]
    assert check_patch_safety(small + big, max_bytes=100_000) == []
    result = apply_patch(workspace, small + big, max_bytes=1000)
    assert not result.applied and "big.txt" in result.reason
    assert not (workspace / "big.txt").exists() and not (workspace / "small.txt").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "empty"), ("  \n\n", "empty"), ("this is not a diff\nat all\n", "malformed"),
     ("--- a/x\n(no +++ line follows)\n", "malformed")],
    ids=["empty", "blank", "prose", "lone-minus-header"],
)  # fmt: skip
def test_empty_or_headerless_patch_is_refused(text, expected, workspace: Path):
    problems = check_patch_safety(text)
    assert problems and expected in problems[0]
    result = apply_patch(workspace, text)
    assert not result.applied and expected in result.reason


def test_repointing_an_existing_symlink_is_refused_although_git_would_apply_it(tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "target.txt").write_text("t\n", encoding="utf-8")
    (source / "link").symlink_to("target.txt")
    ws = Path(prepare_workspace(source, tmp_path / "work").path)
    diff = lines("--- a/link", "+++ b/link", "@@ -1 +1 @@", "-target.txt", "\\ No newline at end of file",
                 "+/etc/passwd", "\\ No newline at end of file")  # fmt: skip
    assert check_patch_safety(diff) == []  # nothing in the text says "symlink"...
    assert run_git(["apply", "--check", "-"], ws, input=diff.encode(), check=False).returncode == 0  # ...git agrees
    result = apply_patch(ws, diff)
    assert not result.applied
    assert "link" in result.reason and "symlink" in result.reason
    assert os.readlink(ws / "link") == "target.txt"


def test_writing_below_a_symlinked_directory_is_refused(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    source = tmp_path / "source"
    source.mkdir()
    (source / "data").symlink_to(outside)
    ws = Path(prepare_workspace(source, tmp_path / "work").path)
    result = apply_patch(ws, lines("--- /dev/null", "+++ b/data/evil.py", "@@ -0,0 +1 @@", "+x = 1"))
    assert not result.applied and "data/evil.py" in result.reason and "symlink" in result.reason
    assert list(outside.iterdir()) == []


# ------------------------------------------------------------------------------------------- apply


def test_good_patch_applies_and_reports_files_and_added_lines(workspace: Path):
    diff = lines(
        "diff --git a/app.py b/app.py",
        "--- a/app.py",
        "+++ b/app.py",
        "@@ -1 +1,3 @@",
        " x = 1",
        "+y = 2",
        "+z = 3",
        "diff --git a/pkg/new.py b/pkg/new.py",
        "new file mode 100644",
        "--- /dev/null",
        "+++ b/pkg/new.py",
        "@@ -0,0 +1,2 @@",
        "+def f():",
        "+    return 42",
        "diff --git a/notes.txt b/notes.txt",
        "deleted file mode 100644",
        "--- a/notes.txt",
        "+++ /dev/null",
        "@@ -1,3 +0,0 @@",
        "-one",
        "-two",
        "-three",
    )
    result = apply_patch(workspace, diff)
    assert result.applied, result.reason
    assert result.reason == ""
    assert result.files == ["app.py", "pkg/new.py", "notes.txt"]
    assert result.added_lines == {"app.py": [2, 3], "pkg/new.py": [1, 2]}
    assert (workspace / "app.py").read_text(encoding="utf-8") == "x = 1\ny = 2\nz = 3\n"
    assert (workspace / "pkg/new.py").read_text(encoding="utf-8") == "def f():\n    return 42\n"
    assert not (workspace / "notes.txt").exists()


def test_non_applying_patch_returns_gits_reason_and_changes_nothing(workspace: Path):
    diff = lines("--- a/app.py", "+++ b/app.py", "@@ -1 +1 @@", "-x = 999", "+x = 2")
    assert check_patch_safety(diff) == []
    result = apply_patch(workspace, diff)
    assert not result.applied
    assert result.reason.startswith("git apply --check failed:")
    assert "app.py" in result.reason and "patch does not apply" in result.reason
    assert (workspace / "app.py").read_text(encoding="utf-8") == "x = 1\n"


def test_patch_for_a_missing_file_reports_git_reason(workspace: Path):
    result = apply_patch(workspace, lines("--- a/nope.py", "+++ b/nope.py", "@@ -1 +1 @@", "-a", "+b"))
    assert not result.applied and "nope.py" in result.reason and "No such file" in result.reason


def test_file_name_with_quotes_and_command_substitution_is_created_literally(workspace: Path):
    name = 'we"ird $(touch pwned).py'
    diff = lines(
        'diff --git "a/we\\"ird $(touch pwned).py" "b/we\\"ird $(touch pwned).py"',
        "new file mode 100644",
        "index 0000000..587be6b",
        "--- /dev/null",
        '+++ "b/we\\"ird $(touch pwned).py"\t',
        "@@ -0,0 +1 @@",
        "+x = 1",
    )
    assert parse_patch(diff).paths == [name]
    result = apply_patch(workspace, diff)
    assert result.applied, result.reason
    assert result.files == [name] and result.added_lines == {name: [1]}
    assert (workspace / name).read_text(encoding="utf-8") == "x = 1\n"
    assert not any(p.name == "pwned" for p in workspace.parent.rglob("pwned"))
    assert not Path("pwned").exists()


def test_unquoted_name_with_dollar_and_quote_from_a_model(workspace: Path):
    name = "it's $(touch pwned).md"
    diff = lines("--- /dev/null", f"+++ b/{name}", "@@ -0,0 +1 @@", "+hello")
    result = apply_patch(workspace, diff)
    assert result.applied, result.reason
    assert result.files == [name] and (workspace / name).read_text(encoding="utf-8") == "hello\n"
    assert not list(workspace.parent.rglob("pwned"))


def test_added_lines_follow_hunks_git_applied_at_an_offset(tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "n.txt").write_text("".join(f"{n}\n" for n in range(1, 31)), encoding="utf-8")
    ws = Path(prepare_workspace(source, tmp_path / "work").path)
    # The first hunk's header is 3 lines off (models get line numbers wrong); git finds it anyway.
    diff = lines("--- a/n.txt", "+++ b/n.txt", "@@ -7,3 +7,4 @@", " 10", " 11", "+X", " 12",
                 "@@ -20,2 +21,3 @@", " 20", "+Y", " 21")  # fmt: skip
    assert parse_patch(diff).added_lines == {"n.txt": [9, 22]}  # what the headers claim
    result = apply_patch(ws, diff)
    assert result.applied, result.reason
    content = (ws / "n.txt").read_text(encoding="utf-8").splitlines()
    assert result.added_lines == {"n.txt": [12, 22]}
    assert [content[n - 1] for n in result.added_lines["n.txt"]] == ["X", "Y"]


# -------------------------------------------------------------------------------------------- CRLF


def test_git_accepts_crlf_structure_lines_so_native_crlf_patches_apply_as_given(tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "win.txt").write_bytes(b"a\r\nb\r\nc\r\n")
    ws = Path(prepare_workspace(source, tmp_path / "work").path)
    # Every line CRLF, headers included: git parses the headers and matches the CRLF content.
    diff = "--- a/win.txt\r\n+++ b/win.txt\r\n@@ -1,3 +1,3 @@\r\n a\r\n-b\r\n+B\r\n c\r\n"
    assert extract_diff(f"```diff\r\n{diff}```\r\n") == diff  # extract_diff converts nothing
    assert parse_patch(diff).added_lines == {"win.txt": [2]}
    result = apply_patch(ws, diff)
    assert result.applied, result.reason
    assert (ws / "win.txt").read_bytes() == b"a\r\nB\r\nc\r\n"


def test_crlf_content_for_a_crlf_file_with_lf_headers_applies(tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "win.txt").write_bytes(b"a\r\nb\r\n")
    ws = Path(prepare_workspace(source, tmp_path / "work").path)
    diff = "--- a/win.txt\n+++ b/win.txt\n@@ -1,2 +1,2 @@\n a\r\n-b\r\n+B\r\n"
    result = apply_patch(ws, diff)
    assert result.applied, result.reason
    assert (ws / "win.txt").read_bytes() == b"a\r\nB\r\n"


def test_all_crlf_patch_for_an_lf_file_applies_with_lf_endings(workspace: Path):
    diff = "--- a/app.py\r\n+++ b/app.py\r\n@@ -1 +1,2 @@\r\n x = 1\r\n+y = 2\r\n"
    # Plain git refuses it (content lines carry a CR the file does not have)...
    assert run_git(["apply", "--check", "-"], workspace, input=diff.encode(), check=False).returncode != 0
    # ...so apply_patch retries with LF endings, and the file stays LF.
    result = apply_patch(workspace, diff)
    assert result.applied, result.reason
    assert result.added_lines == {"app.py": [2]}
    assert (workspace / "app.py").read_bytes() == b"x = 1\ny = 2\n"


def test_mixed_crlf_patch_that_does_not_match_is_not_rewritten(workspace: Path):
    # Only some lines CRLF: not a transport conversion, so no retry; git's reason is reported.
    diff = "--- a/app.py\n+++ b/app.py\n@@ -1 +1,2 @@\n x = 1\r\n+y = 2\n"
    result = apply_patch(workspace, diff)
    assert not result.applied and "app.py" in result.reason
    assert (workspace / "app.py").read_bytes() == b"x = 1\n"


# ------------------------------------------------------------------------------------------ extract

SIMPLE = lines("diff --git a/app.py b/app.py", "--- a/app.py", "+++ b/app.py", "@@ -1 +1 @@", "-x = 1", "+x = 2")


def test_extract_from_diff_fence():
    reply = f"Here is the change.\n\n```diff\n{SIMPLE}```\n\nIt bumps x."
    assert extract_diff(reply) == SIMPLE


def test_extract_from_patch_fence_after_other_code_blocks():
    reply = f"Plan:\n```python\nprint('not a diff')\n```\n```patch\n{SIMPLE}```\n```diff\n--- other\n```"
    assert extract_diff(reply) == SIMPLE


def test_extract_skips_an_empty_diff_block():
    assert extract_diff(f"```diff\n```\nthen\n```diff\n{SIMPLE}```") == SIMPLE


def test_extract_keeps_fence_lines_inside_the_diff():
    diff = lines("--- a/README.md", "+++ b/README.md", "@@ -1 +1,4 @@", " # T", "+```python", "+x = 1", "+```")
    assert extract_diff(f"````diff\n{diff}````\n") == diff
    assert extract_diff(f"```diff\n{diff}```\n") == diff  # "+```" does not close the block


def test_extract_without_fence_from_diff_git_line_and_adds_trailing_newline():
    reply = "I changed one line:\n" + SIMPLE.rstrip("\n")
    assert extract_diff(reply) == SIMPLE


def test_extract_without_fence_from_minus_plus_header():
    reply = "Some text\n---\nMore text\n--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    assert extract_diff(reply) == "--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"


def test_extract_from_an_unlabelled_fence_stops_at_its_end():
    assert extract_diff(f"Result:\n```\n{SIMPLE}```\nDone, hope it helps.\n") == SIMPLE


def test_extract_unclosed_fence_runs_to_the_end():
    assert extract_diff(f"```diff\n{SIMPLE}") == SIMPLE


@pytest.mark.parametrize(
    "reply",
    ["", "   ", "No diff here.\n---\nJust prose.", "```python\nx = 1\n```"],
    ids=["empty", "blank", "prose", "python"],
)
def test_extract_raises_when_there_is_no_diff(reply):
    with pytest.raises(ValueError, match="diff"):
        extract_diff(reply)


def test_extracted_diff_parses_and_applies(workspace: Path):
    result = apply_patch(workspace, extract_diff(f"Sure!\n```diff\n{SIMPLE}```"))
    assert result.applied and (workspace / "app.py").read_text(encoding="utf-8") == "x = 2\n"


def test_extract_from_tilde_fence():
    assert extract_diff(f"~~~patch\n{SIMPLE}~~~\n") == SIMPLE


def test_apply_to_a_directory_that_is_not_a_git_repository(tmp_path: Path):
    (tmp_path / "app.py").write_text("x = 1\n", encoding="utf-8")
    result = apply_patch(tmp_path, SIMPLE)
    assert not result.applied and "not the root of a git repository" in result.reason
    assert (tmp_path / "app.py").read_text(encoding="utf-8") == "x = 1\n"
