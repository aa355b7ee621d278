"""`quorum` command line: run one task or a batch, with progress and a summary table.

`quorum context` (quorum/cli/context.py) shows what a model would be given for a task, without a model call.

Exit codes: 0 every task resolved (or approved without acceptance tests); 1 the batch ran but some
tasks were not resolved; 2 the input is bad (nothing was run); 3 the run itself broke.
`quorum apply-reply` (quorum/cli/apply_reply.py): 0 applied, 1 refused, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from quorum.cli import experiments
from quorum.cli.apply_reply import add_apply_reply_parser, run_apply_reply

EXIT_OK, EXIT_UNRESOLVED, EXIT_BAD_INPUT, EXIT_BROKEN = 0, 1, 2, 3
DEFAULT_STORE = ".quorum"
DEFAULT_SHARD_DEPLOYMENT = "quorum-batch-shard/shard"  # flows.batch.DEFAULT_SHARD_DEPLOYMENT (not imported: Prefect loads late)


class InputError(ValueError):
    """Bad input found before anything ran."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quorum",
        description="Multi-model AI coding pipelines on Prefect: plan, implement, verify, review, aggregate.",
        epilog="Exit codes: 0 all resolved, 1 some tasks not resolved, 2 bad input, 3 run failed.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--roster", default=None, help="shipped roster name (scripted, default), a roster YAML file, or block:<name>")
        p.add_argument("--store", default=DEFAULT_STORE, help="artifact store: a folder, s3://bucket/prefix or block:<name> (default: .quorum)")
        p.add_argument("--cache-dir", default=None, help="where the LLM stages persist their results (default: $QUORUM_CACHE, else the store's cache/ folder or prefix)")
        p.add_argument("--max-rounds", type=int, default=3, help="implementation rounds before a task fails (default: 3)")
        p.add_argument("--task-budget", type=float, default=None, metavar="USD", help="stop a task once it has spent this much")
        p.add_argument("--verbose", action="store_true", help="show Prefect's own logs")

    batch = sub.add_parser("batch", help="run every task of a manifest", description="Run every task of a manifest.")
    batch.add_argument("manifest", help="manifest YAML file or s3://bucket/key.yaml (see examples/demo.yaml)")
    batch.add_argument("--parallel", type=int, default=3, help="tasks run at once (default: 3)")
    batch.add_argument("--batch-id", default=None, help="name of this batch in the store (default: the manifest's 'batch'); the same id again resumes it")
    batch.add_argument("--batch-budget", type=float, default=None, metavar="USD", help="no new LLM call once the batch has spent this much; tasks not started are reported as skipped")
    batch.add_argument("--dry-run", action="store_true", help="print the estimated cost per task and stage, run nothing")
    batch.add_argument("--fan-out", nargs="?", const=DEFAULT_SHARD_DEPLOYMENT, default=None, metavar="DEPLOYMENT",
                       help=f"run the tasks in shards, each a run of this deployment (default {DEFAULT_SHARD_DEPLOYMENT}) on its work pool; needs PREFECT_API_URL")
    batch.add_argument("--shard-size", type=int, default=None, metavar="N", help="with --fan-out: tasks per shard (default: from the batch size and the pool's online workers)")
    batch.add_argument("--no-resume", action="store_true", help="run every task again even if this batch id has finished results in the store")
    common(batch)

    run = sub.add_parser("run", help="run one task on one repository", description="Run one task on one repository.")
    run.add_argument("--repo", required=True, help="repository folder (a git repo or a plain directory)")
    text = run.add_mutually_exclusive_group(required=True)
    text.add_argument("--task", help="the task text")
    text.add_argument("--task-file", help="a file holding the task text")
    run.add_argument("--id", default="task", help="task id (default: task)")
    run.add_argument("--ref", default=None, help="git ref to check out")
    run.add_argument("--acceptance", default=None, help="held-out acceptance tests folder (outside the repo)")
    run.add_argument("--script", default=None, help="script file, for scripted models")
    run.add_argument("--batch-id", default="single", help="name of this run in the store (default: single)")
    common(run)

    validate = sub.add_parser(
        "validate", help="gold-validate a manifest's SWE-bench instances before a paid batch",
        description="Run every SWE-bench instance of a manifest through the real pipeline with its own gold patch "
        "(the gold roster: no hosted model, no key): environment build, baseline, acceptance. Exits 1 naming every "
        "broken task.",
    )  # fmt: skip
    validate.add_argument("manifest", help="manifest YAML with 'instances: file.jsonl'")
    validate.add_argument("--store", default=DEFAULT_STORE, help="artifact store (default: .quorum)")
    validate.add_argument("--cache-dir", default=None, help="where Prefect persists cached results")
    validate.add_argument("--parallel", type=int, default=2, help="tasks run at once (default: 2)")
    validate.add_argument("--batch-id", default=None, help="name in the store (default: validate-<manifest batch>)")
    validate.add_argument("--verbose", action="store_true", help="show Prefect's own logs")

    check = sub.add_parser("check-roster", help="validate a roster: models, independence, API keys")
    check.add_argument("roster")

    add_apply_reply_parser(sub)
    experiments.add_commands(sub, DEFAULT_STORE)  # review, compare, review-eval (quorum/cli/experiments.py)
    from quorum.cli import context

    context.add_arguments(sub.add_parser(
        "context", help="what a model would see for a task: ranked files and code regions (no model call)",
        description="Rank a repository's files and code regions for a task and assemble the context within a "
        "token budget: the deterministic part of localization (no model call).",
    ))  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "apply-reply":  # no Prefect, no models: the applier alone (exit 0/1/2)
        return run_apply_reply(args)
    if args.command == "context":  # deterministic and quick: no Prefect, no litellm
        from quorum.cli import context

        try:
            return context.run(args)
        except BrokenPipeError:  # `quorum context ... | head`
            sys.stderr.close()
            return EXIT_OK
    if args.command != "check-roster":
        _configure_prefect(args)  # before anything imports prefect: its settings are read at import
    try:
        if args.command == "check-roster":
            return _check_roster(args.roster)
        if args.command in experiments.COMMANDS:
            return experiments.run(args)
        if args.command == "validate":
            return _validate(args)
        return _run(args)
    except InputError as exc:
        print(f"quorum: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("quorum: interrupted", file=sys.stderr)
        return EXIT_BROKEN


def _check_roster(name: str) -> int:
    roster = _load_roster(name)
    print(f"roster {roster.name}: ok ({', '.join(m.model for m in roster.all_models())})")
    return EXIT_OK


def _load_roster(name: str):
    """A roster by name, file or `block:<name>`, with its models and API keys checked (the same check a run makes)."""
    from quorum.blocks.refs import resolve_roster
    from quorum.llm.client import check_roster

    try:
        roster = resolve_roster(name)
        check_roster(roster)
    except ValueError as exc:  # RosterError and BlockRefError included
        raise InputError(str(exc)) from exc
    return roster


def _load_inputs(args: argparse.Namespace):
    """Everything validated before Prefect starts: manifest, roster, keys, store, policy."""
    from quorum.domain.manifest import ManifestError
    from quorum.inputs.manifests import load_manifest
    from quorum.blocks.refs import open_store_ref
    from quorum.domain.policy import Policy

    try:
        if args.command == "batch":
            manifest = load_manifest(args.manifest)
        else:
            manifest = _single_manifest(args)
    except ManifestError as exc:
        raise InputError(str(exc)) from exc
    roster = _load_roster(args.roster or manifest.roster or "default")
    if roster.simulated and any(not spec.script for spec in manifest.tasks):
        missing = ", ".join(spec.id for spec in manifest.tasks if not spec.script)
        raise InputError(f"roster {roster.name!r} has scripted models but task(s) {missing} have no script")
    try:
        open_store_ref(args.store)
    except ValueError as exc:  # BlockRefError included: a malformed or missing `block:` store
        raise InputError(str(exc)) from exc
    if args.max_rounds < 1:
        raise InputError("--max-rounds must be at least 1")
    if getattr(args, "parallel", 1) < 1:
        raise InputError("--parallel must be at least 1")
    if args.task_budget is not None and args.task_budget <= 0:
        raise InputError("--task-budget must be a positive amount of USD")
    if getattr(args, "batch_budget", None) is not None and args.batch_budget <= 0:
        raise InputError("--batch-budget must be a positive amount of USD")
    if getattr(args, "fan_out", None) and "/" not in args.fan_out:
        raise InputError("--fan-out takes a deployment name as <flow name>/<deployment name>")
    if getattr(args, "shard_size", None) is not None:
        from quorum.domain.shards import MAX_SHARD_TASKS

        if not args.fan_out:
            raise InputError("--shard-size needs --fan-out")
        if not 1 <= args.shard_size <= MAX_SHARD_TASKS:
            raise InputError(f"--shard-size must be between 1 and {MAX_SHARD_TASKS}")
    policy = Policy(max_rounds=args.max_rounds, task_budget_usd=args.task_budget)
    return manifest, roster, policy


def _single_manifest(args: argparse.Namespace):
    from quorum.inputs.manifests import parse_manifest

    entry = {"id": args.id, "repo": str(Path(args.repo).resolve())}
    if args.task:
        entry["task"] = args.task
    else:
        entry["task_file"] = str(Path(args.task_file).resolve())
    for key in ("ref", "acceptance", "script"):
        value = getattr(args, key)
        if value:
            entry[key] = value if key == "ref" else str(Path(value).resolve())
    return parse_manifest(
        {"batch": args.batch_id, "tasks": [entry]}, base=Path.cwd(), label="quorum run", source="command line"
    )


def _configure_prefect(args: argparse.Namespace) -> None:
    """Defaults that matter on a machine with no network and a slow first server start."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if not args.verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    cache_dir = args.cache_dir
    if cache_dir is not None:  # the pipeline's LLM stages persist there too (quorum.prefect_api.result_cache)
        os.environ.setdefault("QUORUM_CACHE", str(Path(cache_dir).resolve()))
    else:
        is_folder = "://" not in args.store and not args.store.startswith("block:")
        cache_dir = str(Path(args.store if is_folder else DEFAULT_STORE) / "cache")
    os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(Path(cache_dir).resolve()))


def _dry_run(manifest, roster, policy, store: str) -> int:
    from quorum.cli.display import print_estimate
    from quorum.domain.estimate import estimate_batch, estimate_task
    from quorum.llm.pricing import litellm_price
    from quorum.settings import settings
    from quorum.stages.sizes import estimated_prompt_sizes
    from quorum.workspace.workspace import prepare_workspace, remove_workspace

    estimates = []
    index_cache = settings().index_cache_dir(store)
    with tempfile.TemporaryDirectory(prefix="quorum-estimate-") as tmp:
        for spec in manifest.tasks:
            workspace = prepare_workspace(Path(spec.repo), Path(tmp), ref=spec.ref)
            try:  # each stage's context as the pipeline builds it, within each model's budget
                sizes = estimated_prompt_sizes(spec.task, workspace.path, index_cache, roster)
            finally:
                remove_workspace(workspace)
            estimates.append(estimate_task(spec.id, sizes, roster, policy.max_rounds, litellm_price))
    print_estimate(estimate_batch(estimates, roster, policy.max_rounds), simulated=roster.simulated)
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    manifest, roster, policy = _load_inputs(args)
    if getattr(args, "dry_run", False):
        return _dry_run(manifest, roster, policy, args.store)
    store_url = args.store if "://" in args.store or args.store.startswith("block:") else str(Path(args.store).resolve())

    from quorum.cli.display import BatchDisplay

    display = BatchDisplay([spec.id for spec in manifest.tasks], simulated=roster.simulated)
    display.banner(manifest, roster, store_url)
    started = time.time()
    try:
        with display:
            from quorum.flows.batch import batch_pipeline

            report = batch_pipeline(
                manifest, roster, store_url, policy,
                max_parallel=getattr(args, "parallel", 1), batch_id=getattr(args, "batch_id", None) or manifest.batch,
                batch_budget_usd=getattr(args, "batch_budget", None), fan_out_deployment=getattr(args, "fan_out", None),
                shard_size=getattr(args, "shard_size", None), resume=not getattr(args, "no_resume", False),
                progress=display.on_event,
            )  # fmt: skip
    except Exception as exc:
        print(f"quorum: error: the run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BROKEN
    display.summary(report, wall_s=time.time() - started, rows=_report_rows(store_url, report))
    resolved = sum(report.counts.get(status, 0) for status in ("resolved", "approved_unverified"))
    return EXIT_OK if resolved == report.tasks else EXIT_UNRESOLVED


def _report_rows(store_url: str, report):
    """Every row for a small batch's table; for a large one the summary's rows that need a person."""
    from quorum.cli.display import MAX_TABLE_ROWS

    if report.tasks > MAX_TABLE_ROWS:
        return report.needs_human
    from quorum.blocks.refs import open_store_ref
    from quorum.store.batches import read_rows

    try:
        return list(read_rows(open_store_ref(store_url), report.rows))
    except Exception:  # noqa: BLE001 - the table is a courtesy; the report is in the store either way
        return report.needs_human


def _validate(args: argparse.Namespace) -> int:
    """`quorum validate MANIFEST`: every instance replayed with its gold patch; a table; exit 1 naming broken tasks."""
    import hashlib

    from quorum.domain.artifacts import slug
    from quorum.domain.manifest import ManifestError
    from quorum.domain.policy import Policy
    from quorum.domain.validation import render_validation, validation_row
    from quorum.environments.swebench import load_instances
    from quorum.inputs.manifests import load_manifest
    from quorum.llm.gold import gold_file

    try:
        manifest = load_manifest(args.manifest)
    except ManifestError as exc:
        raise InputError(str(exc)) from exc
    if not manifest.instances:
        raise InputError(f"{args.manifest}: validate needs 'instances: file.jsonl' (SWE-bench fields with a gold patch)")
    if args.parallel < 1:
        raise InputError("--parallel must be at least 1")
    patches = {inst.instance_id: inst.patch for inst in load_instances(manifest.instances)}
    specs = [spec for spec in manifest.tasks if spec.instance is not None]
    missing = [spec.id for spec in specs if not patches.get(spec.id, "").strip()]
    if missing:
        raise InputError(f"instance(s) without a gold patch: {', '.join(missing)}")
    batch_id = args.batch_id or f"validate-{manifest.batch}"
    store_url = args.store if "://" in args.store or args.store.startswith("block:") else str(Path(args.store).resolve())
    gold_dir = Path(tempfile.mkdtemp(prefix="quorum-gold-"))
    try:
        gold = []
        for spec in specs:
            path = gold_file(gold_dir, spec.id, patches[spec.id])
            gold.append(spec.model_copy(update={"script": str(path),
                                                "script_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}))
        manifest = manifest.model_copy(update={"tasks": gold})
        roster = _load_roster("gold")

        from quorum.cli.display import BatchDisplay

        display = BatchDisplay([spec.id for spec in gold], simulated=True)
        display.banner(manifest, roster, store_url)
        try:
            with display:
                from quorum.flows.batch import batch_pipeline

                report = batch_pipeline(
                    manifest, roster, store_url, Policy(max_rounds=1), max_parallel=args.parallel, batch_id=batch_id,
                    resume=False, progress=display.on_event,
                )  # fmt: skip
        except Exception as exc:
            print(f"quorum: error: the run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_BROKEN
    finally:
        import shutil

        shutil.rmtree(gold_dir, ignore_errors=True)
    from quorum.blocks.refs import open_store_ref
    from quorum.domain.models import TaskResult
    from quorum.store.batches import read_rows

    store = open_store_ref(store_url)
    keys = [row.result for row in read_rows(store, report.rows) if row.result]
    results = [TaskResult.model_validate_json(data) for _, data in store.get_many(keys) if data is not None]
    rows = [validation_row(result) for result in results]
    text = render_validation(rows)
    store.put_text(f"runs/{slug(batch_id)}/validation.md", text)
    store.put_text(f"runs/{slug(batch_id)}/validation.json",
                   json.dumps([row.model_dump() for row in rows], indent=2) + "\n")  # fmt: skip
    print(text)
    broken = [row.task_id for row in rows if not row.ok]
    if broken:
        print(f"quorum validate: {len(broken)} broken task(s): {', '.join(broken)}", file=sys.stderr)
        return EXIT_UNRESOLVED
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
