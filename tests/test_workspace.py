"""Workspaces: deterministic copies, git clones at a ref, context reading, diffs, errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from quorum.workspace.workspace import (
    GitError,
    Workspace,
    WorkspaceError,
    prepare_workspace,
    read_context,
    remove_workspace,
    run_git,
    workspace_diff,
)

IDENTITY = {
    "GIT_AUTHOR_NAME": "dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}


def make_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


def commit_all(repo: Path, message: str) -> str:
    run_git(["add", "--all"], repo)
    run_git(["commit", "--quiet", "-m", message], repo, env=IDENTITY)
    return run_git(["rev-parse", "HEAD"], repo).stdout.decode().strip()


@pytest.fixture
def plain_source(tmp_path: Path) -> Path:
    return make_tree(
        tmp_path / "proj",
        {
            "pkg/__init__.py": "",
            "pkg/core.py": "def add(a, b):\n    return a + b\n",
            "README.md": "# proj\n",
            "pkg/__pycache__/core.cpython-311.pyc": b"\x00junk",
            "pkg/stale.pyc": b"\x00junk",
            ".pytest_cache/v/cache/lastfailed": "{}",
            ".git/HEAD": "ref: refs/heads/not-a-real-repo\n",
        },
    )


@pytest.fixture
def git_source(tmp_path: Path) -> tuple[Path, str, str]:
    """A repository with two commits; the first is tagged v1. Returns (repo, v1 sha, head sha)."""
    repo = tmp_path / "gitrepo"
    repo.mkdir()
    run_git(["init", "--quiet", "--initial-branch=main"], repo)
    make_tree(repo, {"lib.py": "VERSION = 1\n", "docs/guide.md": "v1\n"})
    v1 = commit_all(repo, "v1")
    run_git(["tag", "v1"], repo)
    make_tree(repo, {"lib.py": "VERSION = 2\n", "extra.py": "x = 2\n"})
    head = commit_all(repo, "v2")
    (repo / "uncommitted.py").write_text("not in any commit\n", encoding="utf-8")
    return repo, v1, head


# ------------------------------------------------------------------------------------- copy mode


def test_copy_mode_is_deterministic_across_prepares(plain_source: Path, tmp_path: Path):
    first = prepare_workspace(plain_source, tmp_path / "work-a")
    second = prepare_workspace(plain_source, tmp_path / "work-b")
    assert first.path != second.path
    assert first.kind == second.kind == "copy"
    assert first.base_commit == second.base_commit
    assert first.files_digest == second.files_digest
    assert len(first.base_commit) == 40 and len(first.files_digest) == 64
    assert first.source == str(plain_source.resolve()) and first.ref is None
    # Serialised, the two differ only by path: nothing else depends on where or when they were made.
    a, b = first.model_dump(), second.model_dump()
    a.pop("path"), b.pop("path")
    assert a == b


def test_copy_mode_leaves_out_git_and_caches_and_commits_with_fixed_identity(plain_source: Path, tmp_path: Path):
    ws = prepare_workspace(plain_source, tmp_path / "work")
    root = Path(ws.path)
    tracked = run_git(["ls-files"], root).stdout.decode().split()
    assert tracked == ["README.md", "pkg/__init__.py", "pkg/core.py"]
    assert not (root / "pkg/__pycache__").exists() and not (root / ".pytest_cache").exists()
    assert (root / ".git/HEAD").read_text() != "ref: refs/heads/not-a-real-repo\n"
    log = run_git(["log", "-1", "--format=%an <%ae> %ad|%cn <%ce> %cd", "--date=iso-strict"], root).stdout.decode()
    fixed = "quorum <quorum@localhost> 2000-01-01T00:00:00+00:00"
    assert log.strip() == f"{fixed}|{fixed}"
    assert run_git(["status", "--porcelain"], root).stdout == b""


def test_digest_changes_with_content_and_with_names(plain_source: Path, tmp_path: Path):
    base = prepare_workspace(plain_source, tmp_path / "w1")
    (plain_source / "pkg/core.py").write_text("def add(a, b):\n    return a - b\n", encoding="utf-8")
    changed = prepare_workspace(plain_source, tmp_path / "w2")
    assert changed.files_digest != base.files_digest and changed.base_commit != base.base_commit
    (plain_source / "pkg/core.py").write_text("def add(a, b):\n    return a + b\n", encoding="utf-8")
    restored = prepare_workspace(plain_source, tmp_path / "w3")
    assert restored.files_digest == base.files_digest and restored.base_commit == base.base_commit
    (plain_source / "pkg/core.py").rename(plain_source / "pkg/core2.py")
    renamed = prepare_workspace(plain_source, tmp_path / "w4")
    assert renamed.files_digest != base.files_digest


def test_copy_keeps_symlinks_as_links_and_does_not_follow_them(tmp_path: Path):
    outside = make_tree(tmp_path / "outside", {"secret.txt": "do not copy\n"})
    source = make_tree(tmp_path / "src", {"a.py": "x = 1\n"})
    (source / "escape").symlink_to(outside)
    root = Path(prepare_workspace(source, tmp_path / "work").path)
    assert (root / "escape").is_symlink() and os.readlink(root / "escape") == str(outside)
    assert "secret.txt" not in run_git(["ls-files"], root).stdout.decode()


def test_workspace_root_inside_the_source_is_not_copied_into_itself(plain_source: Path):
    inside = prepare_workspace(plain_source, plain_source / ".quorum" / "work")
    again = prepare_workspace(plain_source, plain_source / ".quorum" / "work")  # the first one is not copied
    assert not (Path(again.path) / ".quorum" / "work").exists()
    tracked = run_git(["ls-files"], Path(again.path)).stdout.decode().split()
    assert not any(name.startswith(".quorum") for name in tracked)
    assert inside.files_digest == again.files_digest


def test_subdirectory_of_a_git_repository_is_copied_not_cloned(git_source, tmp_path: Path):
    repo, _, _ = git_source
    ws = prepare_workspace(repo / "docs", tmp_path / "work")
    assert ws.kind == "copy"
    assert run_git(["ls-files"], Path(ws.path)).stdout.decode().split() == ["guide.md"]


# -------------------------------------------------------------------------------------- git mode


def test_git_source_at_head_and_at_a_tag(git_source, tmp_path: Path):
    repo, v1, head = git_source
    at_head = prepare_workspace(repo, tmp_path / "work")
    assert at_head.kind == "clone" and at_head.base_commit == head and at_head.ref is None
    assert (Path(at_head.path) / "lib.py").read_text() == "VERSION = 2\n"
    assert not (Path(at_head.path) / "uncommitted.py").exists()

    at_v1 = prepare_workspace(repo, tmp_path / "work", ref="v1")
    root = Path(at_v1.path)
    assert at_v1.base_commit == v1 and at_v1.ref == "v1"
    assert (root / "lib.py").read_text() == "VERSION = 1\n" and not (root / "extra.py").exists()
    assert at_v1.files_digest != at_head.files_digest
    assert run_git(["rev-parse", "HEAD"], root).stdout.decode().strip() == v1
    assert not (root / ".git" / "objects" / "info" / "alternates").exists()  # a real copy, no links back

    # The same ref again gives the same cache key.
    assert prepare_workspace(repo, tmp_path / "other", ref="v1").files_digest == at_v1.files_digest


def test_git_source_at_a_local_branch_and_a_short_sha(git_source, tmp_path: Path):
    repo, v1, _ = git_source
    run_git(["branch", "feature", "v1"], repo)
    assert prepare_workspace(repo, tmp_path / "w", ref="feature").base_commit == v1
    assert prepare_workspace(repo, tmp_path / "w", ref=v1[:10]).base_commit == v1


def test_digest_depends_on_content_only_not_on_the_kind_of_source(git_source, tmp_path: Path):
    repo, _, _ = git_source
    cloned = prepare_workspace(repo, tmp_path / "w")
    plain = make_tree(tmp_path / "plain", {"lib.py": "VERSION = 2\n", "extra.py": "x = 2\n", "docs/guide.md": "v1\n"})
    copied = prepare_workspace(plain, tmp_path / "w")
    assert copied.files_digest == cloned.files_digest
    assert copied.base_commit != cloned.base_commit


# ------------------------------------------------------------------------------------------ errors


def test_missing_source(tmp_path: Path):
    with pytest.raises(WorkspaceError, match="does not exist"):
        prepare_workspace(tmp_path / "nope", tmp_path / "work")


def test_source_is_a_file(tmp_path: Path):
    (tmp_path / "file.py").write_text("x\n")
    with pytest.raises(WorkspaceError, match="not a directory"):
        prepare_workspace(tmp_path / "file.py", tmp_path / "work")


def test_unknown_ref_includes_gits_message_and_leaves_nothing_behind(git_source, tmp_path: Path):
    repo, _, _ = git_source
    with pytest.raises(WorkspaceError) as info:
        prepare_workspace(repo, tmp_path / "work", ref="no-such-branch")
    message = str(info.value)
    assert "no-such-branch" in message and "Needed a single revision" in message
    assert isinstance(info.value, ValueError)
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize("ref", ["--output=/tmp/x", ""])
def test_option_like_or_blank_ref_is_refused(git_source, tmp_path: Path, ref: str):
    with pytest.raises(WorkspaceError, match="invalid ref"):
        prepare_workspace(git_source[0], tmp_path / "work", ref=ref)


def test_ref_for_a_plain_directory_is_an_error(plain_source: Path, tmp_path: Path):
    with pytest.raises(WorkspaceError, match="not a git repository"):
        prepare_workspace(plain_source, tmp_path / "work", ref="main")


def test_git_repository_without_commits(tmp_path: Path):
    repo = tmp_path / "empty"
    repo.mkdir()
    run_git(["init", "--quiet"], repo)
    with pytest.raises(WorkspaceError, match="no commits"):
        prepare_workspace(repo, tmp_path / "work")


# --------------------------------------------------------------------------------------- context


def test_read_context_sorted_filtered_and_capped(tmp_path: Path):
    outside = make_tree(tmp_path / "outside", {"secret.txt": "TOP SECRET\n"})
    source = make_tree(
        tmp_path / "src",
        {
            "b.py": "b = 1\n",
            "a.md": "# a\n",
            "big.txt": "x" * 500 + "\n",
            "c.toml": "[c]\n",
            "image.png": b"\x89PNG\r\n\x1a\n",
            "blob.txt": b"\x00\x01\x02 binary with nul",
            "latin1.txt": "caf\xe9\n".encode("latin-1"),
            "Makefile": "all:\n",
            "UPPER.PY": "u = 1\n",
        },
    )
    (source / "link.txt").symlink_to(outside / "secret.txt")
    root = Path(prepare_workspace(source, tmp_path / "work").path)

    everything = read_context(root)
    assert list(everything) == ["UPPER.PY", "a.md", "b.py", "big.txt", "c.toml"]
    assert everything["b.py"] == "b = 1\n"
    assert "TOP SECRET\n" not in everything.values()

    capped = read_context(root, max_bytes=30)
    # big.txt does not fit, so it is skipped; smaller files after it still are taken.
    assert list(capped) == ["UPPER.PY", "a.md", "b.py", "c.toml"]
    assert sum(len(v.encode()) for v in capped.values()) <= 30
    assert read_context(root, max_bytes=30) == capped  # deterministic
    assert list(read_context(root, include_suffixes=(".md",))) == ["a.md"]
    assert read_context(root, max_bytes=0) == {}


# ------------------------------------------------------------------------------------------- diffs


def test_workspace_diff_shows_changes_and_new_files_without_touching_the_index(plain_source: Path, tmp_path: Path):
    ws = prepare_workspace(plain_source, tmp_path / "work")
    root = Path(ws.path)
    assert workspace_diff(root) == ""
    (root / "pkg/core.py").write_text("def add(a, b):\n    return b + a\n", encoding="utf-8")
    (root / "pkg/new_mod.py").write_text("NEW = True\n", encoding="utf-8")
    (root / "README.md").unlink()
    diff = workspace_diff(root)
    assert "diff --git a/pkg/core.py b/pkg/core.py" in diff and "+    return b + a" in diff
    assert "diff --git a/pkg/new_mod.py b/pkg/new_mod.py" in diff and "+NEW = True" in diff
    assert "deleted file mode" in diff and "-# proj" in diff
    # The workspace's own index is untouched: the new file is still untracked.
    assert "?? pkg/new_mod.py" in run_git(["status", "--porcelain"], root).stdout.decode()


def test_workspace_diff_round_trips_through_apply_reply(plain_source: Path, tmp_path: Path):
    from quorum.edits import apply_reply

    edited = Path(prepare_workspace(plain_source, tmp_path / "a").path)
    (edited / "pkg/core.py").write_text("def add(a, b):\n    return a + b + 0\n", encoding="utf-8")
    (edited / "notes.md").write_text("new\n", encoding="utf-8")
    fresh = Path(prepare_workspace(plain_source, tmp_path / "b").path)
    result = apply_reply(fresh, workspace_diff(edited))
    assert result.applied, result.reason
    assert sorted(result.files) == ["notes.md", "pkg/core.py"]
    assert (fresh / "pkg/core.py").read_text() == (edited / "pkg/core.py").read_text()


# ---------------------------------------------------------------------------------------- removal


def test_remove_workspace_and_refusal_for_foreign_directories(plain_source: Path, tmp_path: Path):
    ws = prepare_workspace(plain_source, tmp_path / "work")
    assert isinstance(ws, Workspace)
    remove_workspace(ws)
    assert not Path(ws.path).exists()
    remove_workspace(ws)  # already gone: fine
    with pytest.raises(WorkspaceError, match="not a quorum workspace"):
        remove_workspace(plain_source)
    assert (plain_source / "pkg/core.py").exists()


# ------------------------------------------------------------------------------------ git plumbing


def test_operator_git_config_does_not_change_results(plain_source: Path, tmp_path: Path, monkeypatch):
    reference = prepare_workspace(plain_source, tmp_path / "ref")
    hostile = tmp_path / "gitconfig"
    hostile.write_text(
        "[diff]\n\tnoprefix = true\n[core]\n\tautocrlf = true\n[commit]\n\tgpgsign = true\n"
        "[user]\n\tname = someone\n\temail = someone@example.com\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(hostile))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere.git"))  # must not redirect our commands
    ws = prepare_workspace(plain_source, tmp_path / "work")
    assert (ws.base_commit, ws.files_digest) == (reference.base_commit, reference.files_digest)
    (Path(ws.path) / "README.md").write_text("# changed\n", encoding="utf-8")
    assert "diff --git a/README.md b/README.md" in workspace_diff(Path(ws.path))


def test_bare_repository_source(git_source, tmp_path: Path):
    repo, _, head = git_source
    bare = tmp_path / "bare.git"
    run_git(["clone", "--quiet", "--bare", str(repo), str(bare)], tmp_path)
    ws = prepare_workspace(bare, tmp_path / "work")
    assert ws.kind == "clone" and ws.base_commit == head
    assert (Path(ws.path) / "lib.py").read_text() == "VERSION = 2\n"


def test_git_timeout_kills_the_whole_process_group(tmp_path: Path):
    pidfile = tmp_path / "pid"
    with pytest.raises(GitError, match="git slow timed out"):
        run_git(["-c", f"alias.slow=!echo $$ > {pidfile}; exec sleep 30", "slow"], tmp_path, timeout=0.5)
    pid = int(pidfile.read_text())
    for _ in range(50):
        if not _alive(pid):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the shell git started (pid {pid}) survived the timeout")


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for init to reap it."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to a signal probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
