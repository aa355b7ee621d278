"""Safety rules for every edit, whatever its format (DESIGN.md §7; the messages of the git-based applier before it).

Refused: absolute paths, `..` components, anything inside a `.git` directory (any case, trailing
dots or spaces, the 8.3 name), control characters in paths, symlinks (mode 120000, or a path that
is or sits below a symlink in the workspace), submodules (mode 160000, or a directory where a file
is expected), binary patches and binary files, and edits larger than `max_bytes` in total.
Each reason names the path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from quorum.edits.models import Edit

MAX_PATCH_BYTES = 200_000
MODE_SYMLINK = "120000"
MODE_SUBMODULE = "160000"
ALLOWED_MODES = {"100644", "100755", "100664", "100600"}


def is_git_dir(component: str) -> bool:
    # Also the spellings some filesystems fold into ".git" (case, trailing dots/spaces, 8.3 name).
    folded = component.lower().rstrip(". ")
    return folded == ".git" or folded == "git~1"


def path_problems(names: list[str]) -> list[str]:
    """Reasons to refuse these names (as written and as resolved)."""
    problems: list[str] = []
    for name in dict.fromkeys(names):
        shown = name[2:] if name.startswith(("a/", "b/")) else name
        if name.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:[\\/]", name):
            problems.append(f"absolute path refused: {name}")
        parts = name.replace("\\", "/").split("/")
        if ".." in parts:
            problems.append(f"path outside the repository refused: {shown}")
        if any(is_git_dir(part) for part in parts):
            problems.append(f"path inside .git refused: {shown}")
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            problems.append(f"control character in path refused: {name!r}")
        if not name.strip("/").strip():
            problems.append(f"malformed path {name!r}")
    return problems


def edit_problems(edit: Edit) -> list[str]:
    """Reasons in the edit's own text: its paths, and symlink, submodule or binary flags."""
    names = [*edit.names_as_written, edit.path, *(n for n in (edit.old_path,) if n)]
    problems = path_problems(names)
    if edit.symlink:
        verb = "creates" if edit.create else "deletes" if edit.delete else "changes"
        problems.append(f"symlink refused: the patch {verb} symlink {edit.path} (mode {MODE_SYMLINK})")
    if edit.submodule:
        problems.append(f"submodule refused: the patch touches submodule {edit.path} (mode {MODE_SUBMODULE})")
    if edit.binary:
        problems.append(f"binary patch refused for {edit.path}")
    for mode in (edit.old_mode, edit.new_mode):
        if mode and mode not in ALLOWED_MODES and mode not in (MODE_SYMLINK, MODE_SUBMODULE):
            problems.append(f"file mode {mode} refused for {edit.path}")
    return problems


def size_problems(edits: list[Edit], max_bytes: int) -> list[str]:
    size = sum(edit.size for edit in edits)
    if size <= max_bytes:
        return []
    largest = max(edits, key=lambda e: e.size, default=None)
    where = f" (largest file section: {largest.path}, {largest.size} bytes)" if largest else ""
    return [f"patch too large: {size} bytes, over the limit of {max_bytes} bytes{where}"]


def workspace_problems(root: Path, name: str) -> list[str]:
    """A path that is, or sits below, a symlink in the workspace; a path below a regular file."""
    current = root
    parts = name.split("/")
    for number, part in enumerate(parts, start=1):
        current = current / part
        if current.is_symlink():
            where = "is" if number == len(parts) else f"sits below {current.relative_to(root)}, which is"
            return [f"symlink refused: {name} {where} a symlink in the workspace"]
        if number < len(parts) and current.exists() and not current.is_dir():
            return [f"path refused: {name} sits below {current.relative_to(root)}, which is a file"]
    if current.exists() and current.is_dir():
        if (current / ".git").exists():
            return [f"submodule refused: {name} is a submodule or nested repository in the workspace"]
        return [f"path refused: {name} is a directory in the workspace"]
    if current.exists() and not current.is_file():
        return [f"path refused: {name} is not a regular file"]
    return []


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:65536] or b"\0" in data


def safe_open_read(root: Path, name: str) -> bytes:
    """Read a file without following a symlink in its last component (the parents were checked)."""
    fd = os.open(root / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
