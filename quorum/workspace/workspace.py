"""Throwaway workspaces: a private git checkout of the task's repository that patches are applied to.

Every workspace is a git repository whose HEAD is the *base commit*, so the edits applied to it
(`quorum.edits`) can be diffed back against the base. Two kinds of source:

- a git repository (its top level, or a bare repository): cloned with `--no-hardlinks` and the
  requested ref (resolved in the source: branches, tags, SHAs, `HEAD~1`...) checked out detached.
  Uncommitted changes in the source are not part of the workspace;
- a plain directory: copied (without `.git`, `__pycache__`, `.pytest_cache`, `*.pyc`; symlinks are
  copied as symlinks, never followed), `git init`-ed and committed with a fixed author, committer and
  date, so the base commit is the same on every run for the same content. `.gitignore` rules in the
  copied directory are honoured: ignored files are copied but not committed.

Git runs with the operator's configuration (so `safe.directory` and the like keep working) but with
the settings that would change our results pinned on the command line (no autocrlf, no hooks, no
signing, no diff prefixes tricks), with repository-locating `GIT_*` variables removed from the
environment, in the C locale, and with a timeout that kills git's whole process group.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field

GIT_TIMEOUT_S = 120.0
MARKER = "quorum-workspace"  # file inside .git that marks a directory as ours (see remove_workspace)
BASE_DATE = "2000-01-01T00:00:00+00:00"
BASE_IDENTITY = {"name": "quorum", "email": "quorum@localhost"}
BASE_MESSAGE = "quorum base"
COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "*.pyc")
DEFAULT_CONTEXT_SUFFIXES = (".py", ".md", ".toml", ".cfg", ".txt", ".ini", ".yaml", ".yml")

# Settings pinned on every git command line: results must not depend on the operator's git config.
_PINNED_CONFIG = (
    "core.autocrlf=false",
    "core.safecrlf=false",
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.quotePath=true",
    "commit.gpgSign=false",
    "diff.noprefix=false",
    "diff.mnemonicPrefix=false",
    "diff.external=",
    "color.ui=false",
    "gc.auto=0",
    "advice.detachedHead=false",
)
# Variables that would point git at another repository, index or config, or change identities.
_SCRUBBED_ENV = {
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM",
    "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_EXTERNAL_DIFF", "GIT_DIFF_OPTS", "GIT_PAGER", "GIT_EDITOR",
    "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_COMMITTER_DATE",
}  # fmt: skip


class WorkspaceError(ValueError):
    """A workspace could not be prepared (bad source, unknown ref, git failure)."""


class GitError(RuntimeError):
    """A git command failed or timed out; `stderr` holds git's message (trimmed)."""

    def __init__(self, message: str, *, stderr: str = "", returncode: int | None = None):
        super().__init__(message)
        self.stderr = stderr
        self.returncode = returncode


class Workspace(BaseModel):
    """A prepared workspace. `files_digest` is a cache key: it depends on the tracked content only."""

    path: str = Field(description="Absolute path of the workspace (a git repository).")
    source: str = Field(description="The repository or directory it was made from (absolute).")
    ref: str | None = Field(default=None, description="The ref that was asked for (None: HEAD / a plain copy).")
    kind: str = Field(default="copy", description="'clone' for a git source, 'copy' for a plain directory.")
    base_commit: str = Field(description="The commit patches are applied to and diffed against.")
    files_digest: str = Field(description="sha256 over the sorted (path, content) pairs of the tracked files.")


# ---------------------------------------------------------------------------------------------- git


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED_ENV and not key.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    if extra:
        env.update(extra)
    return env


def run_git(
    args: list[str],
    cwd: Path | str,
    *,
    input: bytes | None = None,
    timeout: float = GIT_TIMEOUT_S,
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run `git <args>` in `cwd` in its own process group; kill the group on timeout.

    Raises GitError on timeout, and on a non-zero exit when `check` is true.
    """
    label = next((a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] != "-c")), "")
    command = ["git"]
    for setting in _PINNED_CONFIG:
        command += ["-c", setting]
    command += args
    proc = subprocess.Popen(
        command,
        cwd=str(cwd),
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=git_env(env),
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        stdout, stderr = proc.communicate()
        raise GitError(
            f"git {label} timed out after {timeout:g} s", stderr=_trim(stderr), returncode=None
        ) from None
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    result = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        message = _trim(stderr) or _trim(stdout) or f"exit status {proc.returncode}"
        raise GitError(f"git {label} failed: {message}", stderr=_trim(stderr), returncode=proc.returncode)
    return result


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _trim(data: bytes | str, limit: int = 2000) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.strip()
    if len(text) > limit:
        text = text[: limit // 2] + "\n[...]\n" + text[-limit // 2 :]
    return text


def _out(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode("utf-8", "replace").strip()


# ---------------------------------------------------------------------------------------- prepare


def prepare_workspace(source: Path, dest_root: Path, *, ref: str | None = None) -> Workspace:
    """Make a fresh workspace for `source` in a new directory under `dest_root`.

    Raises WorkspaceError when the source is missing or not a directory, when `ref` is given for a
    plain directory or is unknown in the repository (git's message included), or when git fails.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise WorkspaceError(f"workspace source {source} does not exist")
    if not source.is_dir():
        raise WorkspaceError(f"workspace source {source} is not a directory")
    source = source.resolve()
    if ref is not None and (not ref.strip() or ref.startswith("-")):
        raise WorkspaceError(f"invalid ref {ref!r} for {source}")

    is_git = _is_git_repository(source)
    if ref is not None and not is_git:
        raise WorkspaceError(f"ref {ref!r} was given but {source} is not a git repository (it would be copied)")

    dest_root = Path(dest_root).expanduser()
    dest_root.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix=f"{_safe_name(source.name)}-", dir=dest_root)).resolve()
    try:
        if is_git:
            base = _clone(source, dest, ref)
            kind = "clone"
        else:
            base = _copy_and_commit(source, dest, exclude=dest_root.resolve())
            kind = "copy"
        (dest / ".git" / MARKER).write_text(f"source={source}\n", encoding="utf-8")
        digest = files_digest(dest)
    except GitError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise WorkspaceError(f"could not prepare a workspace from {source}: {exc}") from exc
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return Workspace(path=str(dest), source=str(source), ref=ref, kind=kind, base_commit=base, files_digest=digest)


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._")
    return cleaned[:40] or "workspace"


def _is_git_repository(path: Path) -> bool:
    """True when `path` is the top level of a work tree, or a bare repository (not a mere subdirectory)."""
    try:
        result = run_git(["rev-parse", "--is-bare-repository", "--absolute-git-dir"], path, check=False, timeout=30)
        if result.returncode != 0:
            # Not a repository at all — or one git refuses to use (e.g. dubious ownership): say so.
            stderr = _trim(result.stderr)
            if (path / ".git").exists() and ("dubious ownership" in stderr or "safe.directory" in stderr):
                raise WorkspaceError(f"git refuses to read {path}: {stderr}")
            return False
        bare, _, git_dir = _out(result).partition("\n")
        if bare == "true":
            return Path(git_dir).resolve() == path
        toplevel = run_git(["rev-parse", "--show-toplevel"], path, check=False, timeout=30)
    except GitError:
        return False
    return toplevel.returncode == 0 and Path(_out(toplevel)).resolve() == path


def _resolve_ref(repo: Path, ref: str) -> str:
    result = run_git(["rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}"], repo, check=False)
    if result.returncode != 0:
        raise WorkspaceError(f"unknown ref {ref!r} in {repo}: {_trim(result.stderr) or 'not a commit'}")
    return _out(result)


def _clone(source: Path, dest: Path, ref: str | None) -> str:
    head = run_git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], source, check=False)
    if ref is None and head.returncode != 0:
        raise WorkspaceError(f"git repository {source} has no commits (HEAD does not resolve)")
    commit = _resolve_ref(source, ref) if ref is not None else _out(head)
    run_git(["clone", "--quiet", "--no-hardlinks", "--no-checkout", "--", str(source), str(dest)], dest.parent)
    checkout = run_git(["checkout", "--quiet", "--detach", commit], dest, check=False)
    if checkout.returncode != 0:
        raise WorkspaceError(f"could not check out {ref or 'HEAD'} ({commit}) from {source}: {_trim(checkout.stderr)}")
    return _out(run_git(["rev-parse", "HEAD"], dest))


def _copy_and_commit(source: Path, dest: Path, *, exclude: Path) -> str:
    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = set(COPY_IGNORE(directory, names))
        # Never copy the workspace root into itself when it lives inside the source.
        ignored.update(name for name in names if Path(directory, name).resolve() == exclude)
        return ignored

    shutil.copytree(source, dest, symlinks=True, ignore=ignore, dirs_exist_ok=True)
    run_git(["init", "--quiet", "--initial-branch=quorum-base"], dest)
    run_git(["add", "--all"], dest)
    identity = {
        "GIT_AUTHOR_NAME": BASE_IDENTITY["name"],
        "GIT_AUTHOR_EMAIL": BASE_IDENTITY["email"],
        "GIT_AUTHOR_DATE": BASE_DATE,
        "GIT_COMMITTER_NAME": BASE_IDENTITY["name"],
        "GIT_COMMITTER_EMAIL": BASE_IDENTITY["email"],
        "GIT_COMMITTER_DATE": BASE_DATE,
    }
    run_git(["commit", "--quiet", "--no-verify", "--allow-empty", "-m", BASE_MESSAGE], dest, env=identity)
    return _out(run_git(["rev-parse", "HEAD"], dest))


# ---------------------------------------------------------------------------------------- reading


def tracked_files(workspace: Path) -> list[str]:
    """Tracked paths (git ls-files), sorted by their UTF-8 bytes like git sorts them."""
    result = run_git(["ls-files", "-z", "--full-name"], workspace)
    names = [raw.decode("utf-8", "surrogateescape") for raw in result.stdout.split(b"\0") if raw]
    return sorted(set(names), key=lambda name: name.encode("utf-8", "surrogateescape"))


def files_digest(workspace: Path) -> str:
    """sha256 over the sorted (path, content) pairs of the tracked files in the working tree.

    Symlinks contribute their target, not the file they point to; gitlinks (submodules) their
    recorded commit. Paths and contents are length-prefixed so no two file sets collide by framing.
    No temp path, timestamp or commit metadata enters it.
    """
    root = Path(workspace)
    digest = hashlib.sha256(b"quorum-files-v1\0")
    for name in tracked_files(root):
        full = root / name
        raw_name = name.encode("utf-8", "surrogateescape")
        if full.is_symlink():
            kind, content = b"L", os.readlink(full).encode("utf-8", "surrogateescape")
        elif full.is_file():
            kind, content = b"F", full.read_bytes()
        elif full.is_dir():  # a gitlink: hash the commit it records
            stage = run_git(["ls-files", "-s", "--", name], root)
            kind, content = b"G", stage.stdout.split(b" ")[1] if stage.stdout else b""
        else:  # deleted in the working tree
            kind, content = b"D", b""
        digest.update(b"%d:%s%s%d:" % (len(raw_name), raw_name, kind, len(content)))
        digest.update(content)
    return digest.hexdigest()


def read_context(
    workspace: Path,
    *,
    max_bytes: int = 200_000,
    include_suffixes: tuple[str, ...] = DEFAULT_CONTEXT_SUFFIXES,
) -> dict[str, str]:
    """Tracked text files and their contents (whole files until `max_bytes`).

    This was every LLM stage's context before quorum.context chose regions per stage; it stays as the
    baseline bench/localize.py measures ("today's selector") and for whole-file contexts of tiny
    repositories in benchmarks and tests.

    Files are taken in sorted path order; a file whose content would push the total over `max_bytes`
    is skipped (later, smaller files may still fit), so the result is deterministic. Symlinks,
    files that are not UTF-8 or contain NUL bytes, and suffixes not in `include_suffixes` (compared
    case-insensitively) are skipped. Contents are never followed outside the workspace.
    """
    root = Path(workspace).resolve()
    suffixes = tuple(s.lower() for s in include_suffixes)
    files: dict[str, str] = {}
    total = 0
    for name in tracked_files(root):
        if not name.lower().endswith(suffixes):
            continue
        full = root / name
        if _has_symlink(root, name) or not full.is_file():
            continue
        data = full.read_bytes()
        if total + len(data) > max_bytes or b"\0" in data:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        files[name] = text
        total += len(data)
    return files


def _has_symlink(root: Path, relative: str) -> bool:
    """True when `relative` or any of its parent directories under `root` is a symlink."""
    current = root
    for part in relative.split("/"):
        current = current / part
        if current.is_symlink():
            return True
    return False


def workspace_diff(workspace: Path, *, base: str = "HEAD") -> str:
    """The working tree's changes against `base` (the base commit), new files included.

    Uses a temporary index (GIT_INDEX_FILE), so the workspace's own index is left untouched.
    Ignored files (.gitignore) are not included.
    """
    root = Path(workspace)
    with tempfile.TemporaryDirectory(prefix="quorum-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        run_git(["read-tree", base], root, env=env)
        run_git(["add", "--all"], root, env=env)
        result = run_git(
            ["diff", "--cached", "--no-color", "--no-ext-diff", "--no-textconv", base, "--"], root, env=env
        )
    return result.stdout.decode("utf-8", "surrogateescape")


def remove_workspace(ws: Workspace | Path | str) -> None:
    """Delete a workspace made by prepare_workspace. Refuses directories that are not one of ours."""
    path = Path(ws.path if isinstance(ws, Workspace) else ws)
    if not path.exists():
        return
    if path.is_symlink() or not (path / ".git" / MARKER).is_file():
        raise WorkspaceError(f"refusing to remove {path}: it is not a quorum workspace")
    shutil.rmtree(path)
