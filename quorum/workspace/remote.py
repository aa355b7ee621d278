"""Repositories named by URL: one mirror clone per task, from which every workspace is prepared."""

from __future__ import annotations

import re
from pathlib import Path

from quorum.domain.manifest import is_remote_repo as is_remote  # noqa: F401 (one rule, named for this module)
from quorum.workspace.workspace import GitError, WorkspaceError, run_git

CLONE_TIMEOUT_S = 600.0


def mirror(url: str, work_root: Path) -> Path:
    """A bare clone of `url` under `work_root`, made once and reused by every workspace of the task.

    The clone never runs hooks or fetches submodules; the URL goes to git as one argument after `--`.
    """
    dest = Path(work_root) / "source.git"
    if (dest / "HEAD").is_file():
        return dest
    try:
        run_git(["clone", "--bare", "--quiet", "--no-recurse-submodules", "--", url, str(dest)], work_root, timeout=CLONE_TIMEOUT_S)
    except GitError as exc:
        raise WorkspaceError(f"could not clone {_redact(url)}: {exc}") from exc
    return dest


def _redact(url: str) -> str:
    return re.sub(r"//[^/@]+@", "//", url)
