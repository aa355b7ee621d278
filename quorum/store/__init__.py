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

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from quorum.settings import settings
from quorum.store.base import BUCKET_NAME, ArtifactNotFound, ArtifactStore, validate_key
from quorum.store.local import LocalStore
from quorum.store.s3 import S3Store

__all__ = ["ArtifactNotFound", "ArtifactStore", "LocalStore", "S3Store", "default_store_url", "open_store"]

ACCEPTED_FORMS = "s3://bucket[/prefix], file:///absolute/path, or a local directory path"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def default_store_url() -> str:
    """The store a worker uses when a run names none: $QUORUM_STORE, else `.quorum` (a folder)."""
    return settings().store


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
        if not BUCKET_NAME.match(parts.netloc):
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
