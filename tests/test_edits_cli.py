"""`quorum apply-reply`: exit codes 0 applied / 1 refused / 2 bad input, text and JSON output, dry run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.edits import lines, make_repo

SIMPLE = lines("diff --git a/app.py b/app.py", "--- a/app.py", "+++ b/app.py", "@@ -1 +1 @@", "-x = 1", "+x = 2")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


def quorum(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "quorum.cli.main", *args], check=False, cwd=cwd, input=stdin, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_dry_run_then_apply_with_json(repo: Path, tmp_path: Path):
    good = tmp_path / "good.md"
    good.write_text(f"Bump x.\n```diff\n{SIMPLE}```\n")
    done = quorum("apply-reply", "--repo", str(repo), "--reply", str(good), "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "would apply: 1 edit(s) to 1 file(s) (udiff)" in done.stdout
    assert "hunk #1 of app.py (diff #1): exact at line 1" in done.stdout
    assert (repo / "app.py").read_text() == "x = 1\n"

    done = quorum("apply-reply", "--repo", str(repo), "--reply", str(good), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["applied"] is True and result["dry_run"] is False and result["files"] == ["app.py"]
    assert result["format"] == "udiff" and [e["match"] for e in result["edits"]] == ["exact"]
    assert result["diff"].startswith("diff --git a/app.py b/app.py\n")
    assert (repo / "app.py").read_text() == "x = 2\n"


def test_search_replace_from_standard_input(repo: Path, tmp_path: Path):
    reply = "app.py\n```python\n<<<<<<< SEARCH\nx = 1\n=======\nx = 3\n>>>>>>> REPLACE\n```\n"
    done = quorum("apply-reply", "--repo", str(repo), "--reply", "-", cwd=tmp_path, stdin=reply)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "applied: 1 edit(s) to 1 file(s) (search_replace)" in done.stdout
    assert (repo / "app.py").read_text() == "x = 3\n"


def test_refused_reply_exits_1_with_the_reason_and_changes_nothing(repo: Path, tmp_path: Path):
    bad = tmp_path / "bad.md"
    bad.write_text("app.py\n```\n<<<<<<< SEARCH\nx = 999\n=======\nx = 2\n>>>>>>> REPLACE\n```\n")
    done = quorum("apply-reply", "--repo", str(repo), "--reply", str(bad), cwd=tmp_path)
    assert done.returncode == 1
    assert "refused: nothing was changed" in done.stdout
    assert "SEARCH/REPLACE block of app.py (edit #1)" in done.stdout and "'x = 999' is not in the file" in done.stdout
    prose = tmp_path / "prose.md"
    prose.write_text("no edits here\n")
    done = quorum("apply-reply", "--repo", str(repo), "--reply", str(prose), "--json", cwd=tmp_path)
    assert done.returncode == 1 and json.loads(done.stdout)["reason"].startswith("malformed reply: no edit found")
    assert (repo / "app.py").read_text() == "x = 1\n"


def test_bad_input_exits_2(repo: Path, tmp_path: Path):
    good = tmp_path / "good.md"
    good.write_text(f"```diff\n{SIMPLE}```\n")
    done = quorum("apply-reply", "--repo", str(tmp_path / "nope"), "--reply", str(good), cwd=tmp_path)
    assert done.returncode == 2 and "not a directory" in done.stderr
    done = quorum("apply-reply", "--repo", str(repo), "--reply", str(tmp_path / "missing.md"), cwd=tmp_path)
    assert done.returncode == 2 and "cannot read the reply" in done.stderr
    (tmp_path / "latin1.md").write_bytes(b"caf\xe9\n")
    done = quorum("apply-reply", "--repo", str(repo), "--reply", str(tmp_path / "latin1.md"), cwd=tmp_path)
    assert done.returncode == 2 and "cannot read the reply" in done.stderr
    done = quorum("apply-reply", "--repo", str(repo), cwd=tmp_path)  # --reply missing
    assert done.returncode == 2
    assert (repo / "app.py").read_text() == "x = 1\n"
