"""`quorum context`: the stable JSON, the text view, bad input, and no Prefect or litellm on the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = {
    "pkg/__init__.py": "from .a import alpha\n",
    "pkg/a.py": "def alpha(x):\n    return beta(x)\n\n\ndef beta(x):\n    return x\n",
    "pkg/b.py": "from .a import alpha\n\n\nclass Gamma:\n    def run(self):\n        return alpha(1)\n",
    "README.md": "# demo\n",
}


def quorum(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quorum.cli.main", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_json_has_exactly_the_stable_shape(make_repo, cache_dir, tmp_path):
    repo = make_repo(FILES)
    task = tmp_path / "task.txt"
    task.write_text("`Gamma.run` calls alpha with the wrong value")
    out = quorum("context", "--repo", str(repo), "--task-file", str(task), "--budget", "500", "--json",
                 "--cache-dir", str(cache_dir), cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) == {"files", "context", "tokens"}
    assert data["files"][0]["path"] == "pkg/b.py"
    assert all(set(f) == {"path", "score", "reasons"} for f in data["files"])
    assert len(data["files"]) == 4  # every indexed file (fewer than 20)
    assert all(set(r) == {"path", "start_line", "end_line", "tokens"} for r in data["context"])
    assert data["tokens"] == sum(r["tokens"] for r in data["context"]) <= 500
    lines = (repo / "pkg/b.py").read_text().splitlines()
    b = next(r for r in data["context"] if r["path"] == "pkg/b.py")
    assert 1 <= b["start_line"] <= b["end_line"] <= len(lines)  # 1-based, inclusive, as on disk


def test_the_index_cache_defaults_to_the_shared_setting(make_repo, tmp_path):
    repo = make_repo(FILES)
    shared = tmp_path / "shared-index"
    out = quorum("context", "--repo", str(repo), "--task", "alpha", "--json", cwd=tmp_path,
                 env={"QUORUM_INDEX_CACHE": str(shared)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert any(p.name.startswith("index-") for p in shared.iterdir())
    unset = {k: v for k, v in os.environ.items() if k != "QUORUM_INDEX_CACHE"}
    out = subprocess.run([sys.executable, "-m", "quorum.cli.main", "context", "--repo", str(repo), "--task", "alpha",
                          "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=unset)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert any(p.name.startswith("index-") for p in (tmp_path / ".quorum" / "index").iterdir())


def test_text_view_and_bad_input(make_repo, cache_dir, tmp_path):
    repo = make_repo(FILES)
    out = quorum("context", "--repo", str(repo), "--task", "alpha returns beta", "--cache-dir", str(cache_dir),
                 "--show", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "pkg/a.py" in out.stdout and "context (" in out.stdout and "## Repository map" in out.stdout
    missing = quorum("context", "--repo", str(tmp_path / "nope"), "--task", "x", cwd=tmp_path)
    assert missing.returncode == 2 and "not a directory" in missing.stderr
    empty = quorum("context", "--repo", str(repo), "--task", "  ", cwd=tmp_path)
    assert empty.returncode == 2 and "empty" in empty.stderr
    budget = quorum("context", "--repo", str(repo), "--task", "x", "--budget", "0", cwd=tmp_path)
    assert budget.returncode == 2 and "--budget" in budget.stderr


def test_the_command_imports_neither_prefect_nor_litellm(make_repo, cache_dir, tmp_path):
    """It must answer quickly: Prefect and litellm take seconds to import."""
    repo = make_repo(FILES)
    probe = (
        "import sys; from quorum.cli.main import main; "
        f"code = main(['context', '--repo', {str(repo)!r}, '--task', 'alpha', '--json', '--cache-dir', {str(cache_dir)!r}]); "
        "print('LOADED', sorted(m for m in ('prefect', 'litellm') if m in sys.modules), file=sys.stderr); "
        "sys.exit(code)"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stderr


def test_the_localization_bench_says_how_to_lay_out_a_missing_corpus(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "localize.py"), "--corpus", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode != 0
    assert f"no corpus at {tmp_path / 'none'}" in out.stderr and "materialize.py" in out.stderr
