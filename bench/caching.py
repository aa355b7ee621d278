"""Prompt-caching benchmark: what rounds, reviewers and a batch pay with the providers' prompt caches on and off.

    .venv/bin/python bench/caching.py [--tasks 6] [--rounds 3] [--json out.json]

Every call goes through quorum's real path (the stage prompt builders, quorum.llm.client, litellm's
OpenAI/Anthropic/Gemini clients) to the loopback fake provider server, whose models cache as their
providers do (tests.support.fake_provider.PromptCache): Anthropic only prefixes marked with
cache_control (written at 1.25x, read at 0.1x the input price), OpenAI, DeepSeek and Gemini any
repeated prefix (OpenAI in 128-token steps, DeepSeek in 64-token units, from 1,024 tokens; DeepSeek
from 64). "off" is the same run against providers without a cache. Costs are litellm's prices for the
usage the fake reports (quorum.llm.pricing), as for real calls.

Contexts are corpus-sized: each stage's repository context fills its roster budget (localize 16k,
plan 12k, implement 16k, review 16k tokens), as the real tasks of the corpus do (click's core.py alone
is ~30k tokens); the code is quorum's own source, a different slice per task; a reviewer's context is a
different slice every round (the patched regions change with the patch). Task texts are short, like
the corpus's problem statements.

Two rosters: the default one (planner Claude Sonnet, implementer DeepSeek, reviewers GPT-5 mini and
Gemini Flash, localizer Gemini Flash) and the same with a Claude Haiku implementer (explicit caching).
Printed: one task's rounds call by call, then the batch per stage, each with input tokens, cached
tokens, input cost and cost, caching on and off, and the two targets checked:
  1. rounds >= 2 pay at most 40 % of round 1's input cost for the same context (the implementer);
  2. the second reviewer of a round pays cached prices for the shared prefix.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from quorum.domain.edit_format import EditFormat  # noqa: E402
from quorum.domain.models import LLMCall, Plan, Review  # noqa: E402
from quorum.domain.roster import Roster, StageModel  # noqa: E402
from quorum.inputs.rosters import load_roster  # noqa: E402
from quorum.llm.call_policy import RetryPolicy  # noqa: E402
from quorum.llm.client import ask_structured, complete  # noqa: E402
from quorum.llm.pricing import litellm_price  # noqa: E402
from quorum.llm.prompt_cache import stable_prefix  # noqa: E402
from quorum.stages.implement import build_implement_messages  # noqa: E402
from quorum.stages.localize import LocalizeReply, build_localize_messages  # noqa: E402
from quorum.stages.plan import build_plan_messages, parse_plan  # noqa: E402
from quorum.stages.prompting import render_files  # noqa: E402
from quorum.stages.review import build_review_messages, parse_review  # noqa: E402
from tests.support.fake_provider import (  # noqa: E402
    FakeProviderConfig,
    FakeProviderServer,
    ModelBehaviour,
    PromptCache,
    ReplyRule,
)

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "QUORUM_BENCH_PROVIDER_KEY"
POLICY = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, attempt_timeout_s=30, deadline_s=60)
CACHES = {
    "anthropic": PromptCache(mode="explicit", min_tokens=1024),
    "openai": PromptCache(min_tokens=1024, block_tokens=128),
    "deepseek": PromptCache(min_tokens=64, block_tokens=64),
    "gemini": PromptCache(min_tokens=1024),
}
# A plan of typical size (quorum.domain.estimate.TYPICAL_PLAN_CHARS: ~2,400 characters as markdown).
PLAN = {
    "summary": "Make the task budget check price a stage's prompt at cached rates where the provider caches, so that "
               "a revision round whose context is read from the cache is not refused for a cost it will not incur.",
    "steps": [
        {"description": "In quorum/domain/ledger.py, change Ledger.allows to take the tokens of the stage's stable "
                        "prefix and price them with the cached-read price for rounds after the first.",
         "files": ["quorum/domain/ledger.py"]},
        {"description": "In quorum/domain/estimate.py, expose a helper that returns the cache use of a stage "
                        "(written in round 1, read later) so the ledger and the dry run share one rule.",
         "files": ["quorum/domain/estimate.py", "quorum/domain/caching.py"]},
        {"description": "In flows/pipeline.py, pass the stable prefix size measured from the stage's real messages "
                        "(quorum.llm.prompt_cache.stable_prefix) to the budget check of implement and review.",
         "files": ["flows/pipeline.py"]},
        {"description": "Keep the first round priced as today, including the Anthropic cache-write premium, so a "
                        "task whose first round does not fit is still refused before any call.",
         "files": ["quorum/domain/ledger.py"]},
        {"description": "Add tests: a second round that fits only at cached prices is allowed; a first round that "
                        "does not fit is refused; an uncached provider is priced as before.",
         "files": ["tests/test_budget_ledger.py"]},
        {"description": "Update the README's budget paragraph to say that later rounds are checked at cached prices "
                        "where the roster's providers cache prompts.", "files": ["README.md"]},
    ],
    "files_to_change": ["quorum/domain/ledger.py", "quorum/domain/estimate.py", "flows/pipeline.py",
                        "tests/test_budget_ledger.py", "README.md"],
    "risks": ["A provider that evicts the cache early makes the later round cost more than checked.",
              "Budgets of batches resumed from an earlier version are computed with the old rule."],
}  # fmt: skip
REVIEW = {"verdict": "approve", "summary": "The change does what the plan says.", "findings": []}
LOCALIZE = {"edit_files": ["quorum/domain/ledger.py"], "read_files": ["quorum/domain/cost.py"]}
TASK = ("Budget checks ignore prompt caching (#{n})\n\nThe task budget is checked with uncached prices, so a "
        "revision round that reads its context from the provider's cache is refused although it would fit.")  # fmt: skip


def source_files() -> list[Path]:
    return sorted(p for p in (ROOT / "quorum").rglob("*.py") if p.stat().st_size > 2_000)


def context(files: list[Path], start: int, tokens: int) -> str:
    """Line-numbered <file> blocks of quorum's own code from `start` on, until `tokens` (chars / 4) are filled."""
    chosen: dict[str, str] = {}
    size, index = 0, start
    while size < tokens * 4:
        path = files[index % len(files)]
        text = path.read_text()
        chosen[str(path.relative_to(ROOT))] = text[: tokens * 4 - size + 200]
        size += len(chosen[str(path.relative_to(ROOT))])
        index += 1
    return render_files(chosen)


def fake_config(roster: Roster, cache: bool) -> FakeProviderConfig:
    replies = [
        ReplyRule(contains="localization engineer", data=LOCALIZE),
        ReplyRule(contains="planning engineer", data=PLAN),
        ReplyRule(contains="independent code reviewer", data=REVIEW),
    ]
    models = {}
    for _, model in roster.stage_models():
        name = model.model.partition("/")[2]
        models[name] = ModelBehaviour(replies=replies, reply="Edits below.\n(no change needed)",
                                      prompt_cache=CACHES.get(model.provider) if cache else None)  # fmt: skip
    return FakeProviderConfig(models=models, default=None)


def pointed(roster: Roster, base_url: str) -> Roster:
    def at(model: StageModel) -> StageModel:
        return model.model_copy(update={"api_base": base_url, "api_key_env": KEY_ENV})

    return roster.model_copy(update={
        "localizer": at(roster.localizer) if roster.localizer else None, "planner": at(roster.planner),
        "implementer": at(roster.implementer), "reviewers": [at(r) for r in roster.reviewers],
    })  # fmt: skip


@dataclass
class Row:
    task: int
    round: int
    stage: str
    model: str
    prompt_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    input_usd: float
    cost_usd: float


def row(task: int, round_no: int, call: LLMCall) -> Row:
    input_usd = litellm_price(call.priced_as, call.prompt_tokens, 0, call.cached_tokens, call.cache_write_tokens)
    return Row(task, round_no, call.stage, call.model, call.prompt_tokens, call.cached_tokens, call.cache_write_tokens,
               input_usd, call.cost_usd)  # fmt: skip


def run_task(roster: Roster, files: list[Path], task: int, rounds: int) -> list[Row]:
    """One task: localize, plan, then `rounds` rounds of implement and every review, as the pipeline sends them."""
    text = TASK.format(n=task)
    rows = []
    offset = task * 7
    if roster.localizer:
        messages = build_localize_messages(text, context(files, offset, roster.localizer.context_budget("localize")))
        _, calls = ask_structured("localize", roster.localizer, messages, LocalizeReply.model_validate_json,
                                  policy=POLICY, schema=LocalizeReply)  # fmt: skip
        rows += [row(task, 1, c) for c in calls]
    plan_context = context(files, offset + 1, roster.planner.context_budget("plan"))
    plan, calls = ask_structured("plan", roster.planner, build_plan_messages(text, plan_context), parse_plan,
                                 policy=POLICY, schema=Plan)  # fmt: skip
    rows += [row(task, 1, c) for c in calls]
    implement_context = context(files, offset + 2, roster.implementer.context_budget("implement"))
    for round_no in range(1, rounds + 1):
        feedback = [f"round {round_no - 1}: tests/test_ledger.py::test_cached_price failed"] if round_no > 1 else []
        messages = build_implement_messages(text, implement_context, plan, round_no, feedback, [],
                                            edit_format=EditFormat.search_replace)  # fmt: skip
        _, call = complete("implement", roster.implementer, messages, round_no=round_no, policy=POLICY)
        rows.append(row(task, round_no, call))
        patched = context(files, offset + 3 + round_no, roster.reviewers[0].context_budget("review"))
        patch = f"--- a/quorum/domain/ledger.py\n+++ b/quorum/domain/ledger.py\n@@ -40 +40 @@\n-round {round_no}\n" * 20
        report = f"pytest: {'passed' if round_no == rounds else 'failed'} (round {round_no})"
        for reviewer in roster.reviewers:
            messages = build_review_messages(text, patched, plan, patch, report)
            _, calls = ask_structured("review", reviewer, messages, parse_review, round_no=round_no, policy=POLICY,
                                      schema=Review)  # fmt: skip
            rows += [row(task, round_no, c) for c in calls]
    return rows


def run(roster: Roster, tasks: int, rounds: int, cache: bool) -> list[Row]:
    files = source_files()
    with FakeProviderServer(fake_config(roster, cache)) as server:
        live = pointed(roster, server.base_url)
        return [r for task in range(tasks) for r in run_task(live, files, task, rounds)]


def usd(amount: float) -> str:
    return f"${amount:.4f}"


def print_task(on: list[Row], off: list[Row]) -> None:
    print("\nOne task, call by call (task 0): input tokens, cached (written), input cost; caching on | off")
    print(f"{'round':>5} {'stage':<9} {'model':<28} {'input':>7} {'cached':>7} {'written':>7} "
          f"{'input $ on':>10} {'input $ off':>11} {'on/off':>7}")  # fmt: skip
    for a, b in zip([r for r in on if r.task == 0], [r for r in off if r.task == 0], strict=True):
        ratio = a.input_usd / b.input_usd if b.input_usd else 0.0
        print(f"{a.round:>5} {a.stage:<9} {a.model:<28} {a.prompt_tokens:>7} {a.cached_tokens:>7} "
              f"{a.cache_write_tokens:>7} {usd(a.input_usd):>10} {usd(b.input_usd):>11} {ratio:>6.0%}")  # fmt: skip


def print_stages(title: str, on: list[Row], off: list[Row]) -> None:
    print(f"\n{title}: per stage, caching on | off")
    print(f"{'stage':<10} {'calls':>5} {'input':>9} {'cached':>9} {'written':>8} {'input $ on':>11} "
          f"{'input $ off':>11} {'cost on':>9} {'cost off':>9} {'saved':>6}")  # fmt: skip
    stages = list(dict.fromkeys(r.stage for r in on))
    for stage in [*stages, "total"]:
        a = [r for r in on if stage in (r.stage, "total")]
        b = [r for r in off if stage in (r.stage, "total")]
        cost_on, cost_off = sum(r.cost_usd for r in a), sum(r.cost_usd for r in b)
        saved = 1 - cost_on / cost_off if cost_off else 0.0
        print(f"{stage:<10} {len(a):>5} {sum(r.prompt_tokens for r in a):>9} {sum(r.cached_tokens for r in a):>9} "
              f"{sum(r.cache_write_tokens for r in a):>8} {usd(sum(r.input_usd for r in a)):>11} "
              f"{usd(sum(r.input_usd for r in b)):>11} {usd(cost_on):>9} {usd(cost_off):>9} {saved:>6.0%}")  # fmt: skip


def targets(roster: Roster, on: list[Row], rounds: int) -> dict:
    """The two targets, from the caching-on run (task 0 for the rounds, every task for the reviewers)."""
    implement = {r.round: r for r in on if r.task == 0 and r.stage == "implement"}
    later = {n: implement[n].input_usd / implement[1].input_usd for n in range(2, rounds + 1)}
    second = roster.reviewers[1].model
    reviews = [r for r in on if r.stage == "review" and r.model == second]
    first_round = [r for r in reviews if r.round == 1]
    later_rounds = [r for r in reviews if r.round > 1]
    return {
        "implement_round_input_cost_vs_round_1": later,
        "rounds_target_met": all(ratio <= 0.40 for ratio in later.values()),
        "second_reviewer": second,
        "second_reviewer_round_1_cached_tokens": sum(r.cached_tokens for r in first_round),
        "second_reviewer_round_1_prompt_tokens": sum(r.prompt_tokens for r in first_round),
        "second_reviewer_later_rounds_cached_tokens": sum(r.cached_tokens for r in later_rounds),
        "second_reviewer_later_rounds_prompt_tokens": sum(r.prompt_tokens for r in later_rounds),
        "second_reviewer_target_met": sum(r.cached_tokens for r in first_round) > 0,
        "review_stable_tokens": len(stable_prefix(build_review_messages(TASK.format(n=0), "", Plan.model_validate(PLAN),
                                                                        "", ""))) // 4,
    }


def report(name: str, roster: Roster, tasks: int, rounds: int) -> dict:
    on, off = run(roster, tasks, rounds, True), run(roster, tasks, rounds, False)
    print(f"\n=== roster {name}: " + ", ".join(f"{stage} {m.model}" for stage, m in roster.stage_models()))
    print_task(on, off)
    print_stages(f"One task, {rounds} rounds", [r for r in on if r.task == 0], [r for r in off if r.task == 0])
    print_stages(f"Batch of {tasks} tasks x {rounds} rounds", on, off)
    checked = targets(roster, on, rounds)
    ratios = ", ".join(f"round {n}: {ratio:.0%}" for n, ratio in checked["implement_round_input_cost_vs_round_1"].items())
    print(f"\ntarget 1, rounds >= 2 pay <= 40% of round 1's input cost (implementer, same context): {ratios} -> "
          f"{'met' if checked['rounds_target_met'] else 'NOT met'}")
    print(f"target 2, the second reviewer ({checked['second_reviewer']}) pays cached prices for the shared prefix: "
          f"round 1 {checked['second_reviewer_round_1_cached_tokens']} of "
          f"{checked['second_reviewer_round_1_prompt_tokens']} input tokens cached; later rounds "
          f"{checked['second_reviewer_later_rounds_cached_tokens']} of {checked['second_reviewer_later_rounds_prompt_tokens']} "
          f"-> {'met' if checked['second_reviewer_target_met'] else 'NOT met'} (reviewers come from distinct "
          "providers and a provider's cache holds only its own requests; a reviewer's own stable prefix, system "
          f"prompt + task + plan, is {checked['review_stable_tokens']} tokens here: "
          f"{'cached from round 2 on' if checked['second_reviewer_later_rounds_cached_tokens'] else 'under the 1,024-token minimum, so not cached either'})")
    return {"roster": name, "targets": checked, "on": [asdict(r) for r in on], "off": [asdict(r) for r in off]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write every call's figures here")
    args = parser.parse_args()
    os.environ.setdefault(KEY_ENV, "bench-key-not-secret")
    default = load_roster("default")
    haiku = default.implementer.model_copy(update={"model": "anthropic/claude-haiku-4-5", "edit_format": None})
    results = [
        report("default", default, args.tasks, args.rounds),
        report("default with a Claude Haiku implementer", default.model_copy(update={"implementer": haiku}),
               args.tasks, args.rounds),
    ]  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
