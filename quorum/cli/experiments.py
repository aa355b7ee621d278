"""`quorum review`, `quorum compare` and `quorum review-eval`: the thesis in numbers, as commands.

* review: an existing change (a diff file or a commit range) through the verification tools and the
  roster's independent reviewers, decided by the policy; markdown, JSON and SARIF; exits by verdict.
* compare: the same manifest under several rosters, one after another (shared stages come from the
  cache), one row per roster.
* review-eval: a labelled set of changes, scored per reviewer alone and per roster's panel.

Every figure from scripted models is labelled simulated wherever it is shown.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from quorum.cli.display import one_line

EXIT_APPROVE, EXIT_CHANGES, EXIT_BAD_INPUT, EXIT_BROKEN, EXIT_ESCALATE = 0, 1, 2, 3, 4
REVIEW_EXITS = {"approve": EXIT_APPROVE, "request_changes": EXIT_CHANGES, "escalate": EXIT_ESCALATE}
COMMANDS = ("review", "compare", "review-eval")
SIMULATED = "SIMULATED: scripted models priced as the real models they stand in for"
_ID = re.compile(r"[^A-Za-z0-9._-]+")


class InputError(ValueError):
    """Bad input found before anything ran."""


def _console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=250)  # piped (CI logs, tee): the tables are wide


def add_commands(sub: argparse._SubParsersAction, default_store: str) -> None:
    def shared(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", default=default_store, help="artifact store: a folder, s3://bucket/prefix or block:<name> (default: .quorum)")
        p.add_argument("--cache-dir", default=None, help="where Prefect persists cached results (default: <store>/cache for a folder store)")
        p.add_argument("--verbose", action="store_true", help="show Prefect's own logs")

    def tools(p: argparse.ArgumentParser, default: str = "semgrep,bandit,pytest") -> None:
        p.add_argument("--tools", default=default, help=f"verification tools, comma-separated, or 'none' (default: {default})")

    review = sub.add_parser(
        "review", help="review an existing change (diff file or commit range)",
        description="Review an existing change with the verification tools and the roster's independent reviewers, "
        "aggregated by the policy. Exit codes: 0 approve, 1 request changes, 4 escalate to a human, 2 bad input, 3 failed.",
    )  # fmt: skip
    review.add_argument("--repo", required=True, help="the repository (a git repository, or a plain folder with --diff)")
    which = review.add_mutually_exclusive_group(required=True)
    which.add_argument("--diff", help="a unified diff file, applied to the repository's HEAD (or the folder as it is)")
    which.add_argument("--range", dest="commit_range", metavar="BASE..HEAD", help="review the change from BASE to HEAD")
    text = review.add_mutually_exclusive_group()
    text.add_argument("--description", default="", help="what the change is meant to do (e.g. the PR's title and body)")
    text.add_argument("--description-file", default=None, help="a file holding the description")
    review.add_argument("--roster", default="default", help="roster whose reviewers review (name, file or block:<name>; default: default)")
    review.add_argument("--script", default=None, help="script file, for scripted reviewers")
    review.add_argument("--author", default=None, metavar="MODEL_OR_PROVIDER", help="who wrote the change (e.g. openai/gpt-5): reviewers of that provider are refused")
    review.add_argument("--id", default="change", help="name of this change in the store (default: change)")
    review.add_argument("--batch-id", default="reviews", help="folder of reviews in the store (default: reviews)")
    review.add_argument("--out", default=None, metavar="DIR", help="also write review.md, review.json and review.sarif here")
    tools(review)
    shared(review)

    compare = sub.add_parser(
        "compare", help="run the same tasks under several rosters and compare them",
        description="Run a manifest under each roster, one after another (stages a later roster shares with an "
        "earlier one come from the cache), and compare resolve rate and cost per task.",
    )  # fmt: skip
    compare.add_argument("manifest", help="manifest YAML file (see examples/demo.yaml)")
    compare.add_argument("--roster", action="append", required=True, help="a roster (name, file or block:<name>); give two or more")
    compare.add_argument("--compare-id", default=None, help="name of this comparison in the store (default: compare-<manifest batch>)")
    compare.add_argument("--parallel", type=int, default=3, help="tasks run at once within a roster (default: 3)")
    compare.add_argument("--max-rounds", type=int, default=3, help="implementation rounds before a task fails (default: 3)")
    compare.add_argument("--task-budget", type=float, default=None, metavar="USD", help="stop a task once it has spent this much")
    compare.add_argument("--no-resume", action="store_true", help="run every task again even if finished results are in the store")
    compare.add_argument("--dry-run", action="store_true", help="print each roster's estimated cost (no API key needed), run nothing")
    compare.add_argument("--figures", default=None, metavar="DIR", help="also copy the plot (PNG, SVG) here")
    shared(compare)

    evaluation = sub.add_parser(
        "review-eval", help="score reviewers on a labelled set of changes",
        description="Review every change of a labelled set with each roster's reviewers; score each reviewer alone, "
        "each roster's panel and the tools alone: precision, recall, F1, false approvals, false blocks, $ per review.",
    )  # fmt: skip
    evaluation.add_argument("set", help="labelled review set YAML (see examples/review-set/set.yaml)")
    evaluation.add_argument("--roster", action="append", required=True, help="a roster whose reviewers are scored; repeat to compare panels")
    evaluation.add_argument("--eval-id", default=None, help="name of this evaluation in the store (default: the set's name)")
    evaluation.add_argument("--window", type=int, default=None, help="override the set's line window for a match")
    evaluation.add_argument("--parallel", type=int, default=3, help="changes reviewed at once (default: 3)")
    evaluation.add_argument("--dry-run", action="store_true", help="print the estimated cost per reviewer (no API key needed), run nothing")
    evaluation.add_argument("--figures", default=None, metavar="DIR", help="also copy the plot (PNG, SVG) here")
    tools(evaluation)
    shared(evaluation)


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "review":
            return _review(args)
        if args.command == "compare":
            return _compare(args)
        return _review_eval(args)
    except InputError as exc:
        print(f"quorum: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


# ------------------------------------------------------------------------------------------- inputs


def _rosters(refs: list[str], *, keys: bool, only_reviewers: bool = False):
    """Load every roster; check models always, API keys unless this is a dry run (for reviews: the reviewers' keys)."""
    from quorum.blocks.refs import resolve_roster
    from quorum.llm.client import check_api_keys, check_roster_models

    rosters = []
    for ref in refs:
        try:
            roster = resolve_roster(ref)
            check_roster_models(roster)
            if keys:
                # a review calls only the reviewers: check their keys, not the planner's or the implementer's
                needed = roster.model_copy(update={"planner": roster.reviewers[0], "implementer": roster.reviewers[0]}) if only_reviewers else roster
                check_api_keys(needed)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        rosters.append(roster)
    return rosters


def _tools(text: str) -> list[str]:
    from quorum.flows.verify import ROUND_TOOLS

    if text.strip().lower() == "none":
        return []
    tools = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in tools if t not in ROUND_TOOLS]
    if unknown or not tools:
        raise InputError(f"--tools takes {', '.join(ROUND_TOOLS)} (comma-separated) or none; got {text!r}")
    return list(dict.fromkeys(tools))


def _store_url(store: str) -> str:
    from quorum.blocks.refs import open_store_ref

    try:
        open_store_ref(store)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    return store if "://" in store or store.startswith("block:") else str(Path(store).resolve())


def _safe_id(text: str) -> str:
    return _ID.sub("-", text).strip("-.") or "run"


def _copy_figures(store, artifacts: dict[str, str], target: str | None, name: str) -> list[str]:
    if not target:
        return []
    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in ("plot_png", "plot_svg"):
        key = artifacts.get(kind)
        if key:
            path = folder / f"{name}{Path(key).suffix}"
            path.write_bytes(store.get_bytes(key))
            written.append(str(path))
    return written


# ------------------------------------------------------------------------------------------- review


def _review(args: argparse.Namespace) -> int:
    from quorum.domain.change import TOOLS_PANEL, render_change_review_markdown, verdict
    from quorum.domain.policy import Policy
    from quorum.domain.roster import RosterError
    from quorum.inputs.changes import ChangeInputError, load_change

    (roster,) = _rosters([args.roster], keys=True, only_reviewers=True)
    if args.author:
        provider = args.author.partition("/")[0]
        shared = [r.model for r in roster.reviewers if provider in r.providers()]
        if shared:
            raise InputError(str(RosterError(
                f"reviewer(s) {', '.join(shared)} share provider {provider!r} with the change's author {args.author}: "
                "a model does not review its own provider's output"
            )))  # fmt: skip
    description = args.description
    if args.description_file:
        try:
            description = Path(args.description_file).read_text().strip()
        except OSError as exc:
            raise InputError(f"--description-file: {exc}") from exc
    try:
        change = load_change(change_id=args.id, repo=args.repo, diff_file=args.diff, commit_range=args.commit_range,
                             description=description, script=args.script, label="quorum review")  # fmt: skip
    except ChangeInputError as exc:
        raise InputError(str(exc)) from exc
    if roster.simulated and not change.script:
        raise InputError(f"roster {roster.name!r} has scripted reviewers: give --script")
    tools = _tools(args.tools)
    store_url = _store_url(args.store)
    prefix = f"reviews/{_safe_id(args.batch_id)}/{_safe_id(args.id)}"
    console = _console()
    console.print(f"[bold]quorum[/bold] review [cyan]{change.id}[/cyan]: {change.repo}"
                  + (f" at {change.base[:12]}" if change.base else ""))  # fmt: skip
    console.print(f"  tools: {', '.join(tools) or 'none'}; reviewers ({roster.name}): "
                  + ", ".join(r.model + (f" (scripted, priced as {r.priced_as})" if r.is_scripted else "") for r in roster.reviewers))  # fmt: skip
    if roster.simulated:
        console.print(f"  [yellow]{SIMULATED}[/yellow]")
    try:
        from quorum.flows.review import review_change

        result = review_change(change, [roster], store_url, prefix, policy=Policy(), tools=tools)
    except Exception as exc:
        print(f"quorum: error: the review failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    if not result.patch.applied:
        print(f"quorum: error: the change does not apply to {change.repo}: {result.patch.reason}", file=sys.stderr)
        return EXIT_BAD_INPUT
    decision = result.decisions[roster.name]
    markdown = render_change_review_markdown(change, result, roster.name, simulated=result.cost.simulated)
    console.print(markdown, markup=False, highlight=False)
    if TOOLS_PANEL in result.decisions:
        console.print(f"tools alone: {verdict(result.decisions[TOOLS_PANEL])}")
    from quorum.store import open_store

    store = open_store(store_url) if not store_url.startswith("block:") else None
    location = store.url(prefix) if store is not None else f"{store_url} {prefix}"
    console.print(f"artifacts: {location}/ (review.md, review.json, review.sarif)")
    if args.out and store is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name in ("review.md", "review.json", "review.sarif"):
            (out / name).write_bytes(store.get_bytes(f"{prefix}/{name}"))
        console.print(f"written to {out}/")
    if result.errors:
        print(f"quorum: error: no review from {', '.join(result.errors)}", file=sys.stderr)
        return EXIT_BROKEN
    return REVIEW_EXITS[verdict(decision)]


# ------------------------------------------------------------------------------------------ compare


def _compare(args: argparse.Namespace) -> int:
    from quorum.domain.compare import check_distinct_names
    from quorum.domain.manifest import ManifestError
    from quorum.domain.policy import Policy
    from quorum.inputs.manifests import load_manifest

    try:
        manifest = load_manifest(args.manifest)
    except ManifestError as exc:
        raise InputError(str(exc)) from exc
    rosters = _rosters(args.roster, keys=not args.dry_run)
    try:
        check_distinct_names(rosters)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if any(r.simulated for r in rosters) and any(not spec.script for spec in manifest.tasks):
        missing = ", ".join(spec.id for spec in manifest.tasks if not spec.script)
        raise InputError(f"a roster has scripted models but task(s) {missing} have no script")
    if args.max_rounds < 1 or args.parallel < 1:
        raise InputError("--max-rounds and --parallel must be at least 1")
    if args.task_budget is not None and args.task_budget <= 0:
        raise InputError("--task-budget must be a positive amount of USD")
    policy = Policy(max_rounds=args.max_rounds, task_budget_usd=args.task_budget)
    if args.dry_run:
        return _compare_dry_run(manifest, rosters, policy, args.store)
    store_url = _store_url(args.store)
    compare_id = _safe_id(args.compare_id or f"compare-{manifest.batch}")
    console = _console()
    console.print(f"[bold]quorum[/bold] compare [cyan]{compare_id}[/cyan]: {len(manifest.tasks)} task(s) x {len(rosters)} rosters, one roster after another")
    for roster in rosters:
        reviewers = ", ".join(r.model for r in roster.reviewers)
        console.print(f"  {roster.name:<26} plan {roster.planner.model} · implement {roster.implementer.model} · review {reviewers}")
    if any(r.simulated for r in rosters):
        console.print(f"  [yellow]{SIMULATED}[/yellow]")
    started = time.time()
    try:
        from quorum.flows.compare import compare_rosters

        report = compare_rosters(manifest, rosters, store_url, compare_id, policy=policy, max_parallel=args.parallel,
                                 resume=not args.no_resume, progress=_progress(console))  # fmt: skip
    except Exception as exc:
        print(f"quorum: error: the comparison failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    print_compare(report, console)
    store = _open(store_url)
    copied = _copy_figures(store, report.artifacts, args.figures, compare_id) if store else []
    console.print(f"wall time {time.time() - started:.1f}s; report: {_where(store, store_url, report.artifacts['report_md'])}"
                  f" (and compare.json, compare.png, compare.svg)" + (f"; figures: {', '.join(copied)}" if copied else ""))  # fmt: skip
    return 0


def print_compare(report, console: Console | None = None) -> None:
    from quorum.domain.compare import TABLE_COLUMNS, table_cells

    console = console or _console()
    label = f" — {SIMULATED}" if report.simulated else ""
    table = Table(title=f"roster comparison {report.compare_id}{label}", title_justify="left")
    for column in TABLE_COLUMNS:
        table.add_column(column + (" (sim.)" if report.simulated and "$" in column else ""),
                         justify="left" if column == "roster" else "right")  # fmt: skip
    for row in report.rows:
        table.add_row(*table_cells(row))
    console.print(table)
    for note in report.shared:
        console.print(f"  {note}")
    console.print("  costs: what each roster would pay on its own (cached calls at their price); "
                  "made now / served from cache / paid now: what this run spent; *: Pareto front")  # fmt: skip


def _compare_dry_run(manifest, rosters, policy, store: str) -> int:
    from quorum.domain.cost import format_usd
    from quorum.domain.compare import estimate_compare
    from quorum.llm.pricing import litellm_price
    from quorum.settings import settings
    from quorum.stages.sizes import estimated_prompt_sizes
    from quorum.workspace.workspace import prepare_workspace, remove_workspace

    sizes: list[dict] = [{} for _ in rosters]
    index_cache = settings().index_cache_dir(store)
    with tempfile.TemporaryDirectory(prefix="quorum-estimate-") as tmp:
        for spec in manifest.tasks:
            workspace = prepare_workspace(Path(spec.repo), Path(tmp), ref=spec.ref)
            try:  # each roster's contexts as the pipeline builds them, within its models' budgets
                for table, roster in zip(sizes, rosters, strict=True):
                    table[spec.id] = estimated_prompt_sizes(spec.task, workspace.path, index_cache, roster)
            finally:
                remove_workspace(workspace)
    estimates = estimate_compare(sizes, rosters, policy.max_rounds, litellm_price)
    console = _console()
    simulated = any(r.simulated for r in rosters)
    table = Table(title="estimated cost per roster" + (f" — {SIMULATED}" if simulated else ""), title_justify="left")
    for column in ("roster", "expected (alone)", "expected, paid in this comparison", f"worst alone ({policy.max_rounds} rounds)"):
        table.add_column(column, justify="left" if column == "roster" else "right")
    for row in estimates:
        table.add_row(row.roster, format_usd(row.expected_usd), format_usd(row.expected_paid_usd), format_usd(row.worst_usd))
    console.print(table)
    console.print(f"comparison of {len(manifest.tasks)} task(s): expected {format_usd(sum(e.expected_paid_usd for e in estimates))} "
                  f"paid (plans shared by a planner are paid once), worst case {format_usd(sum(e.worst_usd for e in estimates))}")  # fmt: skip
    console.print("assumptions: as `quorum batch --dry-run` (tokens = characters / 4 of the real prompts, typical reply sizes, "
                  "one call per stage; expected = 1 round, worst = every round reviewed; prompt caches assumed where "
                  "the providers offer them: later rounds read the stable prefix, Anthropic implementers and "
                  "reviewers pay the cache write in round 1)")  # fmt: skip
    return 0


# -------------------------------------------------------------------------------------- review-eval


def _review_eval(args: argparse.Namespace) -> int:
    from quorum.domain.change import union_reviewers
    from quorum.inputs.changes import ChangeInputError, load_review_set

    try:
        review_set = load_review_set(args.set)
    except ChangeInputError as exc:
        raise InputError(str(exc)) from exc
    if args.window is not None:
        if args.window < 0:
            raise InputError("--window must be 0 or more")
        review_set = review_set.model_copy(update={"window": args.window})
    rosters = _rosters(args.roster, keys=not args.dry_run, only_reviewers=True)
    names = [r.name for r in rosters]
    if len(set(names)) != len(names):
        raise InputError("roster names must differ (each names a panel)")
    try:
        reviewers = union_reviewers(rosters)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    if any(m.is_scripted for m in reviewers) and any(not c.script for c in review_set.changes):
        missing = ", ".join(c.id for c in review_set.changes if not c.script)
        raise InputError(f"scripted reviewers need a script for every change; missing: {missing}")
    if args.parallel < 1:
        raise InputError("--parallel must be at least 1")
    tools = _tools(args.tools)
    if args.dry_run:
        return _eval_dry_run(review_set, reviewers)
    store_url = _store_url(args.store)
    eval_id = _safe_id(args.eval_id or review_set.name)
    console = _console()
    console.print(f"[bold]quorum[/bold] review-eval [cyan]{eval_id}[/cyan]: {len(review_set.changes)} changes "
                  f"({sum(1 for c in review_set.changes if c.defective)} defective), window {review_set.window} lines, "
                  f"tools: {', '.join(tools) or 'none'}")  # fmt: skip
    console.print(f"  reviewers: {', '.join(m.model for m in reviewers)}; panels: {', '.join(names)}")
    if any(m.is_scripted for m in reviewers):
        console.print(f"  [yellow]{SIMULATED}[/yellow]")
    started = time.time()
    try:
        from quorum.domain.policy import Policy
        from quorum.flows.review_eval import review_eval

        report = review_eval(review_set, rosters, store_url, eval_id, policy=Policy(), tools=tools,
                             max_parallel=args.parallel, progress=_progress(console))  # fmt: skip
    except Exception as exc:
        print(f"quorum: error: the evaluation failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    print_eval(report, console)
    store = _open(store_url)
    copied = _copy_figures(store, report.artifacts, args.figures, f"review-eval-{eval_id}") if store else []
    console.print(f"wall time {time.time() - started:.1f}s; report: {_where(store, store_url, report.artifacts['report_md'])}"
                  f" (and review-eval.json, .png, .svg)" + (f"; figures: {', '.join(copied)}" if copied else ""))  # fmt: skip
    return 0


def print_eval(report, console: Console | None = None) -> None:
    from quorum.domain.review_eval import EVAL_COLUMNS, eval_cells

    console = console or _console()
    label = f" — {SIMULATED}" if report.simulated else ""
    table = Table(title=f"review evaluation {report.eval_id} ({report.changes} changes, {report.defective} defective, "
                        f"window {report.window}){label}", title_justify="left")  # fmt: skip
    for column in EVAL_COLUMNS:
        table.add_column(column + (" (sim.)" if report.simulated and "$" in column else ""),
                         justify="left" if column in ("reviewer", "kind") else "right")  # fmt: skip
    for row in report.rows:
        table.add_row(*eval_cells(row))
    console.print(table)
    for row in report.rows:
        if row.errors:
            console.print(f"  {row.name}: no verdict on {row.errors} change(s) (left out of its rates)")
    console.print(f"  only blocking findings (severity >= {report.blocking_severity}) count; a TP names the defect's file and a "
                  f"line within {report.window}; dup = further hits on a found defect; *: cost-vs-F1 Pareto front")  # fmt: skip


def _eval_dry_run(review_set, reviewers) -> int:
    from quorum.domain.cost import format_usd
    from quorum.domain.estimate import messages_chars, stage_estimate, TYPICAL_REPORT_CHARS
    from quorum.domain.labels import touched_lines
    from quorum.llm.pricing import litellm_price
    from quorum.stages.change_review import build_change_review_messages, changed_regions
    from quorum.workspace.change import read_files
    from quorum.workspace.workspace import prepare_workspace, remove_workspace
    from quorum.edits import apply_reply

    chars = []
    with tempfile.TemporaryDirectory(prefix="quorum-estimate-") as tmp:
        for change in review_set.changes:
            workspace = prepare_workspace(Path(change.repo), Path(tmp), ref=change.base)
            patch = apply_reply(Path(workspace.path), change.diff)
            files = read_files(Path(workspace.path), patch.files) if patch.applied else {}
            remove_workspace(workspace)
            regions = changed_regions(files, touched_lines(change.diff))
            messages = build_change_review_messages(change.description, change.diff, "x" * TYPICAL_REPORT_CHARS, regions)
            chars.append(messages_chars(messages))
    console = _console()
    simulated = any(m.is_scripted for m in reviewers)
    table = Table(title=f"estimated review cost, {len(chars)} changes" + (f" — {SIMULATED}" if simulated else ""), title_justify="left")
    for column in ("reviewer", "$ per review", "$ for the set"):
        table.add_column(column, justify="left" if column == "reviewer" else "right")
    total = 0.0
    for model in reviewers:
        cost = sum(stage_estimate("review", model, c, litellm_price).cost_usd for c in chars)
        total += cost
        table.add_row(model.model, format_usd(cost / len(chars)), format_usd(cost))
    console.print(table)
    console.print(f"whole evaluation: expected {format_usd(total)} (every reviewer reviews every change once; "
                  "tokens = characters / 4 of the real prompts, replies of typical review size)")  # fmt: skip
    return 0


# ------------------------------------------------------------------------------------------ helpers


def _open(store_url: str):
    from quorum.store import open_store

    return None if store_url.startswith("block:") else open_store(store_url)


def _where(store, store_url: str, key: str) -> str:
    return store.url(key) if store is not None else f"{store_url} {key}"


def _progress(console: Console):
    def report(event) -> None:
        if event.done:
            detail = f" — {one_line(event.detail, 150)}" if event.detail else ""
            console.print(f"  [bold]{event.stage:<10}[/bold] {event.task_id}{detail}", markup=True, highlight=False)

    return report
