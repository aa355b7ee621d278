"""One-shot setup of a fresh quorum stack (docker-compose's `bootstrap` service, or by hand).

Idempotent; each step says what it did:
1. the artifact bucket exists on the S3-compatible store (`QUORUM_S3_ENDPOINT_URL`, AWS_* credentials);
2. the quorum block types are registered with the Prefect server (`PREFECT_API_URL`);
3. a `QuorumArtifactStore` block named `artifacts` points at `s3://<bucket>/<prefix>` on that endpoint,
   and a `QuorumRoster` block named `default` holds a shipped roster (unless one exists already:
   edits made in the UI are never overwritten);
4. the work pools exist: the pipeline's (a process pool by default) and the sandbox pool that
   verifies workspaces away from the model keys (`--sandbox-pool`, '' for none).

    python infra/bootstrap.py --bucket quorum-artifacts --pool quorum-process --sandbox-pool quorum-sandbox
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

S3_ENDPOINT_ENV = "QUORUM_S3_ENDPOINT_URL"


def s3_client(endpoint_url: str | None, region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 5, "mode": "standard"},
    )
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def ensure_bucket(client: Any, bucket: str) -> str:
    """Create the bucket unless it exists; returns 'created' or 'exists'."""
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket in existing:
        return "exists"
    client.create_bucket(Bucket=bucket)
    return "created"


def ensure_work_pool(name: str, pool_type: str, base_job_template: dict | None = None) -> str:
    """Create the work pool unless it exists; returns 'created' or 'exists'."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return "exists"
        except ObjectNotFound:
            pass
        create = WorkPoolCreate(name=name, type=pool_type, base_job_template=base_job_template or {})
        client.create_work_pool(work_pool=create)
    return "created"


def save_block_unless_present(block: Any, name: str) -> str:
    """Save `block` as `name` unless a block of its type by that name exists; 'created' or 'exists'."""
    try:
        type(block).load(name)
        return "exists"
    except ValueError:
        block.save(name)
        return "created"


def register_block_types() -> list[str]:
    import quorum.blocks as blocks

    names = []
    for block_type in (blocks.QuorumRoster, blocks.QuorumArtifactStore):
        block_type.register_type_and_schema()
        names.append(block_type.get_block_type_slug())
    return names


def retry(step: Callable[[], str], what: str, attempts: int, delay_s: float) -> str:
    """Services in a fresh stack come up in any order: retry a step a bounded number of times."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except Exception as exc:  # report and retry; the last failure propagates
            if attempt == attempts:
                raise
            print(f"{what}: not ready ({type(exc).__name__}); retrying in {delay_s:.0f}s", flush=True)
            time.sleep(delay_s)
    raise AssertionError("unreachable")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", default=os.environ.get("QUORUM_BUCKET", "quorum-artifacts"))
    parser.add_argument("--prefix", default=os.environ.get("QUORUM_PREFIX", "quorum"))
    parser.add_argument("--pool", default=os.environ.get("QUORUM_WORK_POOL", "quorum-process"))
    parser.add_argument("--pool-type", default="process")
    parser.add_argument("--sandbox-pool", default=os.environ.get("QUORUM_SANDBOX_POOL", "quorum-sandbox"),
                        help="work pool of the quorum-verify/sandbox deployment ('' for none)")
    parser.add_argument("--roster", default=os.environ.get("QUORUM_ROSTER", "scripted"), help="shipped roster or file")
    parser.add_argument("--store-block", default="artifacts", help="name of the QuorumArtifactStore block")
    parser.add_argument("--roster-block", default="default", help="name of the QuorumRoster block")
    parser.add_argument("--skip-s3", action="store_true", help="no bucket and no artifacts block (local store only)")
    parser.add_argument("--attempts", type=int, default=30)
    parser.add_argument("--delay", type=float, default=2.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from quorum.blocks import QuorumArtifactStore, QuorumRoster

    def step(what: str, action: Callable[[], Any]) -> None:
        print(f"{what}: {retry(action, what, args.attempts, args.delay)}", flush=True)

    if not args.skip_s3:
        endpoint = os.environ.get(S3_ENDPOINT_ENV) or None
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or None
        client = s3_client(endpoint, region)
        step(f"bucket {args.bucket}", lambda: ensure_bucket(client, args.bucket))
    step("block types", lambda: ", ".join(register_block_types()))
    if not args.skip_s3:
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        store = QuorumArtifactStore(
            url=f"s3://{args.bucket}/{args.prefix}".rstrip("/"),
            endpoint_url=os.environ.get(S3_ENDPOINT_ENV) or None,
            region_name=os.environ.get("AWS_DEFAULT_REGION") or None,
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=SecretStr(secret) if secret else None,
        )
        step(
            f"block quorum-artifact-store/{args.store_block}",
            lambda: save_block_unless_present(store, args.store_block),
        )
    roster = QuorumRoster.from_file(args.roster)
    step(f"block quorum-roster/{args.roster_block}", lambda: save_block_unless_present(roster, args.roster_block))
    step(f"work pool {args.pool}", lambda: ensure_work_pool(args.pool, args.pool_type))
    if args.sandbox_pool:
        step(f"work pool {args.sandbox_pool}", lambda: ensure_work_pool(args.sandbox_pool, args.pool_type))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
