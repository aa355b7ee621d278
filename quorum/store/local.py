"""The local-folder store: every object written whole (temp file, fsync, rename), so no reader sees a partial one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from quorum.store.base import TEMP_PREFIX, ArtifactNotFound, ArtifactStore, validate_key, validate_prefix


class LocalStore(ArtifactStore):
    """Artifacts as files under `root`, written atomically (temp file, fsync, os.replace)."""

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().absolute()
        self.description = f"local folder {self.root}"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        _write_atomically(self._path(key), lambda handle: handle.write(data))
        return key

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ArtifactNotFound(key, self.description) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        # Walk only the deepest directory the prefix fully names ("runs/b1/t" -> runs/b1).
        start = self.root.joinpath(*prefix.rpartition("/")[0].split("/")) if "/" in prefix else self.root
        if not start.is_dir() or start.is_symlink():
            return []
        keys = []
        for directory, _dirnames, filenames in os.walk(start):
            relative = Path(directory).relative_to(self.root).as_posix()
            base = "" if relative == "." else relative + "/"
            for name in filenames:
                key = base + name
                if not name.startswith(TEMP_PREFIX) and key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def list_children(self, prefix: str) -> list[str]:
        validate_prefix(prefix)
        if prefix and not prefix.endswith("/"):
            raise ValueError(f"list_children takes a folder prefix ending with '/' (got {prefix!r})")
        folder = self.root.joinpath(*prefix.rstrip("/").split("/")) if prefix else self.root
        if not folder.is_dir() or folder.is_symlink():
            return []
        with os.scandir(folder) as entries:
            return sorted(entry.name for entry in entries if entry.is_dir(follow_symlinks=False))

    def put_file(self, key: str, path: Path | str, content_type: str | None = None) -> str:
        """Copied in pieces to a temp file beside the key, then renamed over it (never read whole into memory)."""
        with open(path, "rb") as source:
            _write_atomically(self._path(key), lambda handle: shutil.copyfileobj(source, handle, 1 << 20))
        return key

    def get_many(self, keys: Iterable[str], *, workers: int = 32) -> Iterator[tuple[str, bytes | None]]:
        """Local files are read one after another: threads only add overhead on a local disk."""
        for key in keys:
            try:
                yield key, self.get_bytes(key)
            except ArtifactNotFound:
                yield key, None

    def url(self, key: str) -> str:
        """`file:///absolute/path` of the key (a folder's key too)."""
        return self._path(key).as_uri()


def _write_atomically(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """`write` fills a temp file beside `target` (fsynced, mode 0644), which is then renamed over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (POSIX); best effort where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
