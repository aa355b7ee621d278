"""The artifact store interface and its key rules, shared by both backends.

Keys are `/`-separated relative paths such as `runs/<batch>/<task>/1/patch.diff`; they are validated
the same way in both backends so a key that works locally also works on S3 and vice versa.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from quorum.domain.artifacts import to_json

TEMP_PREFIX = ".quorum-tmp-"
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-_]{2,62}$")
_TEXT_TYPES = {
    ".md": "text/markdown; charset=utf-8",
    ".diff": "text/x-diff; charset=utf-8",
    ".patch": "text/x-diff; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/xml",
    ".html": "text/html; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
}


class ArtifactNotFound(KeyError):
    """No object under this key."""

    def __init__(self, key: str, where: str = ""):
        super().__init__(key)
        self.key = key
        self.where = where

    def __str__(self) -> str:
        return f"artifact {self.key!r} not found" + (f" in {self.where}" if self.where else "")


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative key, else raise ValueError saying why."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"invalid artifact key {key!r}: it must be a non-empty string")
    if key.startswith("/"):
        raise ValueError(f"invalid artifact key {key!r}: it must be relative (no leading '/')")
    if "\\" in key:
        raise ValueError(f"invalid artifact key {key!r}: use '/' as the separator, not '\\'")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise ValueError(f"invalid artifact key {key!r}: control characters are not allowed")
    for part in key.split("/"):
        if part == "":
            raise ValueError(f"invalid artifact key {key!r}: empty path component (leading, trailing or '//')")
        if part in (".", ".."):
            raise ValueError(f"invalid artifact key {key!r}: '.' and '..' components are not allowed")
        if part.startswith(TEMP_PREFIX):
            raise ValueError(f"invalid artifact key {key!r}: the prefix {TEMP_PREFIX!r} is reserved")
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: '' (everything), or a key-like string that may end with '/' or be partial."""
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def content_type_for(key: str, default: str = "text/plain; charset=utf-8") -> str:
    return _TEXT_TYPES.get(os.path.splitext(key)[1].lower(), default)


class ArtifactStore(ABC):
    """Whole-object artifact storage under validated keys."""

    description: str = ""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Write the whole object; returns the key."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; raises ArtifactNotFound when missing."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix` (plain string prefix, like S3), sorted."""

    @abstractmethod
    def list_children(self, prefix: str) -> list[str]:
        """The names one level below the folder `prefix` (ending with '/') that hold objects, sorted.

        `list_children("runs/b1/")` is the batch's task folders (and its own files' names are left
        out): what a resumed batch needs, without listing every artifact under them.
        """

    @abstractmethod
    def url(self, key: str) -> str:
        """Where a person finds the object, absolute: a file:// or an s3:// URL."""

    def put_file(self, key: str, path: Path | str, content_type: str | None = None) -> str:
        """Write a local file as one whole object (e.g. a large report spooled to disk); returns the key."""
        return self.put_bytes(key, Path(path).read_bytes(), content_type or content_type_for(key))

    def get_many(self, keys: Iterable[str], *, workers: int = 32) -> Iterator[tuple[str, bytes | None]]:
        """Each object's bytes (None when missing), fetched `workers` at a time, in the order of `keys`."""
        def fetch(key: str) -> tuple[str, bytes | None]:
            try:
                return key, self.get_bytes(key)
            except ArtifactNotFound:
                return key, None

        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="store-get") as pool:
            yield from pool.map(fetch, keys)

    def put_text(self, key: str, text: str, content_type: str | None = None) -> str:
        return self.put_bytes(key, text.encode("utf-8"), content_type or content_type_for(key))

    def put_json(self, key: str, obj: Any) -> str:
        return self.put_bytes(key, to_json(obj).encode("utf-8"), "application/json")

    def get_text(self, key: str) -> str:
        return self.get_bytes(key).decode("utf-8")

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_text(key))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description})"
