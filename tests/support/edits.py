"""Helpers for the edit tests (tests/test_edits_*.py, tests/test_patching.py): trees written and read back byte for byte."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def lines(*items: str) -> str:
    """Join lines explicitly, so significant trailing spaces survive editors."""
    return "\n".join(items) + "\n"


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8", newline="")
    return root


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under root (following nothing): files by content, links by target; .git's objects and index left out."""
    state: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            state[key] = "-> " + os.readlink(path)
        elif path.is_file() and "/.git/objects/" not in f"/{key}" and not key.endswith(".git/index"):
            state[key] = path.read_bytes()
        elif path.is_dir():
            state[key] = "dir"
    return state


def git(args: list[str], cwd: Path, input: bytes | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
    return subprocess.run(["git", *args], check=False, cwd=cwd, input=input, capture_output=True, env=env)


def make_repo(tmp_path: Path) -> Path:
    """A plain directory (no git) with a few files."""
    return write_tree(
        tmp_path / "repo",
        {
            "app.py": "x = 1\n",
            "notes.txt": "one\ntwo\nthree\n",
            "src/pkg/mod.py": (
                "import os\n\n\ndef load(path):\n    with open(path) as handle:\n        data = handle.read()\n"
                "    return parse(data)\n\n\ndef save(path, data):\n    with open(path, 'w') as handle:\n"
                "        handle.write(data)\n"
            ),
        },
    )


def make_git_repo(tmp_path: Path) -> Path:
    """A git checkout with one commit."""
    root = write_tree(tmp_path / "gitrepo", {"app.py": "x = 1\n", "notes.txt": "one\ntwo\nthree\n"})
    git(["init", "-q"], root)
    git(["add", "-A"], root)
    git(["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base"], root)
    return root
