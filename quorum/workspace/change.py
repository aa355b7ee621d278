"""An existing change as text: the diff of a commit range, and the files it touches after it is applied."""

from __future__ import annotations

from pathlib import Path

from quorum.workspace.workspace import GitError, WorkspaceError, _has_symlink, run_git

MAX_FILE_BYTES = 2_000_000


def range_diff(repo: Path, base: str, head: str) -> tuple[str, str]:
    """(base commit, diff) of `base..head` in a git repository; raises WorkspaceError with git's reason."""
    for ref in (base, head):
        if not ref.strip() or ref.startswith("-"):
            raise WorkspaceError(f"invalid ref {ref!r} in the range {base}..{head}")
    commits = []
    for ref in (base, head):
        try:
            result = run_git(["rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}"], repo, check=False)
        except GitError as exc:
            raise WorkspaceError(f"{repo}: {exc}") from exc
        if result.returncode != 0:
            raise WorkspaceError(f"unknown ref {ref!r} in {repo}: {result.stderr.decode('utf-8', 'replace').strip()}")
        commits.append(result.stdout.decode().strip())
    diff = run_git(
        ["diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", commits[0], commits[1], "--"], repo
    )
    return commits[0], diff.stdout.decode("utf-8", "surrogateescape")


def read_files(workspace: Path, paths: list[str]) -> dict[str, str]:
    """The text of each path that exists in the workspace (no symlinks, no binary, not above the size cap)."""
    root = Path(workspace).resolve()
    files: dict[str, str] = {}
    for name in paths:
        full = root / name
        if _has_symlink(root, name) or not full.is_file() or full.stat().st_size > MAX_FILE_BYTES:
            continue
        data = full.read_bytes()
        if b"\0" in data:
            continue
        try:
            files[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return files
