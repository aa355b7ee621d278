"""`QuorumArtifactStore`: where a pipeline's artifacts go (a local folder or S3), as a Prefect block."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator, model_validator

from quorum.store import ArtifactStore, S3Store, open_store


class QuorumArtifactStore(Block):
    """Where quorum writes its artifacts (plans, patches, reviews, decisions, reports): a local
    folder or an S3 bucket and prefix, with an optional S3-compatible endpoint and credentials.

    Example:
        Load a saved store and write an artifact:
        ```python
        from quorum.blocks import QuorumArtifactStore

        quorum_artifact_store_block = QuorumArtifactStore.load("BLOCK_NAME")
        store = quorum_artifact_store_block.open()
        store.put_text("notes/hello.md", "hello")
        ```
    """

    _block_type_name = "Quorum Artifact Store"
    _block_type_slug = "quorum-artifact-store"
    _description = (
        "Where quorum writes its artifacts: a local folder (./.quorum) or s3://bucket/prefix, with an "
        "optional S3-compatible endpoint and credentials. Flows reference it by name, "
        "e.g. store_url='block:artifacts'."
    )

    url: str = Field(
        default=".quorum",
        title="Store URL",
        description="A local folder (./.quorum), file:///absolute/path, or s3://bucket/prefix.",
    )
    endpoint_url: str | None = Field(
        default=None,
        title="S3 endpoint URL",
        description=(
            "An S3-compatible endpoint (SeaweedFS, MinIO), e.g. http://seaweedfs:8333; empty for AWS or for "
            "the QUORUM_S3_ENDPOINT_URL environment variable."
        ),
    )
    region_name: str | None = Field(
        default=None,
        title="Region",
        description="The S3 region, e.g. us-east-1; empty for boto3's default.",
    )
    aws_access_key_id: str | None = Field(
        default=None,
        title="AWS access key ID",
        description="The access key ID; empty to use boto3's default credential chain (environment, profile, role).",
    )
    aws_secret_access_key: SecretStr | None = Field(
        default=None,
        title="AWS secret access key",
        description="The secret access key that goes with the access key ID.",
    )

    @field_validator("url")
    @classmethod
    def _url_opens(cls, value: str) -> str:
        open_store(value)  # raises ValueError naming the accepted forms; opening needs no network
        return value.strip()

    @model_validator(mode="after")
    def _s3_settings_need_s3(self) -> QuorumArtifactStore:
        s3_only = {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region_name,
            "aws_access_key_id": self.aws_access_key_id,
            "aws_secret_access_key": self.aws_secret_access_key,
        }
        given = [name for name, value in s3_only.items() if value]
        if given and not self.is_s3:
            raise ValueError(f"{', '.join(given)} only apply to s3:// URLs, not {self.url!r}")
        if bool(self.aws_access_key_id) != bool(self.aws_secret_access_key):
            raise ValueError("give both aws_access_key_id and aws_secret_access_key, or neither")
        return self

    @property
    def is_s3(self) -> bool:
        return self.url.lower().startswith("s3://")

    def open(self) -> ArtifactStore:
        """The store this block describes; S3 clients are built on first use (no network here)."""
        store = open_store(self.url)
        if not isinstance(store, S3Store):
            return store
        secret = self.aws_secret_access_key.get_secret_value() if self.aws_secret_access_key else None
        return S3Store(
            store.bucket,
            store.prefix,
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=secret,
        )
