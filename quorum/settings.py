"""Every `QUORUM_*` environment variable quorum reads, in one place (pydantic-settings).

`settings()` follows the environment: a changed variable (a test, a worker restarted with a new value) is
seen at the next call. It parses only when a `QUORUM_*` variable changed: building the settings costs about
a millisecond of CPU, and the LLM path asks for them on every request (provider slots), where a batch of
thousands of tasks spends it under the GIL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class QuorumSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUORUM_", extra="ignore", frozen=True)

    store: str = Field(
        default=".quorum",
        description="QUORUM_STORE: the artifact store a run uses when it names none (folder, s3://bucket/prefix or block:<name>).",
    )
    cache: str | None = Field(
        default=None,
        description="QUORUM_CACHE: where the LLM stages' results are persisted, so no call is paid twice (a folder or "
        "s3://bucket/prefix, shared by the CLI and every worker); unset: the `cache/` folder of the run's artifact store.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="QUORUM_S3_ENDPOINT_URL: an S3-compatible endpoint (else boto3's own resolution)."
    )
    semgrep: str | None = Field(
        default=None, description="QUORUM_SEMGREP: the semgrep binary to use (else .venv-semgrep, else PATH)."
    )
    sandbox_uid_base: int = Field(
        default=2_000_000_000, ge=1000, description="QUORUM_SANDBOX_UID_BASE: first uid of the sandbox's uid pool."
    )
    sandbox_slots: int = Field(default=16, ge=1, description="QUORUM_SANDBOX_SLOTS: uids in the sandbox's pool.")
    provider_slots: Literal["pool", "prefect"] = Field(
        default="pool",
        description="QUORUM_PROVIDER_SLOTS: how a request holds a provider slot: 'pool' (leases shared within a "
        "process, see quorum.prefect_api.provider_slots) or 'prefect' (prefect.concurrency's concurrency() and "
        "rate_limit() around every request; slower on a busy SQLite server, see docs/benchmark.md).",
    )
    sandbox_allow_unisolated: str = Field(
        default="",
        description="QUORUM_SANDBOX_ALLOW_UNISOLATED: '1' (or true/yes/on) lets untrusted tests run WITHOUT isolation "
        "where neither root nor user namespaces can give one; every report then says 'unisolated'. Anything else: "
        "such runs fail closed (error / no_isolation).",
    )
    sandbox_hide: str = Field(
        default="",
        description="QUORUM_SANDBOX_HIDE: ':'-separated directories a rootless (userns) sandbox must not see, "
        "besides our home, XDG_RUNTIME_DIR and PREFECT_HOME.",
    )
    verify_deployment: str | None = Field(
        default=None,
        description="QUORUM_VERIFY_DEPLOYMENT: 'flow/deployment' that verifies on the sandbox work pool "
        "(e.g. quorum-verify/sandbox); unset: verify in the pipeline's own process tree.",
    )
    handoff_store: str | None = Field(
        default=None,
        description="QUORUM_HANDOFF_STORE: where workspaces and reports cross to the sandbox pool (a folder both "
        "workers mount, or a store URL); unset: the run's own artifact store.",
    )
    index_cache: str | None = Field(
        default=None,
        description="QUORUM_INDEX_CACHE: the folder every run shares for repository indexes (quorum.context; keyed "
        "by tree content, so any number of runs and workspaces can share it); unset: 'index' in the local store's "
        "folder (.quorum/index by default), or .quorum/index when the store is S3 or a block.",
    )
    env_cache: str = Field(
        default="~/.cache/quorum/envs",
        description="QUORUM_ENV_CACHE: where per-repository test environments, uv's downloads and baselines are "
        "cached (one cache per machine: its lock is a local file lock).",
    )
    uv: str | None = Field(
        default=None,
        description="QUORUM_UV: the uv binary that builds environments (else the checkout's .venv-tools/bin/uv, "
        "else uv on PATH). Keep it outside quorum's own .venv: builds are given read access to its directory.",
    )
    env_max_age_days: float = Field(
        default=14, gt=0, description="QUORUM_ENV_MAX_AGE_DAYS: environments unused this long are evicted (nightly batch)."
    )
    env_max_total_gb: float = Field(
        default=20, gt=0, description="QUORUM_ENV_MAX_TOTAL_GB: then least recently used ones until the cache is this small."
    )
    env_build_timeout_s: float = Field(
        default=900, gt=0, description="QUORUM_ENV_BUILD_TIMEOUT_S: one environment build, all its commands together."
    )
    test_budget_s: float = Field(
        default=900, gt=0,
        description="QUORUM_TEST_BUDGET_S: time for one run of a repository's own tests (covering tests first, "
        "then the rest while it lasts).",
    )
    litellm_debug: bool = Field(default=False, description="QUORUM_LITELLM_DEBUG: keep litellm's own debug logging.")
    github_webhook_secret: SecretStr | None = Field(
        default=None, description="QUORUM_GITHUB_WEBHOOK_SECRET: the secret of the GitHub webhook (required by the receiver)."
    )
    github_label: str | None = Field(
        default=None, description="QUORUM_GITHUB_LABEL: the issue label that requests a task (receiver default: quorum)."
    )

    def index_cache_dir(self, store: str | None = None) -> Path:
        """Where repository indexes are cached: QUORUM_INDEX_CACHE, else `<store folder>/index`."""
        if self.index_cache:
            return Path(self.index_cache).expanduser().resolve()
        store = store or self.store
        is_folder = "://" not in store and not store.startswith("block:")
        return (Path(store if is_folder else ".quorum").expanduser() / "index").resolve()


_PREFIX = "QUORUM_"
_cached: tuple[tuple[tuple[str, str], ...], QuorumSettings] | None = None  # (environment, its settings)


def _quorum_environment() -> tuple[tuple[str, str], ...]:
    """Every variable the settings can read (pydantic-settings matches their names case-insensitively)."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k[: len(_PREFIX)].upper() == _PREFIX))


def settings() -> QuorumSettings:
    """The settings for the current environment (frozen; the same object while no `QUORUM_*` variable changes)."""
    global _cached
    environment = _quorum_environment()
    cached = _cached  # one read: another thread may replace it (two threads may both parse; either result is right)
    if cached is not None and cached[0] == environment:
        return cached[1]
    fresh = QuorumSettings()
    _cached = (environment, fresh)
    return fresh
