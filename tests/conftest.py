"""Shared test setup: one Prefect test server per session, offline litellm, isolated result storage."""

from __future__ import annotations

import os
import textwrap
from collections import Counter
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-live", action="store_true", help="also run tests that call real hosted models")


# The files that take longest, longest first (measured one file at a time; the rest estimated).
# `make test` runs files whole on two workers (`--dist loadfile`) in collection order
# (`--no-loadscope-reorder`): started first, a long file runs beside the many short ones instead of
# leaving one worker idle at the end (xdist's default order, most tests first, put these few-test
# files last). Files not listed keep that default order after them.
SLOWEST_FILES = [
    "test_deploy_e2e_postgres.py",  # heavy
    "test_flow.py",  # ~135 s alone, on an idle machine
    "test_batch_resume_budget.py",  # ~120 s
    "test_deploy_e2e.py",  # ~75 s
    "test_thesis_flows.py",  # ~70 s
    "test_unprivileged.py",  # ~60 s
    "test_sandbox_pool_e2e.py",  # ~45 s
    "test_environments.py",  # ~40 s
    "test_context_flow.py",
    "test_ui_browser.py",  # heavy
    "test_edits_e2e.py",
    "test_secrets.py",
    "test_injection.py",
    "test_failures.py",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    per_file = Counter(item.path for item in items)
    # stable: the tests of a file keep their order, and unlisted files with as many tests theirs
    items.sort(key=lambda item: (rank.get(item.path.name, len(rank)), -per_file[item.path]))
    if config.getoption("--run-live"):
        return
    skip = pytest.mark.skip(reason="calls real hosted models; pass --run-live (and set API keys)")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory):
    """A real (temporary, SQLite) Prefect server for the whole session, with results in a temp folder."""
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    results = tmp_path_factory.mktemp("prefect-results")
    with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: results}):
        with prefect_test_harness(server_startup_timeout=180):
            yield results


# ------------------------------------------------------------------ small repositories (quorum.context tests)


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write `files` (relative path -> text, dedented, or bytes) under `root`."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


@pytest.fixture
def make_repo(tmp_path):
    """A small repository made by the test: make_repo({"pkg/mod.py": "..."}) -> its folder."""

    def make(files: dict[str, str | bytes], name: str = "repo") -> Path:
        return write_tree(tmp_path / name, files)

    return make


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    """An index cache of the test's own."""
    return tmp_path / "index-cache"
