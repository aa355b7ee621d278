"""One place for the LLM stages' persisted results, wherever a flow runs: the artifact store's `cache/`.

Prefect persists a cached task's result to the run's result storage, which is, unless set, a folder
in the home directory of whichever process runs it (`~/.prefect/storage`). Two processes with two
homes then never share a cache: a nightly run on a worker paid again for calls `make demo` had
cached, and a batch resumed on another machine would pay twice. quorum instead sets the result
storage of every task's flow run to one location that every runner reaches: `QUORUM_CACHE` when
set, else the `cache/` folder (prefix) of the run's artifact store, a local folder or S3 alike. The
CLI, the deployments and every worker therefore share one cache, configured where the store is.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import anyio.to_thread
from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.filesystems import WritableFileSystem
from pydantic import Field, PrivateAttr

from quorum.settings import settings
from quorum.store import ArtifactStore, LocalStore, open_store

CACHE_PREFIX = "cache"


class StoreResultStorage(WritableFileSystem):
    """Prefect result storage backed by a quorum artifact store (folder or S3), under one key prefix.

    Used as a block instance, never saved: each run builds it from its store (`cache_storage`)."""

    _block_type_name = "Quorum Result Cache"
    _block_type_slug = "quorum-result-cache"
    _description = "Where quorum persists the LLM stages' results: a prefix of its artifact store (folder or S3)."

    store_url: str = Field(description="The artifact store (folder, file:// or s3://bucket/prefix) holding the cache.")
    prefix: str = Field(default=CACHE_PREFIX, description="The key prefix of the cache inside the store.")
    _store: Any = PrivateAttr(default=None)

    def bind(self, store: ArtifactStore) -> StoreResultStorage:
        self._store = store
        return self

    def _opened(self) -> ArtifactStore:
        if self._store is None:
            self._store = open_store(self.store_url)
        return self._store

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{str(path).lstrip('/')}" if self.prefix else str(path)

    async def aread_path(self, path: str) -> bytes:
        return await anyio.to_thread.run_sync(self._read, path)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:
        return self._read(path)

    async def awrite_path(self, path: str, content: bytes) -> str:
        return await anyio.to_thread.run_sync(self._write, path, content)

    @async_dispatch(awrite_path)
    def write_path(self, path: str, content: bytes) -> str:
        return self._write(path, content)

    def _read(self, path: str) -> bytes:
        return self._opened().get_bytes(self._key(path))  # a missing key raises: Prefect reads that as "not cached"

    def _write(self, path: str, content: bytes) -> str:
        return self._opened().put_bytes(self._key(path), content)


def cache_location(store: ArtifactStore, store_url: str) -> tuple[ArtifactStore, str, str]:
    """(store, its URL, key prefix) of the cache: QUORUM_CACHE (a folder or s3://bucket/prefix, used whole) when
    set, else the `cache/` prefix of the run's artifact store."""
    override = settings().cache
    if override:
        return open_store(override), override, ""
    return store, store_url, CACHE_PREFIX


_saved: dict[tuple[str, str], StoreResultStorage] = {}
_saving = threading.Lock()


def cache_storage(store: ArtifactStore, store_url: str) -> Path | StoreResultStorage:
    """The result storage for a flow run whose artifacts go to `store`: a folder as a path (Prefect's own
    local storage), anything else as a `StoreResultStorage` block, saved once per process under a name
    derived from its location (Prefect takes only saved blocks as a flow's result storage)."""
    where, url, prefix = cache_location(store, store_url)
    if isinstance(where, LocalStore):
        return where.root / prefix if prefix else where.root
    key = (url, prefix)
    with _saving:
        if key not in _saved:
            block = StoreResultStorage(store_url=url, prefix=prefix).bind(where)
            digest = hashlib.sha256(f"{url}\0{prefix}".encode()).hexdigest()[:16]
            block.save(f"cache-{digest}", overwrite=True)
            _saved[key] = block
        return _saved[key]
