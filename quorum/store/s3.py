"""The S3 store (boto3): one `put_object` per artifact, checksums only when required, standard retries."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from quorum.settings import settings
from quorum.store.base import (
    BUCKET_NAME,
    ArtifactNotFound,
    ArtifactStore,
    content_type_for,
    validate_key,
    validate_prefix,
)


GET_WORKERS = 32  # concurrent gets (get_many) and the connection pool that serves them


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
        if not bucket or not BUCKET_NAME.match(bucket):
            raise ValueError(f"invalid S3 bucket name {bucket!r}")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url or settings().s3_endpoint_url or None
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
                    max_pool_connections=GET_WORKERS,  # get_many's threads each keep a connection
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

    def list_children(self, prefix: str) -> list[str]:
        """Common prefixes of a delimited `list_objects_v2` listing: one page per `page_size` folders."""
        validate_prefix(prefix)
        if prefix and not prefix.endswith("/"):
            raise ValueError(f"list_children takes a folder prefix ending with '/' (got {prefix!r})")
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        names = []
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket, Prefix=full, Delimiter="/", PaginationConfig={"PageSize": self.page_size}
        )  # fmt: skip
        for page in pages:
            names.extend(item["Prefix"][len(full) :].rstrip("/") for item in page.get("CommonPrefixes", []))
        return sorted(name for name in names if name)

    def put_file(self, key: str, path: Path | str, content_type: str | None = None) -> str:
        """boto3's managed upload: one PUT, or a multipart upload (completed atomically) for a large file."""
        full = self._key(key)
        self.client.upload_file(
            str(path), self.bucket, full, ExtraArgs={"ContentType": content_type or content_type_for(key)}
        )  # fmt: skip
        return key

    def get_many(self, keys: Iterable[str], *, workers: int = GET_WORKERS) -> Iterator[tuple[str, bytes | None]]:
        self.client  # built once here, not raced by the threads  # noqa: B018
        return super().get_many(keys, workers=min(workers, GET_WORKERS))

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


def _is_not_found(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("404", "NoSuchKey", "NotFound") or status == 404 and code != "NoSuchBucket"
