"""Write planned file changes all or nothing: temp files first, then renames; undo everything on failure."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from quorum.edits.safety import workspace_problems


@dataclass
class Change:
    path: str
    data: bytes | None  # None: delete
    mode: int | None  # permission bits for the new content (None: keep / default)
    original: bytes | None  # None: did not exist
    original_mode: int | None


class WriteError(RuntimeError):
    pass


def commit(root: Path, changes: list[Change]) -> None:
    """Apply every change or none. Raises WriteError (with everything restored) when one fails."""
    for change in changes:
        problems = workspace_problems(root, change.path)
        if problems:
            raise WriteError("; ".join(problems))
    temps: list[tuple[Path, Path]] = []  # (temp, target)
    created_dirs: list[Path] = []
    done: list[Change] = []
    try:
        for change in changes:
            if change.data is None:
                continue
            target = root / change.path
            _make_parents(root, change.path, created_dirs)
            temp = target.parent / f".{target.name}.quorum-{secrets.token_hex(4)}.tmp"
            mode = change.mode if change.mode is not None else (change.original_mode or 0o666)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode & 0o777)
            try:
                view = memoryview(change.data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            finally:
                os.close(fd)
            if change.mode is not None or change.original_mode is not None:
                os.chmod(temp, (change.mode if change.mode is not None else change.original_mode) & 0o7777)
            temps.append((temp, target))
        for change in changes:
            target = root / change.path
            if change.data is None:
                if target.is_symlink() or target.exists():
                    os.unlink(target)
                done.append(change)
                _remove_empty_parents(root, change.path)
                continue
            temp = next(t for t, dest in temps if dest == target)
            if target.is_symlink():
                raise WriteError(f"symlink refused: {change.path} became a symlink while applying")
            os.replace(temp, target)
            temps = [(t, d) for t, d in temps if t != temp]
            done.append(change)
    except (OSError, WriteError) as exc:
        for temp, _ in temps:
            _quiet_unlink(temp)
        for change in reversed(done):
            _restore(root, change)
        for directory in reversed(created_dirs):
            try:
                directory.rmdir()
            except OSError:
                pass
        if isinstance(exc, WriteError):
            raise
        raise WriteError(f"writing the edits failed, nothing was changed: {exc}") from exc


def _make_parents(root: Path, name: str, created: list[Path]) -> None:
    current = root
    for part in name.split("/")[:-1]:
        current = current / part
        if current.is_symlink():
            raise WriteError(f"symlink refused: {name} sits below {current.relative_to(root)}, which is a symlink")
        if not current.exists():
            current.mkdir()
            created.append(current)
        elif not current.is_dir():
            raise WriteError(f"path refused: {name} sits below {current.relative_to(root)}, which is a file")


def _remove_empty_parents(root: Path, name: str) -> None:
    current = (root / name).parent
    while current != root:
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent


def _restore(root: Path, change: Change) -> None:
    target = root / change.path
    try:
        if change.original is None:
            _quiet_unlink(target)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.parent / f".{target.name}.quorum-restore-{secrets.token_hex(4)}.tmp"
        with open(temp, "wb") as handle:
            handle.write(change.original)
        if change.original_mode is not None:
            os.chmod(temp, change.original_mode & 0o7777)
        os.replace(temp, target)
    except OSError:
        pass


def _quiet_unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
