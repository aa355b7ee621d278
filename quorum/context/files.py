"""Walk a tree: which files there are, what language and kind each is, and which to leave out (and why).

`list_paths` does the I/O (git ls-files in a git work tree, else a walk that never follows symlinks);
`classify`, `language_of` and `skip_reason` are pure.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import PurePosixPath

MAX_FILE_BYTES = 1_000_000  # bigger files are listed but not indexed ("huge")

LANGUAGES = {
    ".py": "python", ".pyi": "python", ".pyx": "cython", ".md": "markdown", ".rst": "rst", ".txt": "text",
    ".toml": "toml", ".cfg": "ini", ".ini": "ini", ".yaml": "yaml", ".yml": "yaml", ".json": "json",
    ".js": "javascript", ".mjs": "javascript", ".ts": "typescript", ".tsx": "typescript", ".jsx": "javascript",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".go": "go", ".rs": "rust",
    ".java": "java", ".kt": "kotlin", ".rb": "ruby", ".php": "php", ".sh": "shell", ".bash": "shell",
    ".html": "html", ".htm": "html", ".css": "css", ".scss": "css", ".xml": "xml", ".sql": "sql",
    ".f": "fortran", ".f90": "fortran", ".pxd": "cython", ".in": "text", ".po": "gettext",
}  # fmt: skip
SPECIAL_NAMES = {"Makefile": "make", "Dockerfile": "docker", "Containerfile": "docker"}
SKIP_DIRS = {
    ".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox",
    ".venv", "venv", ".eggs", "node_modules", ".quorum", ".idea", ".vscode",
}  # fmt: skip
VENDOR_PARTS = {"vendor", "vendored", "_vendor", "third_party", "thirdparty", "node_modules", "site-packages"}
LOCK_FILES = {
    "uv.lock", "poetry.lock", "Pipfile.lock", "package-lock.json", "yarn.lock", "pnpm-lock.yaml",
    "Cargo.lock", "composer.lock", "Gemfile.lock", "pdm.lock", "go.sum",
}  # fmt: skip
CHANGELOG_STEMS = {"changes", "changelog", "history", "news", "releases", "release-notes", "whatsnew"}
CI_PREFIXES = (".github/", ".gitlab/", ".circleci/", ".azure-pipelines/", ".buildkite/", ".devcontainer/")
CI_NAMES = {
    ".gitlab-ci.yml", ".travis.yml", "azure-pipelines.yml", ".pre-commit-config.yaml", ".readthedocs.yaml",
    ".readthedocs.yml", "tox.ini", "noxfile.py", ".coveragerc", "codecov.yml", ".editorconfig",
}  # fmt: skip


def language_of(path: str) -> str:
    p = PurePosixPath(path)
    if p.name in SPECIAL_NAMES:
        return SPECIAL_NAMES[p.name]
    return LANGUAGES.get(p.suffix.lower(), "unknown")


def is_test_path(path: str) -> bool:
    p = PurePosixPath(path)
    parts = {part.lower() for part in p.parts[:-1]}
    name = p.name.lower()
    return (
        bool(parts & {"tests", "test", "testing", "unittests"})
        or name.startswith("test_")
        or name.endswith(("_test.py", "_tests.py"))
        or name == "conftest.py"
    )


def classify(path: str) -> str:
    """'source', 'test', 'build', 'doc', 'changelog', 'config', 'ci', 'example' or 'other'."""
    p = PurePosixPath(path)
    lower = path.lower()
    first = p.parts[0].lower() if len(p.parts) > 1 else ""
    lang = language_of(path)
    if lower.startswith(CI_PREFIXES) or p.name in CI_NAMES:
        return "ci"
    if p.stem.lower() in CHANGELOG_STEMS or first in {"changes", "changelog", "changelog.d", "newsfragments"}:
        return "changelog"
    if is_test_path(path):
        return "test"
    if path in ("setup.py", "conftest.py", "noxfile.py", "fabfile.py") or path.endswith("docs/conf.py"):
        return "build"
    if first in {"docs", "doc", "documentation"}:
        return "doc"
    if first in {"examples", "example", "samples", "demo", "demos"}:
        return "example"
    if lang in {"markdown", "rst", "text"} or p.name.upper().startswith(("LICENSE", "LICENCE", "AUTHORS", "README")):
        return "doc"
    if lang in {"toml", "ini", "yaml", "json"}:
        return "config"
    if lang in {"unknown", "gettext", "xml", "html", "css"}:
        return "other"
    return "source"


def skip_reason(path: str, size: int, data: bytes | None, max_bytes: int = MAX_FILE_BYTES) -> str | None:
    """Why a file is not indexed, or None. `data` is the content (None when it was not read)."""
    p = PurePosixPath(path)
    if {part.lower() for part in p.parts[:-1]} & VENDOR_PARTS:
        return "vendored"
    if p.name in LOCK_FILES:
        return "lock file"
    if p.name.endswith((".min.js", ".min.css", ".map")):
        return "minified"
    if size > max_bytes:
        return f"huge ({size} bytes)"
    if data is None:
        return "unreadable"
    if b"\0" in data:
        return "binary"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    return None


def vendored_dirs(paths: list[str]) -> set[str]:
    """Directories holding copies of other projects inside a Python package: `pkg/packages/` (the
    pre-2.16 requests layout) when `pkg/` is itself a package, besides the names in VENDOR_PARTS."""
    path_set = set(paths)
    found = set()
    for path in paths:
        parts = path.split("/")
        for i in range(1, len(parts) - 1):
            if parts[i] == "packages" and "/".join(parts[:i]) + "/__init__.py" in path_set:
                found.add("/".join(parts[: i + 1]))
                break
    return found


def under(path: str, directories: set[str]) -> bool:
    parts = path.split("/")
    return any("/".join(parts[:i]) in directories for i in range(1, len(parts)))


# --------------------------------------------------------------------------------------------- I/O


def _git_paths(root: str) -> list[str] | None:
    """Tracked and untracked-not-ignored paths of a git work tree whose top level is `root`, else None."""
    if not os.path.exists(os.path.join(root, ".git")):
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["LC_ALL"] = "C"
    try:
        out = subprocess.run(
            ["git", "-c", "core.quotePath=false", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root, capture_output=True, timeout=60, env=env, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    names = {raw.decode("utf-8", "surrogateescape") for raw in out.split(b"\0") if raw}
    return sorted(name for name in names if not _in_skipped_dir(name))


def _in_skipped_dir(path: str) -> bool:
    """Under a folder no index wants (caches, virtual environments, VCS data), even when git does not ignore it."""
    return any(part in SKIP_DIRS or part.endswith(".egg-info") for part in path.split("/")[:-1])


def _walk_paths(root: str) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        found.extend(prefix + name for name in filenames)
    return sorted(found)


def list_paths(root: str) -> list[str]:
    """Every candidate path under `root` (relative, '/'-separated, sorted)."""
    paths = _git_paths(root)
    return paths if paths is not None else _walk_paths(root)


def has_symlink(root: str, path: str) -> bool:
    """True when `path` or one of its parent directories under `root` is a symlink."""
    current = root
    for part in path.split("/"):
        current = os.path.join(current, part)
        if os.path.islink(current):
            return True
    return False


def stat_file(root: str, path: str, dir_cache: dict[str, bool] | None = None) -> os.stat_result | str:
    """lstat of a regular file, or the reason it is not one ('symlink', 'missing', 'not a file').

    `dir_cache` memoizes, per parent directory, whether a directory on the way is a symlink.
    """
    full = os.path.join(root, path)
    try:
        st = os.lstat(full)
    except OSError:
        return "missing"
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    if not stat.S_ISREG(st.st_mode):
        return "not a file"
    if "/" in path:
        parent = path.rsplit("/", 1)[0]
        linked = dir_cache.get(parent) if dir_cache is not None else None
        if linked is None:
            linked = has_symlink(root, parent)
            if dir_cache is not None:
                dir_cache[parent] = linked
        if linked:
            return "symlink"
    return st
