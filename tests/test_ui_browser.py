"""The Prefect UI in a real browser: what a person sees after the demo batch.

A real `prefect server start` with its UI (tests/support/devstack.py), the demo batch run against it
through the CLI (`quorum batch examples/demo.yaml --roster scripted`), then Debian's headless Chromium,
driven by Playwright from PyPI (never `playwright install`: no browser is downloaded), opens:

- the flow runs list: each task's run, named by its task id, shows its outcome as its state's name
  (textkit-slugify and filestats-count-lines Resolved, userdir-permission-cache Escalated), and the
  batch's run is named by the batch id;
- the task artifact `quorum-demo-textkit-slugify` (found by key through the API): it shows the patch;
- the batch's artifacts: the needs-a-person table and the summary.

Both UIs this Prefect serves are checked: V2 (where `/` leads; the default) and V1 (where the links in
Prefect's own logs, `/runs/...`, lead). Screenshots are kept as test output, git-ignored:
test-output/ui/<v2|v1>/{runs-list,task-artifact,batch-table,batch-summary}.png. Heavy: the stack and the
batch take a minute or two here.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.devstack import REPO_ROOT, LocalPrefectStack

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(900)]

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking switches Chromium's own connections are refused on a closed network.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = REPO_ROOT / "test-output" / "ui"
BATCH = "demo"
OUTCOMES = {  # the demo's tasks and the state name each task's flow run ends in
    "textkit-slugify": "Resolved",
    "filestats-count-lines": "Resolved",
    "userdir-permission-cache": "Escalated",
}
PATCHED = "textkit-slugify"
PATCH_LINES = ("diff --git a/textkit/slug.py b/textkit/slug.py", "+++ b/textkit/slug.py")
UIS = {"v2": "/v2", "v1": ""}  # path prefix of each UI's routes
RENDER_TIMEOUT_MS = 60_000  # the first page of a UI loads its bundle on a busy 2-core machine
CHECK_TIMEOUT_MS = 5_000  # once the page has rendered


@pytest.fixture(scope="module")
def demo_ui(tmp_path_factory: pytest.TempPathFactory):
    """A server with the UI on, holding one finished demo batch."""
    home = tmp_path_factory.mktemp("ui-stack")
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    with LocalPrefectStack(home, ui=True) as stack:
        batch = subprocess.run(
            [str(REPO_ROOT / ".venv" / "bin" / "quorum"), "batch", "examples/demo.yaml", "--roster", "scripted",
             "--store", str(home / "store")],
            cwd=REPO_ROOT, env=stack.env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        # 1 means "ran, some tasks not resolved": the demo escalates one task on purpose.
        assert batch.returncode in (0, 1), f"quorum batch failed ({batch.returncode}):\n{batch.stdout}\n{batch.stderr}"
        yield stack


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(params=list(UIS))
def ui(request: pytest.FixtureRequest, demo_ui: LocalPrefectStack, browser):
    """(page, url prefix of this UI's routes, screenshot folder) for one UI version."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        folder = SCREENSHOTS / request.param
        folder.mkdir(parents=True, exist_ok=True)
        yield context.new_page(), demo_ui.ui_url + UIS[request.param], folder
    finally:
        context.close()


def artifact_id(stack: LocalPrefectStack, key: str) -> str:
    found = stack.api("POST", "/artifacts/filter", {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC"})
    assert found, f"no artifact with key {key}"
    return found[0]["id"]


def api_state_names(stack: LocalPrefectStack) -> dict[str, str]:
    """What the API says each flow run's state is called (for failure messages)."""
    return {run["name"]: run["state"]["name"] for run in stack.api("POST", "/flow_runs/filter", {"limit": 50})}


def cell(page, text: str):
    """A table cell holding exactly ``text`` (V1 renders each cell as markdown, so no role name to match)."""
    return page.locator("td").filter(has_text=re.compile(rf"^\s*{re.escape(text)}\s*$")).first


def shot(page, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_runs_list_shows_each_task_by_its_outcome(ui, demo_ui):
    from playwright.sync_api import expect

    page, base, folder = ui
    page.goto(f"{base}/runs")
    for name in [*OUTCOMES, BATCH]:  # the list has rendered every run
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    shot(page, folder, "runs-list")

    names = api_state_names(demo_ui)
    for name, flow in [*((task_id, "quorum-task") for task_id in OUTCOMES), (BATCH, "quorum-batch")]:
        lines = row_lines(page, name)
        assert flow in lines, f"the runs list's row of {name} does not show its flow {flow}: {lines}"
        if name in OUTCOMES:
            assert OUTCOMES[name] in lines, (
                f"the runs list's row of {name} shows no state named {OUTCOMES[name]!r}: {lines}"
                f" (the API says its state is named {names.get(name)!r})"
            )


def row_lines(page, name: str) -> list[str]:
    """The lines of a run's row in the runs list: the outermost box holding this run's name and no
    other run's (names are matched as substrings: the page's text runs flow and run names together)."""
    row = page.locator("div").filter(has_text=name)
    for other in [*OUTCOMES, BATCH]:
        if other != name:
            row = row.filter(has_not_text=other)
    lines = [line.strip() for line in row.first.inner_text(timeout=CHECK_TIMEOUT_MS).splitlines()]
    assert name in lines, f"no row of its own for {name}: {lines}"
    return lines


def test_task_artifact_shows_the_patch(ui, demo_ui):
    from playwright.sync_api import expect

    page, base, folder = ui
    key = f"quorum-{BATCH}-{PATCHED}"
    page.goto(f"{base}/artifacts/artifact/{artifact_id(demo_ui, key)}")
    expect(page.get_by_text(key).first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    with contextlib.suppress(AssertionError):  # the markdown may render a moment after the artifact's header
        expect(page.get_by_text(PATCH_LINES[0]).first).to_be_visible(timeout=3 * CHECK_TIMEOUT_MS)
    shot(page, folder, "task-artifact")
    text = page.inner_text("body")
    missing = [line for line in PATCH_LINES if line not in text]
    assert not missing, f"the task artifact {key} shows no patch (missing {missing}); it shows:\n{text[:3000]}"


def test_batch_artifacts_show_the_table_and_the_summary(ui, demo_ui):
    from playwright.sync_api import expect

    page, base, folder = ui
    page.goto(f"{base}/artifacts/artifact/{artifact_id(demo_ui, f'quorum-{BATCH}-needs-human')}")
    expect(cell(page, "userdir-permission-cache")).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    expect(cell(page, "escalated")).to_be_visible(timeout=CHECK_TIMEOUT_MS)
    shot(page, folder, "batch-table")

    page.goto(f"{base}/artifacts/artifact/{artifact_id(demo_ui, f'quorum-{BATCH}-summary')}")
    expect(page.get_by_text(f"Batch {BATCH}").first).to_be_visible(timeout=RENDER_TIMEOUT_MS)
    shot(page, folder, "batch-summary")
