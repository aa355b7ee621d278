"""Every edit format and every tolerated sloppiness, through the public `apply_reply`."""

from __future__ import annotations

from pathlib import Path

import pytest

from quorum.edits import (
    ApplyResult,
    EditFormat,
    MatchKind,
    apply_reply,
    default_edit_format,
    format_instructions,
    parse_reply,
    reask_message,
    resolve_edit_format,
)
from tests.support.edits import git, lines, make_git_repo, make_repo, snapshot, write_tree

MOD = "src/pkg/mod.py"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    return make_git_repo(tmp_path)


def read(root: Path, name: str) -> str:
    return (root / name).read_text(encoding="utf-8")


def ok(result: ApplyResult) -> ApplyResult:
    assert result.applied, result.reason
    assert result.reason == ""
    return result


def diff_block(*body: str, lang: str = "diff") -> str:
    return f"```{lang}\n" + lines(*body) + "```\n"


MOD_HUNK = (
    "@@ -4,4 +4,5 @@",
    " def load(path):",
    "     with open(path) as handle:",
    "         data = handle.read()",
    "-    return parse(data)",
    "+    result = parse(data)",
    "+    return validate(result)",
)
MOD_AFTER = (
    "import os\n\n\ndef load(path):\n    with open(path) as handle:\n        data = handle.read()\n"
    "    result = parse(data)\n    return validate(result)\n\n\ndef save(path, data):\n"
    "    with open(path, 'w') as handle:\n        handle.write(data)\n"
)


def test_clean_diff_applies_and_reports_format_match_lines_and_a_diff_git_accepts(repo: Path, tmp_path: Path):
    reply = "Here it is.\n" + diff_block(f"diff --git a/{MOD} b/{MOD}", f"--- a/{MOD}", f"+++ b/{MOD}", *MOD_HUNK)
    pristine = write_tree(tmp_path / "pristine", {MOD: read(repo, MOD)})
    result = ok(apply_reply(repo, reply))
    assert read(repo, MOD) == MOD_AFTER
    assert result.format == "udiff" and result.files == [MOD]
    assert result.added_lines == {MOD: [7, 8]}
    assert [(e.file, e.hunk, e.match, e.applied, e.start) for e in result.edits] == [(MOD, 1, MatchKind.exact, True, 4)]
    # The normalised diff is what git apply would take, and it gives the same file.
    assert result.diff.startswith(f"diff --git a/{MOD} b/{MOD}\n--- a/{MOD}\n+++ b/{MOD}\n@@ ")
    done = git(["apply", "-"], pristine, input=result.diff.encode())
    assert done.returncode == 0, done.stderr
    assert read(pristine, MOD) == MOD_AFTER


@pytest.mark.parametrize(
    "header",
    ["@@ -40,4 +40,5 @@", "@@ -4,9 +4,2 @@", "@@ ... @@", "@@ @@", "@@"],
    ids=["wrong-start", "wrong-counts", "dots", "empty", "bare"],
)
def test_hunk_headers_are_not_trusted(repo: Path, header: str):
    reply = diff_block(f"--- a/{MOD}", f"+++ b/{MOD}", header, *MOD_HUNK[1:])
    result = ok(apply_reply(repo, reply))
    assert read(repo, MOD) == MOD_AFTER and result.edits[0].match == MatchKind.exact


def test_paths_without_a_b_prefixes(repo: Path):
    reply = diff_block(f"diff --git {MOD} {MOD}", f"--- {MOD}", f"+++ {MOD}", *MOD_HUNK)
    ok(apply_reply(repo, reply))
    assert read(repo, MOD) == MOD_AFTER


def test_two_fenced_blocks_one_per_file_both_apply(repo: Path):
    reply = (
        "First file:\n"
        + diff_block(f"--- a/{MOD}", f"+++ b/{MOD}", *MOD_HUNK)
        + "\nSecond file:\n"
        + diff_block("--- a/notes.txt", "+++ b/notes.txt", "@@ -1,3 +1,3 @@", " one", "-two", "+TWO", " three")
    )
    result = ok(apply_reply(repo, reply))
    assert read(repo, MOD) == MOD_AFTER and read(repo, "notes.txt") == "one\nTWO\nthree\n"
    assert result.files == [MOD, "notes.txt"] and len(result.edits) == 2


@pytest.mark.parametrize("lang", ["python", "", "patch"])
def test_any_fence_label_and_unfenced(repo: Path, lang: str):
    body = (f"--- a/{MOD}", f"+++ b/{MOD}", *MOD_HUNK)
    ok(apply_reply(repo, diff_block(*body, lang=lang)))
    assert read(repo, MOD) == MOD_AFTER


def test_unfenced_diff_with_markdown_fences_as_context(tmp_path: Path):
    root = write_tree(tmp_path / "r", {"README.md": "# T\n\n```\ncode\n```\n\nend\n"})
    reply = "Change:\n" + lines("--- a/README.md", "+++ b/README.md", "@@ -3,5 +3,5 @@", " ```", "-code",
                                "+better code", " ```", " ", " end")  # fmt: skip
    ok(apply_reply(root, reply))
    assert read(root, "README.md") == "# T\n\n```\nbetter code\n```\n\nend\n"


def test_final_blank_context_line_with_stripped_space(repo: Path):
    reply = diff_block(
        f"--- a/{MOD}", f"+++ b/{MOD}", "@@ -5,6 +5,7 @@", "     with open(path) as handle:",
        "         data = handle.read()", "-    return parse(data)", "+    result = parse(data)",
        "+    return validate(result)", "", "",
    )  # fmt: skip
    ok(apply_reply(repo, reply))
    assert read(repo, MOD) == MOD_AFTER


def test_context_indentation_drift_keeps_added_lines_as_written(repo: Path):
    reply = diff_block(
        f"--- a/{MOD}", f"+++ b/{MOD}", "@@ -4,4 +4,5 @@", " def load(path):", "       with open(path) as handle:",
        "         data = handle.read()  ", "-    return parse(data)", "+    result = parse(data)",
        "+    return validate(result)",
    )  # fmt: skip
    result = ok(apply_reply(repo, reply))
    assert read(repo, MOD) == MOD_AFTER
    assert result.edits[0].match == MatchKind.indent


def test_whole_hunk_dedented_is_reindented(repo: Path):
    reply = diff_block(
        f"--- a/{MOD}", f"+++ b/{MOD}", "@@ ... @@", " with open(path) as handle:", "     data = handle.read()",
        "-return parse(data)", "+result = parse(data)", "+return validate(result)",
    )  # fmt: skip
    result = ok(apply_reply(repo, reply))
    assert read(repo, MOD) == MOD_AFTER
    assert result.edits[0].match == MatchKind.indent


def test_indentation_guess_that_breaks_python_is_refused(tmp_path: Path):
    # Context shifted uniformly, added lines written at the file's own indentation: shifting them
    # with the context would give invalid Python, so the reply is refused rather than guessed.
    root = write_tree(tmp_path / "r", {"f.py": "def f():\n    a = 1\n    return a\n"})
    reply = diff_block("--- a/f.py", "+++ b/f.py", "@@ ... @@", " a = 1", "-return a", "+    b = a + 1", "+    return b")
    result = apply_reply(root, reply)
    assert not result.applied and "would not be valid Python" in result.reason and "hunk #1 of f.py" in result.reason
    assert read(root, "f.py") == "def f():\n    a = 1\n    return a\n"
    # The same hunk shifted as a whole (added lines too) applies, re-indented.
    reply = diff_block("--- a/f.py", "+++ b/f.py", "@@ ... @@", " a = 1", "-return a", "+b = a + 1", "+return b")
    assert ok(apply_reply(root, reply)).edits[0].match == MatchKind.indent
    assert read(root, "f.py") == "def f():\n    a = 1\n    b = a + 1\n    return b\n"


def test_trailing_whitespace_drift_is_whitespace_match(repo: Path):
    reply = diff_block(
        f"--- a/{MOD}", f"+++ b/{MOD}", "@@ ... @@", " def load(path):   ", "     with open(path)  as handle:",
        "         data = handle.read()", "-    return parse(data)", "+    result = parse(data)",
        "+    return validate(result)",
    )  # fmt: skip
    assert ok(apply_reply(repo, reply)).edits[0].match == MatchKind.whitespace
    assert read(repo, MOD) == MOD_AFTER


def test_existing_code_elision_when_unique(repo: Path):
    reply = diff_block(
        f"--- a/{MOD}", f"+++ b/{MOD}", "@@ ... @@", " def load(path):", "     # ... existing code ...",
        "-    return parse(data)", "+    result = parse(data)", "+    return validate(result)", " ", " ",
        " def save(path, data):",
    )  # fmt: skip
    result = ok(apply_reply(repo, reply))
    assert read(repo, MOD) == MOD_AFTER
    assert result.edits[0].match == MatchKind.elision


def test_elision_that_leaves_the_insertion_point_open_is_refused(tmp_path: Path):
    root = write_tree(tmp_path / "r", {"m.py": "class A:\n    x = 1\n    return_value = 2\n    y = 3\n    return_value = 2\n"})
    reply = diff_block("--- a/m.py", "+++ b/m.py", "@@ ... @@", " class A:", "     # ... existing code ...",
                       "+    inserted = 0", "     return_value = 2")  # fmt: skip
    before = snapshot(root)
    result = apply_reply(root, reply)
    assert not result.applied
    assert "hunk #1 of m.py" in result.reason and "ambiguous" in result.reason and "2 places" in result.reason
    assert snapshot(root) == before


def test_literal_ellipsis_line_is_matched_literally_first(tmp_path: Path):
    root = write_tree(tmp_path / "r", {"p.py": "class P(Protocol):\n    def f(self) -> int:\n        ...\n"})
    reply = diff_block("--- a/p.py", "+++ b/p.py", "@@ ... @@", "     def f(self) -> int:", "-        ...",
                       "+        raise NotImplementedError")  # fmt: skip
    result = ok(apply_reply(root, reply))
    assert read(root, "p.py").endswith("        raise NotImplementedError\n")
    assert result.edits[0].match == MatchKind.exact


def test_zero_context_hunk_applies_when_its_removed_lines_are_unique(repo: Path):
    reply = diff_block(f"--- a/{MOD}", f"+++ b/{MOD}", "@@ -7 +7,2 @@", "-    return parse(data)",
                       "+    result = parse(data)", "+    return validate(result)")  # fmt: skip
    ok(apply_reply(repo, reply))
    assert read(repo, MOD) == MOD_AFTER


def test_zero_context_insertion_is_refused_as_unplaceable(repo: Path):
    reply = diff_block(f"--- a/{MOD}", f"+++ b/{MOD}", "@@ -72,0 +73 @@", "+import sys")
    result = apply_reply(repo, reply)
    assert not result.applied
    assert f"hunk #1 of {MOD}" in result.reason and "cannot be placed" in result.reason and "no context" in result.reason


def test_zero_context_hunk_with_repeated_removed_line_is_refused_as_ambiguous(tmp_path: Path):
    root = write_tree(tmp_path / "r", {"m.py": "a = 1\npass\nb = 2\npass\n"})
    result = apply_reply(root, diff_block("--- a/m.py", "+++ b/m.py", "@@ ... @@", "-pass", "+return"))
    assert not result.applied and "ambiguous" in result.reason and "old lines 2, 4" in result.reason
    assert read(root, "m.py") == "a = 1\npass\nb = 2\npass\n"


def test_elided_hunk_whose_later_change_fits_twice_is_refused_saying_where(tmp_path: Path):
    body = "def f():\n    a = 0\n    x = 1\n    y = 2\n    x = 1\n    return x\n"
    root = write_tree(tmp_path / "r", {"m.py": body})
    reply = diff_block("--- a/m.py", "+++ b/m.py", "@@ ... @@", " def f():", "-    a = 0", "+    a = 5",
                       " # ... existing code ...", "-    x = 1", "+    x = 10")  # fmt: skip
    result = apply_reply(root, reply)
    assert not result.applied
    assert "it matches 2 ways: its '...' lines can stand for different runs of lines" in result.reason
    assert "its changes could go at old lines 3, 5" in result.reason
    assert read(root, "m.py") == body
    # Without the elision the same change is placed at once.
    exact = diff_block("--- a/m.py", "+++ b/m.py", "@@ ... @@", " def f():", "-    a = 0", "+    a = 5", "     x = 1")
    assert apply_reply(root, exact).applied


def test_ambiguous_hunk_is_placed_by_the_order_of_its_neighbours(tmp_path: Path):
    text = "".join(f"line {n}\n" for n in range(1, 9)) + "dup\n" + "".join(f"mid {n}\n" for n in range(5)) + "dup\nend\n"
    root = write_tree(tmp_path / "r", {"m.txt": text})
    reply = diff_block(
        "--- a/m.txt", "+++ b/m.txt",
        "@@ ... @@", " line 1", "-line 2", "+LINE 2",
        "@@ ... @@", " mid 4", "-dup", "+DUP",
    )  # fmt: skip
    result = ok(apply_reply(root, reply))
    assert read(root, "m.txt").endswith("mid 4\nDUP\nend\n") and read(root, "m.txt").count("dup\n") == 1
    reply2 = diff_block("--- a/m.txt", "+++ b/m.txt", "@@ ... @@", " mid 2", "-mid 3", "+MID 3",
                        "@@ ... @@", "-dup", "+DUP")  # fmt: skip
    result = ok(apply_reply(write_tree(tmp_path / "r2", {"m.txt": text}), reply2))
    assert result.edits[1].placed_by == "hunk order"
    assert (tmp_path / "r2/m.txt").read_text().endswith("mid 4\nDUP\nend\n")


def test_ambiguous_hunk_is_placed_by_confirmed_line_numbers(tmp_path: Path):
    text = "a\npass\nc\nb\npass\nc\n"
    root = write_tree(tmp_path / "r", {"m.py": text})
    result = ok(apply_reply(root, diff_block("--- a/m.py", "+++ b/m.py", "@@ -5,2 +5,2 @@", "-pass", "+return", " c")))
    assert read(root, "m.py") == "a\npass\nc\nb\nreturn\nc\n"
    assert result.edits[0].placed_by == "line numbers"
    # Numbers that point at no matching place settle nothing.
    root2 = write_tree(tmp_path / "r2", {"m.py": "x\n" + text.replace("c\n", "pass\nc\n")})
    refused = apply_reply(root2, diff_block("--- a/m.py", "+++ b/m.py", "@@ -4,1 +4,1 @@", " b", "-pass", "+return"))
    assert refused.applied  # " b" then "pass" is unique: content alone places it
    root3 = write_tree(tmp_path / "r3", {"m.py": "pass\nq\npass\nq\n"})
    refused = apply_reply(root3, diff_block("--- a/m.py", "+++ b/m.py", "@@ -2,2 +2,2 @@", "-pass", "+return", " q"))
    assert not refused.applied and "ambiguous" in refused.reason


def test_overlapping_hunks_are_refused(tmp_path: Path):
    root = write_tree(tmp_path / "r", {"m.txt": "a\nb\nc\nd\n"})
    reply = diff_block("--- a/m.txt", "+++ b/m.txt", "@@ ... @@", " a", "-b", "+B", " c",
                       "@@ ... @@", " b", "-c", "+C", " d")  # fmt: skip
    result = apply_reply(root, reply)
    assert not result.applied and "overlaps" in result.reason and "hunk #2 of m.txt" in result.reason


# ------------------------------------------------------------------------------- SEARCH/REPLACE

SR = lines("<<<<<<< SEARCH", "    return parse(data)", "=======", "    result = parse(data)",
           "    return validate(result)", ">>>>>>> REPLACE")  # fmt: skip


def test_search_replace_with_the_path_before_the_fence(repo: Path):
    result = ok(apply_reply(repo, f"Edit:\n\n{MOD}\n```python\n{SR}```\n"))
    assert read(repo, MOD) == MOD_AFTER
    assert result.format == "search_replace" and result.added_lines == {MOD: [7, 8]}


@pytest.mark.parametrize("decorated", [f"**{MOD}**", f"`{MOD}`", f"### {MOD}", f"File: {MOD}", f"{MOD}:"])
def test_search_replace_path_decorations(repo: Path, decorated: str):
    ok(apply_reply(repo, f"{decorated}\n```python\n{SR}```\n"))
    assert read(repo, MOD) == MOD_AFTER


def test_search_replace_with_the_path_inside_the_fence_and_several_blocks(repo: Path):
    second = lines("<<<<<<< SEARCH", "one", "=======", "ONE", ">>>>>>> REPLACE")
    reply = f"```\n{MOD}\n{SR}\nnotes.txt\n{second}```\n"
    result = ok(apply_reply(repo, reply))
    assert read(repo, MOD) == MOD_AFTER and read(repo, "notes.txt") == "ONE\ntwo\nthree\n"
    assert [e.format for e in result.edits] == [EditFormat.search_replace] * 2


def test_search_replace_blocks_apply_one_after_the_other(tmp_path: Path):
    root = write_tree(tmp_path / "r", {"m.py": "a = 1\nb = 2\n"})
    first = lines("<<<<<<< SEARCH", "a = 1", "=======", "a = 10", ">>>>>>> REPLACE")
    second = lines("<<<<<<< SEARCH", "a = 10", "b = 2", "=======", "a = 10", "b = 20", ">>>>>>> REPLACE")
    ok(apply_reply(root, f"m.py\n```python\n{first}{second}```\n"))
    assert read(root, "m.py") == "a = 10\nb = 20\n"


def test_search_replace_with_markdown_fences_inside(tmp_path: Path):
    root = write_tree(tmp_path / "r", {"README.md": "# T\n\n```\nold\n```\n"})
    block = lines("<<<<<<< SEARCH", "```", "old", "```", "=======", "```", "new", "```", ">>>>>>> REPLACE")
    ok(apply_reply(root, f"README.md\n```markdown\n{block}```\n"))
    assert read(root, "README.md") == "# T\n\n```\nnew\n```\n"


def test_search_replace_elision_pairs(repo: Path):
    block = lines("<<<<<<< SEARCH", "def load(path):", "    # ... existing code ...", "    return parse(data)",
                  "=======", "def load(path):", "    # ... existing code ...", "    return validate(parse(data))",
                  ">>>>>>> REPLACE")  # fmt: skip
    result = ok(apply_reply(repo, f"{MOD}\n```python\n{block}```\n"))
    assert "    return validate(parse(data))\n" in read(repo, MOD) and "handle.read()" in read(repo, MOD)
    assert result.edits[0].match == MatchKind.elision


def test_ambiguous_search_block_is_refused(tmp_path: Path):
    root = write_tree(tmp_path / "r", {"m.py": "x = 1\ny = 2\nx = 1\n"})
    block = lines("<<<<<<< SEARCH", "x = 1", "=======", "x = 1", "z = 3", ">>>>>>> REPLACE")
    result = apply_reply(root, f"m.py\n```python\n{block}```\n")
    assert not result.applied
    assert "SEARCH/REPLACE block of m.py" in result.reason and "ambiguous" in result.reason
    assert read(root, "m.py") == "x = 1\ny = 2\nx = 1\n"


def test_search_text_not_in_the_file_names_the_missing_line(repo: Path):
    block = lines("<<<<<<< SEARCH", "    return parse(DATA)", "=======", "    return 1", ">>>>>>> REPLACE")
    result = apply_reply(repo, f"{MOD}\n```python\n{block}```\n")
    assert not result.applied and "'return parse(DATA)' is not in the file" in result.reason and MOD in result.reason


def test_search_replace_creates_a_new_file_with_an_empty_search(repo: Path):
    block = lines("<<<<<<< SEARCH", "=======", "def f():", "    return 42", ">>>>>>> REPLACE")
    result = ok(apply_reply(repo, f"src/pkg/new.py\n```python\n{block}```\n"))
    assert read(repo, "src/pkg/new.py") == "def f():\n    return 42\n"
    assert result.edits[0].match == MatchKind.new_file and result.added_lines == {"src/pkg/new.py": [1, 2]}


def test_empty_search_for_an_existing_file_is_refused(repo: Path):
    block = lines("<<<<<<< SEARCH", "=======", "y = 2", ">>>>>>> REPLACE")
    result = apply_reply(repo, f"app.py\n```python\n{block}```\n")
    assert not result.applied and "SEARCH part is empty" in result.reason and read(repo, "app.py") == "x = 1\n"


def test_search_replace_without_a_path_is_refused(repo: Path):
    result = apply_reply(repo, f"Here:\n```python\n{SR}```\n")
    assert not result.applied and "no file path" in result.reason


def test_unterminated_search_replace_is_refused(repo: Path):
    result = apply_reply(repo, f"{MOD}\n```python\n<<<<<<< SEARCH\n    return parse(data)\n=======\nx\n```\n")
    assert not result.applied and "REPLACE' missing" in result.reason


# ------------------------------------------------------------------------------------ whole file


def test_whole_file_for_a_small_file(repo: Path):
    result = ok(apply_reply(repo, f"Updated:\n\n{MOD}\n```python\n{MOD_AFTER}```\n"))
    assert read(repo, MOD) == MOD_AFTER
    assert result.format == "whole_file" and result.edits[0].match == MatchKind.whole_file
    assert result.added_lines == {MOD: [7, 8]}


def test_whole_file_creates_a_new_file(repo: Path):
    ok(apply_reply(repo, "docs/guide.md\n```markdown\n# Guide\n\nText.\n```\n"))
    assert read(repo, "docs/guide.md") == "# Guide\n\nText.\n"


def test_whole_file_for_a_large_file_is_refused(tmp_path: Path):
    big = "".join(f"v{n} = {n}\n" for n in range(500))
    root = write_tree(tmp_path / "r", {"big.py": big})
    result = apply_reply(root, "big.py\n```python\n" + big.replace("v1 = 1\n", "v1 = 100\n") + "```\n")
    assert not result.applied and "500 lines, over the limit of 400" in result.reason and "big.py" in result.reason
    assert read(root, "big.py") == big


def test_whole_file_with_a_placeholder_is_refused(repo: Path):
    result = apply_reply(repo, f"{MOD}\n```python\nimport os\n\n# ... existing code ...\n\ndef save():\n    pass\n```\n")
    assert not result.applied and "placeholder" in result.reason and read(repo, MOD).startswith("import os\n\n\ndef load")


def test_fragment_after_a_path_is_refused_or_ignored_next_to_a_diff(tmp_path: Path):
    text = "".join(f"def f{n}():\n    return {n}\n\n" for n in range(8))
    root = write_tree(tmp_path / "r", {"m.py": text})
    fragment = "m.py\n```python\ndef f3():\n    return 33\n```\n"
    result = apply_reply(root, fragment)
    assert not result.applied and "keeps only" in result.reason and read(root, "m.py") == text
    with_diff = fragment + diff_block("--- a/m.py", "+++ b/m.py", "@@ ... @@", " def f3():", "-    return 3", "+    return 33")
    result = ok(apply_reply(root, with_diff))
    assert "return 33" in read(root, "m.py") and "def f7" in read(root, "m.py")
    assert any("illustration" in note for note in result.notes)


def test_a_command_block_after_a_path_is_not_a_whole_file(repo: Path):
    reply = "Then run the tests of app.py:\n\napp.py\n```bash\npython app.py\n```\n" + diff_block(
        "--- a/notes.txt", "+++ b/notes.txt", "@@ ... @@", " one", "-two", "+2")
    result = ok(apply_reply(repo, reply))
    assert read(repo, "app.py") == "x = 1\n" and result.files == ["notes.txt"]
    assert any("not app.py's language" in note for note in result.notes)


def test_illustration_without_a_path_is_ignored(repo: Path):
    reply = "For example:\n```python\nprint('hello')\n```\n" + diff_block(f"--- a/{MOD}", f"+++ b/{MOD}", *MOD_HUNK)
    result = ok(apply_reply(repo, reply))
    assert result.files == [MOD]


# ------------------------------------------------------------------------------ new and deleted


def test_new_file_and_deletion_by_diff(repo: Path):
    reply = diff_block(
        "diff --git a/pkg/new.py b/pkg/new.py", "new file mode 100644", "--- /dev/null", "+++ b/pkg/new.py",
        "@@ -0,0 +1,2 @@", "+def f():", "+    return 42",
        "diff --git a/notes.txt b/notes.txt", "deleted file mode 100644", "--- a/notes.txt", "+++ /dev/null",
        "@@ -1,3 +0,0 @@", "-one", "-two", "-three",
    )  # fmt: skip
    result = ok(apply_reply(repo, reply))
    assert read(repo, "pkg/new.py") == "def f():\n    return 42\n" and not (repo / "notes.txt").exists()
    assert result.files == ["pkg/new.py", "notes.txt"] and result.added_lines == {"pkg/new.py": [1, 2]}
    assert [e.match for e in result.edits] == [MatchKind.new_file, MatchKind.deleted]


def test_deletion_that_does_not_list_the_files_lines_is_refused(repo: Path):
    reply = diff_block("--- a/notes.txt", "+++ /dev/null", "@@ -1,2 +0,0 @@", "-one", "-two")
    result = apply_reply(repo, reply)
    assert not result.applied and "notes.txt" in result.reason and "current content" in result.reason
    assert (repo / "notes.txt").exists()


def test_new_file_diff_for_an_existing_file_is_refused(repo: Path):
    result = apply_reply(repo, diff_block("--- /dev/null", "+++ b/app.py", "@@ -0,0 +1 @@", "+y = 2"))
    assert not result.applied and "app.py already exists" in result.reason


def test_missing_file_is_refused_with_a_suggestion(repo: Path):
    reply = diff_block("--- a/pkg/mod.py", "+++ b/pkg/mod.py", *MOD_HUNK)
    result = apply_reply(repo, reply)
    assert not result.applied
    assert "No such file in the repository: pkg/mod.py" in result.reason and f"did you mean {MOD}" in result.reason


def test_rename_with_a_hunk(repo: Path, tmp_path: Path):
    reply = diff_block("diff --git a/notes.txt b/docs/notes.txt", "similarity index 80%", "rename from notes.txt",
                       "rename to docs/notes.txt", "--- a/notes.txt", "+++ b/docs/notes.txt", "@@ -1,3 +1,3 @@",
                       " one", "-two", "+TWO", " three")  # fmt: skip
    pristine = write_tree(tmp_path / "pristine", {"notes.txt": read(repo, "notes.txt")})
    result = ok(apply_reply(repo, reply))
    assert not (repo / "notes.txt").exists() and read(repo, "docs/notes.txt") == "one\nTWO\nthree\n"
    assert "rename from notes.txt" in result.diff
    assert git(["apply", "-"], pristine, input=result.diff.encode()).returncode == 0
    assert read(pristine, "docs/notes.txt") == "one\nTWO\nthree\n"


# --------------------------------------------------------------------------- all or nothing, dry run


def test_one_bad_edit_means_nothing_is_applied(repo: Path):
    before = snapshot(repo)
    reply = diff_block(f"--- a/{MOD}", f"+++ b/{MOD}", *MOD_HUNK) + "\napp.py\n```python\n" + lines(
        "<<<<<<< SEARCH", "x = 999", "=======", "x = 2", ">>>>>>> REPLACE") + "```\n"  # fmt: skip
    result = apply_reply(repo, reply)
    assert not result.applied and snapshot(repo) == before
    assert "SEARCH/REPLACE block of app.py (edit #2)" in result.reason and "'x = 999' is not in the file" in result.reason
    assert result.files == [] and result.added_lines == {} and result.diff == ""
    good, bad = result.edits
    assert good.match == MatchKind.exact and not good.applied and good.reason == ""
    assert bad.match == MatchKind.none and bad.reason


def test_every_failing_hunk_is_reported(repo: Path):
    reply = diff_block("--- a/notes.txt", "+++ b/notes.txt", "@@ ... @@", " one", "-zwei", "+2",
                       "@@ ... @@", " two", "-drei", "+3")  # fmt: skip
    result = apply_reply(repo, reply)
    assert "hunk #1 of notes.txt" in result.reason and "hunk #2 of notes.txt" in result.reason


def test_dry_run_writes_nothing_but_reports_everything(repo: Path):
    before = snapshot(repo)
    result = ok(apply_reply(repo, diff_block(f"--- a/{MOD}", f"+++ b/{MOD}", *MOD_HUNK), dry_run=True))
    assert result.dry_run and result.files == [MOD] and result.added_lines == {MOD: [7, 8]} and result.diff
    assert snapshot(repo) == before


def test_repeated_diff_is_applied_once(repo: Path):
    block = diff_block("--- a/notes.txt", "+++ b/notes.txt", "@@ ... @@", " one", "+one and a half", " two")
    result = ok(apply_reply(repo, block + "\nTo recap:\n" + block))
    assert read(repo, "notes.txt") == "one\none and a half\ntwo\nthree\n"
    assert any("repeats" in note for note in result.notes)


def test_adding_a_placeholder_line_is_refused(repo: Path):
    reply = diff_block("--- a/notes.txt", "+++ b/notes.txt", "@@ ... @@", " one", "+# ... existing code ...", " two")
    result = apply_reply(repo, reply)
    assert not result.applied and "placeholder" in result.reason


def test_works_in_a_git_checkout_too(git_repo: Path):
    ok(apply_reply(git_repo, diff_block("--- a/app.py", "+++ b/app.py", "@@ -1 +1,2 @@", " x = 1", "+y = 2")))
    assert read(git_repo, "app.py") == "x = 1\ny = 2\n"
    assert git(["status", "--porcelain"], git_repo).stdout.decode().strip() == "M app.py"


def test_parse_reply_lists_every_block_in_order():
    reply = (
        diff_block("--- a/a.py", "+++ b/a.py", "@@ ... @@", " x", "+y")
        + "b.py\n```python\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```\n"
        + "c.txt\n```\nwhole\n```\n"
    )
    parsed = parse_reply(reply)
    assert parsed.problems == []
    assert [(e.format, e.path, e.block) for e in parsed.edits] == [
        (EditFormat.udiff, "a.py", 1), (EditFormat.search_replace, "b.py", 2), (EditFormat.whole_file, "c.txt", 3),
    ]  # fmt: skip


def test_no_newline_at_end_of_file_markers(tmp_path: Path):
    root = write_tree(tmp_path / "r", {"a.txt": "one\ntwo"})
    diff = lines("--- a/a.txt", "+++ b/a.txt", "@@ -1,2 +1,3 @@", " one", "-two", "\\ No newline at end of file",
                 "+two", "+three")  # fmt: skip
    result = apply_reply(root, diff)
    assert result.applied and (root / "a.txt").read_text() == "one\ntwo\nthree\n"
    assert "\\ No newline at end of file" in result.diff


# ------------------------------------------------------------------------------ formats, re-ask


def test_default_edit_format_per_model_family():
    assert default_edit_format("deepseek/deepseek-chat") == EditFormat.search_replace
    assert default_edit_format("gemini/gemini-2.5-flash") == EditFormat.search_replace
    assert default_edit_format("openai/gpt-5-mini") == EditFormat.search_replace
    assert default_edit_format("anthropic/claude-sonnet-4-5") == EditFormat.udiff
    assert default_edit_format("openai/gpt-5") == EditFormat.udiff
    assert default_edit_format("ollama/llama3.2:3b") == EditFormat.whole_file
    assert default_edit_format("scripted/deepseek-chat") == EditFormat.udiff
    assert default_edit_format("somebody/unknown-model") == EditFormat.search_replace
    assert resolve_edit_format("deepseek/deepseek-chat", "whole_file") == EditFormat.whole_file
    with pytest.raises(ValueError, match="unknown edit format"):
        resolve_edit_format("x/y", "patchy")


@pytest.mark.parametrize(
    ("fmt", "marker"),
    [(EditFormat.udiff, "--- a/src/app.py"), (EditFormat.search_replace, "<<<<<<< SEARCH"),
     (EditFormat.whole_file, "at most 400 lines")],
)  # fmt: skip
def test_format_instructions_describe_each_format(fmt: EditFormat, marker: str):
    text = format_instructions(fmt)
    assert marker in text and "every edit in your reply is applied, or none is".lower() in text.lower()


@pytest.mark.parametrize("fmt", list(EditFormat))
def test_the_example_in_each_format_instruction_applies(fmt: EditFormat, tmp_path: Path):
    original = "def load(path):\n    with open(path) as handle:\n        data = handle.read()\n    return parse(data)\n\n\ndef save(path, data):\n    pass\n"
    root = write_tree(tmp_path / "r", {"src/app.py": original})
    text = format_instructions(fmt)
    if fmt == EditFormat.whole_file:
        reply = "src/app.py\n```python\n" + original.replace("    return parse(data)\n", "    return validate(parse(data))\n") + "```\n"
    else:
        start = text.index("src/app.py\n```") if fmt == EditFormat.search_replace else text.index("```diff")
        reply = text[start : text.index("```\n", text.index("\n", start + 15) + 1) + 4]
    result = apply_reply(root, reply)
    assert result.applied, result.reason
    assert "validate" in (root / "src/app.py").read_text()


def test_reask_message_carries_the_reasons(repo: Path):
    result = apply_reply(repo, "app.py\n```\n<<<<<<< SEARCH\nx = 999\n=======\nx = 2\n>>>>>>> REPLACE\n```\n")
    message = reask_message(result, EditFormat.search_replace)
    assert "NOTHING was changed" in message and "SEARCH/REPLACE block of app.py" in message
    assert "'x = 999' is not in the file" in message and "search_replace format" in message
    refused = apply_reply(repo, "```diff\n--- other\n```\n")
    assert refused.problems == ["```diff block #1 holds no hunk: a diff needs ---/+++ file headers and @@ hunks"]
    assert "- ```diff block #1 holds no hunk" in reask_message(refused)


def test_reask_message_carries_safety_refusals_too(repo: Path):
    (repo / "link.py").symlink_to("app.py")
    result = apply_reply(repo, "link.py\n```python\nx = 5\n```\n")
    assert not result.applied
    message = reask_message(result, EditFormat.whole_file)
    assert "- symlink refused: link.py is a symlink in the workspace" in message
    assert "whole_file format" in message and (repo / "app.py").read_text() == "x = 1\n"
