"""Review evaluation: a labelled set of changes reviewed by each reviewer alone and by each roster's panel.

Every change is reviewed once (`quorum.flows.review.review_change`) by the union of the rosters'
reviewers, with every reviewer reviewing even when the tools block; each roster's panel decision
and the tools-alone decision come from the same policy over the same evidence. A reviewer two
rosters share is called once per change (and a re-run is served from the LLM cache). The scores
follow the matching rule in `quorum.domain.review_eval`.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import ThreadPoolExecutor

from prefect import flow

from quorum.domain.change import TOOLS_PANEL, ChangeReview, LabelledChange, ReviewSet, union_reviewers
from quorum.domain.figures import eval_figure
from quorum.domain.models import PatchResult
from quorum.domain.policy import Policy
from quorum.domain.progress import ProgressEvent, ProgressSink, ignore_progress
from quorum.domain.results import ui_key
from quorum.domain.review_eval import (
    ReviewEvalReport,
    eval_table_rows,
    mark_pareto,
    render_eval_markdown,
    score_set,
)
from quorum.domain.roster import Roster
from quorum.flows.review import review_change
from quorum.flows.verify import ROUND_TOOLS
from quorum.tasks.charts import save_figure_task
from quorum.tasks.limits import ensure_limits_task
from quorum.tasks.store import open_store_task, save_artifacts_task
from quorum.tasks.ui import publish_markdown_task, publish_table_task


PANEL_PREFIX = "panel "


def eval_prefix(eval_id: str) -> str:
    return f"review-eval/{eval_id}"


@flow(name="quorum-review-eval", flow_run_name="{eval_id}", log_prints=True)
def review_eval(
    review_set: ReviewSet,
    rosters: list[Roster],
    store_url: str,
    eval_id: str,
    policy: Policy | None = None,
    tools: list[str] | None = None,
    max_parallel: int = 3,
    progress: ProgressSink | None = None,
) -> ReviewEvalReport:
    policy = policy or Policy()
    tools = list(ROUND_TOOLS if tools is None else tools)
    progress = progress or ignore_progress
    started = time.time()
    store = open_store_task(store_url)
    reviewers = union_reviewers(rosters)
    panels = {f"{PANEL_PREFIX}{r.name}": [m.model for m in r.reviewers] for r in rosters}
    base = eval_prefix(eval_id)
    for roster in rosters:  # provider limits once, not per change
        ensure_limits_task(roster)

    def run_one(change: LabelledChange) -> ChangeReview:
        _report(progress, change.id, "review")
        try:
            result = review_change(change, rosters, store_url, f"{base}/{change.id}", policy=policy, tools=tools,
                                   always_review=True, run_started_at=started, publish=False, ensure_limits=False,
                                   panel_prefix=PANEL_PREFIX)  # fmt: skip
        except Exception as exc:  # reported as every scorer's error on this change, never dropped
            reason = f"review crashed: {type(exc).__name__}: {exc}"
            result = ChangeReview(change_id=change.id, patch=PatchResult(applied=False, reason=reason),
                                  errors={m.model: reason for m in reviewers}, panels=panels)  # fmt: skip
        blocked = [p for p, d in result.decisions.items() if d.outcome.value != "approve"]
        _report(progress, change.id, "defective" if change.defective else "clean",
                f"blocked by: {', '.join(blocked) or 'nobody'}", done=True)  # fmt: skip
        return result

    with ThreadPoolExecutor(max_workers=max(1, max_parallel), thread_name_prefix="quorum-review") as pool:
        futures = [pool.submit(contextvars.copy_context().run, run_one, c) for c in review_set.changes]
        reviews = {c.id: f.result() for c, f in zip(review_set.changes, futures)}

    rows = score_set(
        review_set.changes, reviews, [m.model for m in reviewers], panels, window=review_set.window, policy=policy,
        run_started_at=started, tools_panel=TOOLS_PANEL if tools else None,
    )  # fmt: skip
    report = ReviewEvalReport(
        eval_id=eval_id, set_name=review_set.name, set_source=review_set.source, window=review_set.window,
        blocking_severity=policy.blocking_severity.value, policy_version=policy.version,
        changes=len(review_set.changes), defective=sum(1 for c in review_set.changes if c.defective),
        clean=sum(1 for c in review_set.changes if not c.defective), tools=tools,
        simulated=any(m.is_scripted for m in reviewers), store=store_url, started_at=started,
        finished_at=time.time(), rows=mark_pareto(rows),
    )  # fmt: skip
    report.artifacts = save_figure_task(store, f"{base}/review-eval", eval_figure(report))
    report.artifacts.update({"report_json": f"{base}/review-eval.json", "report_md": f"{base}/review-eval.md"})
    save_artifacts_task(store, {f"{base}/review-eval.json": report.model_dump_json(indent=2) + "\n",
                                f"{base}/review-eval.md": render_eval_markdown(report)}, label="review-eval")  # fmt: skip
    publish_table_task(ui_key("quorum-review-eval", eval_id), eval_table_rows(report),
                       f"quorum review-eval {eval_id}" + (" (simulated)" if report.simulated else ""))  # fmt: skip
    publish_markdown_task(ui_key("quorum-review-eval", eval_id, "summary"), render_eval_markdown(report),
                          f"quorum review-eval {eval_id}")  # fmt: skip
    return report


def _report(progress: ProgressSink, change_id: str, stage: str, detail: str = "", done: bool = False) -> None:
    try:
        progress(ProgressEvent(task_id=change_id, stage=stage, detail=detail, done=done))
    except Exception:  # noqa: BLE001 - a broken display never breaks a run
        pass
