"""The repository context each LLM stage is given, as tasks (the logic is quorum.context).

Each task reads a workspace through the index cache every run shares and returns content: the
rendered text the model is sent (counted with that model's tokenizer, within its roster budget) and
the record of what was chosen and why. LLM tasks downstream cache on that text, never on a path.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from quorum.context import views
from quorum.context.models import Localization, StageContext
from quorum.domain.models import Plan
from quorum.domain.roster import StageModel
from quorum.llm.tokens import token_counter
from quorum.settings import settings
from quorum.stages.plan import render_plan_markdown
from quorum.stages.prompting import PROMPT_RENDERER


def _index_cache(store_url: str) -> str:
    return str(settings().index_cache_dir(store_url))


@task(name="localize-map", task_run_name="repository map · {label}", cache_policy=NONE)
def localize_input_task(
    workspace: str, store_url: str, task_text: str, localizer: StageModel, label: str = ""
) -> views.LocalizeInput:
    """Index the tree (or load its index), rank it for the task, and lay out the localizer's map."""
    return views.localize_input(workspace, _index_cache(store_url), task_text, localizer.context_budget("localize"),
                                token_counter(localizer), PROMPT_RENDERER)  # fmt: skip


@task(name="localize-deterministic", task_run_name="localize (deterministic) · {label}", cache_policy=NONE)
def deterministic_localization_task(workspace: str, store_url: str, task_text: str, label: str = "") -> Localization:
    """The ranking's own localization, for a roster without a localizer."""
    return views.deterministic_localization(workspace, _index_cache(store_url), task_text)


@task(name="context-plan", task_run_name="context · plan · {label}", cache_policy=NONE)
def planner_context_task(
    workspace: str, store_url: str, task_text: str, localization: Localization, planner: StageModel, label: str = ""
) -> StageContext:
    context = views.planner_view(workspace, _index_cache(store_url), task_text, localization,
                                 planner.context_budget("plan"), token_counter(planner), PROMPT_RENDERER)  # fmt: skip
    return context.model_copy(update={"model": planner.model})


@task(name="context-implement", task_run_name="context · implement · {label}", cache_policy=NONE)
def implementer_context_task(
    workspace: str, store_url: str, task_text: str, plan: Plan, localization: Localization, implementer: StageModel,
    label: str = "",
) -> StageContext:  # fmt: skip
    files = list(dict.fromkeys([*plan.files_to_change, *(f for step in plan.steps for f in step.files)]))
    context = views.implementer_view(
        workspace, _index_cache(store_url), task_text, render_plan_markdown(plan), files, localization,
        implementer.context_budget("implement"), token_counter(implementer), PROMPT_RENDERER,
    )  # fmt: skip
    return context.model_copy(update={"model": implementer.model})


@task(name="context-review", task_run_name="context · review · {label} · {reviewer.model}", cache_policy=NONE)
def reviewer_context_task(workspace: str, store_url: str, diff: str, reviewer: StageModel, label: str = "") -> StageContext:
    """On the patched workspace: line numbers after the patch."""
    context = views.reviewer_view(workspace, _index_cache(store_url), diff, reviewer.context_budget("review"),
                                  token_counter(reviewer), PROMPT_RENDERER)  # fmt: skip
    return context.model_copy(update={"model": reviewer.model})
