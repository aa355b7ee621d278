"""The artifact store: one interface, two backends (DESIGN.md §6).

- `LocalStore(root)`: a folder (default `./.quorum/`). Every object is written whole: to a temp file
  in the same directory, fsync-ed, then renamed over the key with `os.replace`, so a reader or a
  crash never sees a partial object.
- `S3Store(bucket, prefix)`: boto3 `put_object` (a single PUT is atomic in S3), with checksums only
  when required (some S3-compatible servers and older moto reject the new default CRC headers) and
  standard retries.

`open_store(url)` picks the backend: `s3://bucket[/prefix]`, `file:///abs/path` or a plain path.

Keys are `/`-separated relative paths such as `runs/<batch>/<task>/1/patch.diff`; they are validated
the same way in both backends so a key that works locally also works on S3 and vice versa.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel

S3_ENDPOINT_ENV = "QUORUM_S3_ENDPOINT_URL"
TEMP_PREFIX = ".quorum-tmp-"
ACCEPTED_FORMS = "s3://bucket[/prefix], file:///absolute/path, or a local directory path"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-_]{2,62}$")
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


def dumps_json(obj: Any) -> str:
    """Pretty JSON with sorted keys (stable bytes for the same content), ending with a newline."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


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
    def url(self, key: str) -> str:
        """Where a person finds the object: a file path or an s3:// URL."""

    def put_text(self, key: str, text: str, content_type: str | None = None) -> str:
        return self.put_bytes(key, text.encode("utf-8"), content_type or content_type_for(key))

    def put_json(self, key: str, obj: Any) -> str:
        return self.put_bytes(key, dumps_json(obj).encode("utf-8"), "application/json")

    def get_text(self, key: str) -> str:
        return self.get_bytes(key).decode("utf-8")

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_text(key))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description})"


class LocalStore(ArtifactStore):
    """Artifacts as files under `root`, written atomically (temp file, fsync, os.replace)."""

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().absolute()
        self.description = f"local folder {self.root}"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(path.parent)
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

    def url(self, key: str) -> str:
        return str(self._path(key))


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


class S3Store(ArtifactStore):
    """Artifacts as S3 objects under `s3://bucket/prefix/`."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
    ):
        if not bucket or not _BUCKET.match(bucket):
            raise ValueError(f"invalid S3 bucket name {bucket!r}")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url or os.environ.get(S3_ENDPOINT_ENV) or None
        self.region_name = region_name
        # Explicit credentials (e.g. from a QuorumArtifactStore block); None means boto3's default chain.
        # Kept out of `description` and repr so they never show in logs.
        self._credentials = {
            key: value
            for key, value in (("aws_access_key_id", aws_access_key_id), ("aws_secret_access_key", aws_secret_access_key))
            if value
        }
        self._client = client
        self._lock = threading.Lock()
        self.page_size = 1000  # keys per list_objects_v2 call (tests lower it to exercise paging)
        where = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.description = where + (f" (endpoint {self.endpoint_url})" if self.endpoint_url else "")

    @property
    def client(self) -> Any:
        """The boto3 client, built on first use (opening a store needs no credentials)."""
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                config = Config(
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    retries={"max_attempts": 5, "mode": "standard"},
                )
                self._client = boto3.client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name=self.region_name,
                    config=config,
                    **self._credentials,
                )
            return self._client

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        full = self._key(key)
        self.client.put_object(Bucket=self.bucket, Key=full, Body=data, ContentType=content_type)
        return key

    def get_bytes(self, key: str) -> bytes:
        full = self._key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=full)
        except Exception as exc:
            if _is_not_found(exc):
                raise ArtifactNotFound(key, self.description) from None
            raise
        with response["Body"] as body:
            return body.read()

    def exists(self, key: str) -> bool:
        full = self._key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=full)
        except Exception as exc:
            if _is_not_found(exc):
                return False
            raise
        return True

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=full, PaginationConfig={"PageSize": self.page_size})
        for page in pages:
            keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
        return sorted(keys)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


def _is_not_found(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("404", "NoSuchKey", "NotFound") or status == 404 and code != "NoSuchBucket"


STORE_ENV = "QUORUM_STORE"


def default_store_url() -> str:
    """The store a worker uses when a run names none: $QUORUM_STORE, else `.quorum` (a folder)."""
    return os.environ.get(STORE_ENV) or ".quorum"


def open_store(url: str) -> ArtifactStore:
    """`s3://bucket[/prefix]` -> S3Store; `file:///path` or a plain path -> LocalStore; else ValueError."""

    def refuse(why: str) -> ValueError:
        return ValueError(f"unsupported artifact store URL {url!r} ({why}); use {ACCEPTED_FORMS}")

    if not isinstance(url, str) or not url.strip():
        raise refuse("empty")
    url = url.strip()
    scheme = _SCHEME.match(url)
    if scheme is None:
        return LocalStore(Path(url))
    name = scheme.group(1).lower()
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise refuse("query strings and fragments are not supported")
    if name == "s3":
        if not parts.netloc:
            raise refuse("no bucket")
        if not _BUCKET.match(parts.netloc):
            raise refuse(f"invalid bucket name {parts.netloc!r}")
        prefix = parts.path.strip("/")
        if prefix:
            try:
                validate_key(prefix)
            except ValueError as exc:
                raise refuse(f"invalid prefix: {exc}") from None
        return S3Store(parts.netloc, prefix)
    if name == "file":
        if parts.netloc not in ("", "localhost"):
            raise refuse(f"remote host {parts.netloc!r} in a file URL")
        if not parts.path:
            raise refuse("no path")
        return LocalStore(Path(unquote(parts.path)))
    raise refuse(f"scheme {name!r} is not supported")
