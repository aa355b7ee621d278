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


# Unified diffs that must never be applied, each with the path the refusal must name
# (tests/test_edits_safety.py and tests/test_patching.py).
SYMLINK_TO_ETC = lines(
    "diff --git a/etc_link b/etc_link", "new file mode 120000", "index 0000000..1111111", "--- /dev/null",
    "+++ b/etc_link", "@@ -0,0 +1 @@", "+/etc", "\\ No newline at end of file",
)  # fmt: skip

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
}  # fmt: skip
