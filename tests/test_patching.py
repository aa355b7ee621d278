"""Patches in git workspaces: finding the diff in a reply, parsing, safety rules, applying, all or nothing.

These are the cases of the git-based applier (`quorum.edits.patching`: extract_diff, parse_patch,
check_patch_safety, apply_patch) that `quorum.edits.apply_reply` replaced, with their assertions kept.
Where the behaviour changed on purpose the test says so and asserts the new behaviour: hunk counts
and @@ numbers are not trusted (a clear hunk with wrong counts applies), every fenced block of a
reply is read (a broken second block refuses the reply instead of being dropped), a reply whose
lines are partly CRLF applies with the file's line endings, and a plain directory (no git) works.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from quorum.edits import apply_reply, parse_reply
from quorum.edits.safety import edit_problems
from quorum.workspace.workspace import prepare_workspace, run_git, workspace_diff
from tests.support.edits import UNSAFE, lines, snapshot, write_tree


def text_problems(diff: str) -> list[str]:
    """What the reply's text alone says is wrong (parse and safety rules, no workspace): old check_patch_safety."""
    parsed = parse_reply(diff)
    return parsed.problems + [problem for edit in parsed.edits for problem in edit_problems(edit)]


def git_workspace(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    return Path(prepare_workspace(write_tree(tmp_path / "source", files), tmp_path / "work").path)


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

MULTI_FILE_BASE = {
    "src/app.py": "import os\n\ndef main():\n    return 1\n" + "".join(f"line {n}\n" for n in range(5, 10)) + "a\nb\nc\n",
    "old.txt": "x\ny\n",
    "lib/a.py": "# lib\n\nx = 1\nz = 3\n",
    "run.sh": "echo hi\n",
}


def test_parse_multi_file_diff_paths_flags_and_added_lines(tmp_path: Path):
    parsed = parse_reply(MULTI_FILE)
    assert parsed.problems == []
    assert [e.path for e in parsed.edits] == ["src/app.py", "docs/new.md", "old.txt", "lib/b.py", "run.sh"]

    app, new, old, renamed, script = parsed.edits
    assert [len(h.lines) for h in app.hunks] == [5, 5]
    assert (app.create, app.delete, app.rename) == (False, False, False)
    assert new.create and new.old_path is None and new.new_mode == "100644"
    assert old.delete and old.path == "old.txt"
    assert renamed.rename and renamed.old_path == "lib/a.py" and renamed.path == "lib/b.py"
    assert (script.old_mode, script.new_mode) == ("100644", "100755") and not script.hunks
    assert not any(e.binary or e.symlink or e.submodule for e in parsed.edits)
    assert text_problems(MULTI_FILE) == []

    # Applied to files where the headers are right, the added lines are the ones the headers claimed.
    ws = git_workspace(tmp_path, MULTI_FILE_BASE)
    result = apply_reply(ws, MULTI_FILE)
    assert result.applied, result.reason
    assert result.files == ["src/app.py", "docs/new.md", "old.txt", "lib/a.py", "lib/b.py", "run.sh"]
    assert result.added_lines == {"src/app.py": [2, 12, 13], "docs/new.md": [1, 2], "lib/b.py": [4]}
    assert not (ws / "old.txt").exists() and not (ws / "lib/a.py").exists()
    assert (ws / "lib/b.py").read_text() == "# lib\n\nx = 1\ny = 2\nz = 3\n"
    assert os.stat(ws / "run.sh").st_mode & stat.S_IXUSR


def test_parse_traditional_diff_without_git_headers(tmp_path: Path):
    diff = lines("--- a/pkg/mod.py\t2024-01-01 10:00:00", "+++ b/pkg/mod.py\t2024-01-02 10:00:00",
                 "@@ -5 +5,2 @@", " keep", "+added")  # fmt: skip
    parsed = parse_reply(diff)
    assert parsed.problems == [] and [e.path for e in parsed.edits] == ["pkg/mod.py"]
    ws = git_workspace(tmp_path, {"pkg/mod.py": "1\n2\n3\n4\nkeep\n6\n"})
    result = apply_reply(ws, diff)
    assert result.applied and result.added_lines == {"pkg/mod.py": [6]}


def test_parse_quoted_names_with_escapes_and_spaces(tmp_path: Path):
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
    parsed = parse_reply(diff)
    assert parsed.problems == []
    assert [e.path for e in parsed.edits] == ["déjà vu.py", "my file.py"]
    ws = git_workspace(tmp_path, {"my file.py": "a\n"})
    result = apply_reply(ws, diff)
    assert result.applied and result.added_lines == {"déjà vu.py": [1], "my file.py": [1]}
    assert (ws / "déjà vu.py").read_text() == "x = 1\n" and (ws / "my file.py").read_text() == "b\n"


@pytest.mark.parametrize(
    ("diff", "expected"),
    [
        (lines("--- a/f.py", "+++ b/f.py", "@@ -1 +1 @@", "-a", "+A", "-lost deletion"), "'lost deletion' is not in the file"),
        (lines("--- a/f.py", "+++ b/f.py", "@@ -1 +1 @@", "garbage", "+A"), "the line 'garbage' interrupts a hunk"),
        (lines("--- a/f.py", "+++ b/f.py", "@@ bad header @@", "+A"), "it cannot be placed"),
        (lines("diff --git a/f.py b/f.py", "--- a/f.py", "+++ b/f.py"), "no hunks"),
    ],
    ids=["extra-removed-line", "garbage-inside", "bad-header", "no-hunks"],
)
def test_broken_hunks_are_refused_naming_the_file(diff: str, expected: str, tmp_path: Path):
    ws = git_workspace(tmp_path, {"f.py": "a\nb\n"})
    result = apply_reply(ws, diff)
    assert not result.applied
    assert any(expected in p and "f.py" in p for p in result.problems), result.problems
    assert workspace_diff(ws) == ""


@pytest.mark.parametrize(
    ("diff", "after"),
    [
        (lines("--- a/f.py", "+++ b/f.py", "@@ -1,3 +1,3 @@", " a", "-b", "+B"), "a\nB\n"),
        (lines("--- a/f.py", "+++ b/f.py", "@@ -1 +1 @@", "-a", "+A", "+lost line"), "A\nlost line\nb\n"),
    ],
    ids=["truncated", "extra-added-line"],
)
def test_hunks_whose_counts_are_wrong_apply_as_written(diff: str, after: str, tmp_path: Path):
    # Deliberate change: git's parser refused these ("truncated") or silently dropped the lines past the
    # header's count ("extra-added-line"), so they were refused as malformed. The counts are not trusted
    # now: every line of the hunk is applied, and nothing else.
    ws = git_workspace(tmp_path, {"f.py": "a\nb\n"})
    result = apply_reply(ws, diff)
    assert result.applied, result.reason
    assert (ws / "f.py").read_text() == after
    assert result.files == ["f.py"]


# ------------------------------------------------------------------------------------------ safety



@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return git_workspace(tmp_path, {"app.py": "x = 1\n", "notes.txt": "one\ntwo\nthree\n"})


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_patch_is_refused_naming_the_path_and_nothing_changes(case, workspace: Path):
    diff, path = UNSAFE[case]
    problems = text_problems(diff)
    assert problems, f"{case} was considered safe"
    assert any(path in problem for problem in problems), problems

    before = snapshot(workspace.parent)
    result = apply_reply(workspace, diff)
    assert result.applied is False
    assert path in result.reason
    assert result.files == [] and result.added_lines == {} and result.diff == ""
    assert snapshot(workspace.parent) == before
    assert workspace_diff(workspace) == ""
    assert not Path("/tmp/quorum-absolute-test.txt").exists()


def test_a_clear_hunk_with_wrong_counts_is_not_unsafe(workspace: Path):
    # Deliberate change: this was the "malformed-hunk" case above (refused: its lines do not match the
    # counts in its header). It adds one line after `x = 1`; that is what it does now, and only that.
    diff = lines("--- a/app.py", "+++ b/app.py", "@@ -1,5 +1,6 @@", " x = 1", "+y = 2")
    result = apply_reply(workspace, diff)
    assert result.applied, result.reason
    assert result.files == ["app.py"] and result.added_lines == {"app.py": [2]}
    assert (workspace / "app.py").read_text() == "x = 1\ny = 2\n"
    shown = workspace_diff(workspace)
    assert shown.startswith("diff --git a/app.py b/app.py\n") and "diff --git" not in shown[1:]
    assert shown.endswith("\n--- a/app.py\n+++ b/app.py\n@@ -1 +1,2 @@\n x = 1\n+y = 2\n")


def test_oversize_patch_is_refused_naming_the_largest_file(workspace: Path):
    big = lines("--- /dev/null", "+++ b/big.txt", "@@ -0,0 +1,400 @@", *(f"+line {n}" for n in range(400)))
    small = lines("--- /dev/null", "+++ b/small.txt", "@@ -0,0 +1 @@", "+x")
    result = apply_reply(workspace, small + big, max_bytes=1000)
    assert not result.applied
    assert len(result.problems) == 1 and "too large" in result.problems[0] and "big.txt" in result.problems[0]
    assert not (workspace / "big.txt").exists() and not (workspace / "small.txt").exists()
    assert apply_reply(workspace, small + big, max_bytes=100_000, dry_run=True).applied


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "empty"), ("  \n\n", "empty"), ("this is not a diff\nat all\n", "malformed"),
     ("--- a/x\n(no +++ line follows)\n", "malformed")],
    ids=["empty", "blank", "prose", "lone-minus-header"],
)  # fmt: skip
def test_empty_or_headerless_patch_is_refused(text, expected, workspace: Path):
    problems = text_problems(text)
    assert problems and expected in problems[0]
    result = apply_reply(workspace, text)
    assert not result.applied and expected in result.reason


def test_repointing_an_existing_symlink_is_refused_although_git_would_apply_it(tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "target.txt").write_text("t\n", encoding="utf-8")
    (source / "link").symlink_to("target.txt")
    ws = Path(prepare_workspace(source, tmp_path / "work").path)
    diff = lines("--- a/link", "+++ b/link", "@@ -1 +1 @@", "-target.txt", "\\ No newline at end of file",
                 "+/etc/passwd", "\\ No newline at end of file")  # fmt: skip
    assert text_problems(diff) == []  # nothing in the text says "symlink"...
    assert run_git(["apply", "--check", "-"], ws, input=diff.encode(), check=False).returncode == 0  # ...git agrees
    result = apply_reply(ws, diff)
    assert not result.applied
    assert "symlink refused: link is a symlink in the workspace" in result.reason
    assert os.readlink(ws / "link") == "target.txt"


def test_writing_below_a_symlinked_directory_is_refused(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    source = tmp_path / "source"
    source.mkdir()
    (source / "data").symlink_to(outside)
    ws = Path(prepare_workspace(source, tmp_path / "work").path)
    result = apply_reply(ws, lines("--- /dev/null", "+++ b/data/evil.py", "@@ -0,0 +1 @@", "+x = 1"))
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
    result = apply_reply(workspace, diff)
    assert result.applied, result.reason
    assert result.reason == ""
    assert result.files == ["app.py", "pkg/new.py", "notes.txt"]
    assert result.added_lines == {"app.py": [2, 3], "pkg/new.py": [1, 2]}
    assert (workspace / "app.py").read_text(encoding="utf-8") == "x = 1\ny = 2\nz = 3\n"
    assert (workspace / "pkg/new.py").read_text(encoding="utf-8") == "def f():\n    return 42\n"
    assert not (workspace / "notes.txt").exists()
    # The normalised diff says what git sees changed in the workspace.
    def changes(diff: str) -> list[str]:
        return [line for line in diff.splitlines() if line[:1] in "+-@"]

    assert sorted(changes(result.diff)) == sorted(changes(workspace_diff(workspace)))


def test_non_applying_patch_says_why_and_changes_nothing(workspace: Path):
    diff = lines("--- a/app.py", "+++ b/app.py", "@@ -1 +1 @@", "-x = 999", "+x = 2")
    assert text_problems(diff) == []
    result = apply_reply(workspace, diff)
    assert not result.applied
    # was git's "git apply --check failed: ... patch does not apply"; now the hunk and the missing line are named
    assert result.reason.startswith("hunk #1 of app.py (diff #1): it does not apply")
    assert "the line 'x = 999' is not in the file" in result.reason
    assert (workspace / "app.py").read_text(encoding="utf-8") == "x = 1\n"
    assert workspace_diff(workspace) == ""


def test_patch_for_a_missing_file_says_so(workspace: Path):
    result = apply_reply(workspace, lines("--- a/nope.py", "+++ b/nope.py", "@@ -1 +1 @@", "-a", "+b"))
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
    assert [e.path for e in parse_reply(diff).edits] == [name]
    result = apply_reply(workspace, diff)
    assert result.applied, result.reason
    assert result.files == [name] and result.added_lines == {name: [1]}
    assert (workspace / name).read_text(encoding="utf-8") == "x = 1\n"
    assert not any(p.name == "pwned" for p in workspace.parent.rglob("pwned"))
    assert not Path("pwned").exists()


def test_unquoted_name_with_dollar_and_quote_from_a_model(workspace: Path):
    name = "it's $(touch pwned).md"
    diff = lines("--- /dev/null", f"+++ b/{name}", "@@ -0,0 +1 @@", "+hello")
    result = apply_reply(workspace, diff)
    assert result.applied, result.reason
    assert result.files == [name] and (workspace / name).read_text(encoding="utf-8") == "hello\n"
    assert not list(workspace.parent.rglob("pwned"))


def test_added_lines_follow_hunks_whose_headers_are_off(tmp_path: Path):
    ws = git_workspace(tmp_path, {"n.txt": "".join(f"{n}\n" for n in range(1, 31))})
    # The first hunk's header is 3 lines off (models get line numbers wrong); it is placed by its content.
    diff = lines("--- a/n.txt", "+++ b/n.txt", "@@ -7,3 +7,4 @@", " 10", " 11", "+X", " 12",
                 "@@ -20,2 +21,3 @@", " 20", "+Y", " 21")  # fmt: skip
    result = apply_reply(ws, diff)
    assert result.applied, result.reason
    content = (ws / "n.txt").read_text(encoding="utf-8").splitlines()
    assert result.added_lines == {"n.txt": [12, 22]}
    assert [content[n - 1] for n in result.added_lines["n.txt"]] == ["X", "Y"]
    assert [(o.hunk, o.placed_by, o.start) for o in result.edits] == [(1, "content", 10), (2, "content", 21)]


# -------------------------------------------------------------------------------------------- CRLF


def test_native_crlf_patches_apply_as_given(tmp_path: Path):
    ws = git_workspace(tmp_path, {"win.txt": b"a\r\nb\r\nc\r\n"})
    # Every line CRLF, headers included, and the reply's fence too.
    diff = "--- a/win.txt\r\n+++ b/win.txt\r\n@@ -1,3 +1,3 @@\r\n a\r\n-b\r\n+B\r\n c\r\n"
    result = apply_reply(ws, f"```diff\r\n{diff}```\r\n")
    assert result.applied, result.reason
    assert result.added_lines == {"win.txt": [2]}
    assert (ws / "win.txt").read_bytes() == b"a\r\nB\r\nc\r\n"


def test_crlf_content_for_a_crlf_file_with_lf_headers_applies(tmp_path: Path):
    ws = git_workspace(tmp_path, {"win.txt": b"a\r\nb\r\n"})
    diff = "--- a/win.txt\n+++ b/win.txt\n@@ -1,2 +1,2 @@\n a\r\n-b\r\n+B\r\n"
    result = apply_reply(ws, diff)
    assert result.applied, result.reason
    assert (ws / "win.txt").read_bytes() == b"a\r\nB\r\n"


def test_all_crlf_patch_for_an_lf_file_applies_with_lf_endings(workspace: Path):
    diff = "--- a/app.py\r\n+++ b/app.py\r\n@@ -1 +1,2 @@\r\n x = 1\r\n+y = 2\r\n"
    # Plain git refuses it (content lines carry a CR the file does not have)...
    assert run_git(["apply", "--check", "-"], workspace, input=diff.encode(), check=False).returncode != 0
    # ...the reply's line endings are not the file's: the file stays LF.
    result = apply_reply(workspace, diff)
    assert result.applied, result.reason
    assert result.added_lines == {"app.py": [2]}
    assert (workspace / "app.py").read_bytes() == b"x = 1\ny = 2\n"


def test_mixed_crlf_patch_applies_with_the_files_line_endings(workspace: Path):
    # Deliberate change: only some lines CRLF was refused (git: the CR makes the context differ). The
    # intent is clear, so it applies, and the file keeps its LF endings.
    diff = "--- a/app.py\n+++ b/app.py\n@@ -1 +1,2 @@\n x = 1\r\n+y = 2\n"
    result = apply_reply(workspace, diff)
    assert result.applied, result.reason
    assert (workspace / "app.py").read_bytes() == b"x = 1\ny = 2\n"


# ------------------------------------------------------------------------------------------ extract

SIMPLE = lines("diff --git a/app.py b/app.py", "--- a/app.py", "+++ b/app.py", "@@ -1 +1 @@", "-x = 1", "+x = 2")


@pytest.mark.parametrize(
    "reply",
    [f"Here is the change.\n\n```diff\n{SIMPLE}```\n\nIt bumps x.",
     f"Plan:\n```python\nprint('not a diff')\n```\n```patch\n{SIMPLE}```\n",
     f"```diff\n```\nthen\n```diff\n{SIMPLE}```",
     "I changed one line:\n" + SIMPLE.rstrip("\n"),
     "Some text\n---\nMore text\n--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n",
     f"Result:\n```\n{SIMPLE}```\nDone, hope it helps.\n",
     f"```diff\n{SIMPLE}",
     f"Sure!\n```diff\n{SIMPLE}```",
     f"~~~patch\n{SIMPLE}~~~\n"],
    ids=["diff-fence", "patch-fence-after-python", "empty-block-skipped", "unfenced-diff-git", "unfenced-minus-plus",
         "unlabelled-fence-stops-at-its-end", "unclosed-fence", "sure", "tilde-fence"],
)  # fmt: skip
def test_the_diff_is_found_in_the_reply_and_applies(reply: str, workspace: Path):
    result = apply_reply(workspace, reply)
    assert result.applied, result.reason
    assert result.files == ["app.py"] and result.added_lines == {"app.py": [1]}
    assert (workspace / "app.py").read_text(encoding="utf-8") == "x = 2\n"


def test_a_second_diff_block_without_a_hunk_refuses_the_reply(workspace: Path):
    # Deliberate change: extract_diff took the first diff block and silently dropped the rest (a
    # second file's changes were lost while the result said "applied"). Every block counts now, so a
    # broken one stops the whole reply, with the reason.
    reply = f"Plan:\n```python\nprint('not a diff')\n```\n```patch\n{SIMPLE}```\n```diff\n--- other\n```"
    result = apply_reply(workspace, reply)
    assert not result.applied and "```diff block #3 holds no hunk" in result.reason
    assert workspace_diff(workspace) == ""


def test_fence_lines_inside_the_diff_do_not_close_it(tmp_path: Path):
    ws = git_workspace(tmp_path, {"README.md": "# T\n"})
    diff = lines("--- a/README.md", "+++ b/README.md", "@@ -1 +1,4 @@", " # T", "+```python", "+x = 1", "+```")
    for fence in ("````", "```"):  # "+```" does not close a ``` block
        result = apply_reply(ws, f"{fence}diff\n{diff}{fence}\n", dry_run=True)
        assert result.applied, result.reason
        assert result.added_lines == {"README.md": [2, 3, 4]}
    assert apply_reply(ws, f"```diff\n{diff}```\n").applied
    assert (ws / "README.md").read_text() == "# T\n```python\nx = 1\n```\n"


@pytest.mark.parametrize(
    "reply",
    ["", "   ", "No diff here.\n---\nJust prose.", "```python\nx = 1\n```"],
    ids=["empty", "blank", "prose", "python"],
)
def test_a_reply_without_a_diff_is_refused_saying_what_was_expected(reply, workspace: Path):
    result = apply_reply(workspace, reply)
    assert not result.applied and "diff" in result.reason
    assert workspace_diff(workspace) == ""


def test_apply_to_a_directory_that_is_not_a_git_repository(tmp_path: Path):
    # Deliberate change: git was needed, so a plain directory was refused; the applier needs no git now.
    (tmp_path / "app.py").write_text("x = 1\n", encoding="utf-8")
    result = apply_reply(tmp_path, SIMPLE)
    assert result.applied, result.reason
    assert (tmp_path / "app.py").read_text(encoding="utf-8") == "x = 2\n"
    assert not (tmp_path / ".git").exists()
