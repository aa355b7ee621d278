"""The change-review prompt (quorum review) keeps repository text, the description and the patch in
data blocks, like every pipeline stage (tests/test_injection.py's checker), and shows numbered regions."""

from __future__ import annotations

from pathlib import Path

from quorum.domain.labels import touched_lines
from quorum.stages.change_review import build_change_review_messages, changed_regions
from quorum.workspace.workspace import prepare_workspace, read_context
from tests.test_injection import EXAMPLE, INJECTION, find_violations


def test_injected_text_stays_inside_the_data_blocks_of_the_change_review_prompt(tmp_path):
    files = read_context(Path(prepare_workspace(EXAMPLE / "repo", tmp_path).path))
    diff = "--- a/logkit/core.py\n+++ b/logkit/core.py\n@@ -1,1 +1,1 @@\n-x\n+" + INJECTION + "\n"
    regions = changed_regions(files, {path: [1, 8] for path in files})
    messages = build_change_review_messages(f"Add tail_lines. {INJECTION}", diff, f"pytest: {INJECTION}", regions)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"].count(INJECTION) >= 4  # description, patch, report, README/core.py regions
    assert find_violations(messages, INJECTION) == []


def test_changed_regions_are_numbered_merged_and_capped():
    text = "\n".join(f"line {n}" for n in range(1, 201))
    regions = changed_regions({"a.py": text, "b.py": "x = 1\n"}, {"a.py": [10, 15, 150]}, radius=5)
    a = regions["a.py"].splitlines()
    assert a[0] == "     5  line 5" and "    20  line 20" in a and "   ..." in a and a[-1] == "   155  line 155"
    assert regions["b.py"] == "     1  x = 1"  # no touched line known: the top of the file
    assert list(changed_regions({"a.py": text, "b.py": "x\n"}, {"a.py": [100]}, radius=50, max_chars=200)) == ["b.py"]
    assert touched_lines("--- a/a.py\n+++ b/a.py\n@@ -3,1 +3,2 @@\n c\n+new\n") == {"a.py": [4]}
