"""`quorum context --repo PATH (--task TEXT | --task-file FILE) [--budget TOKENS] [--json]`

The deterministic part of localization, for people to see what a model will be given (no model
call, no Prefect, no litellm): index the repository (cached in the shared index cache), rank its
files and regions for the task, and assemble the code context within the budget.

With `--json` it prints one object, a stable interface:
`{"files": [{"path", "score", "reasons"}], "context": [{"path", "start_line", "end_line", "tokens"}], "tokens": N}`
(`files` the whole ranking, at least its top 20; `context` 1-based inclusive line spans of the files as
they are on disk; tokens estimated as characters / 4: the pipeline counts with each stage model's own
tokenizer, see docs/context.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--repo", required=True, help="repository folder (a git work tree or a plain directory)")
    text = parser.add_mutually_exclusive_group(required=True)
    text.add_argument("--task", help="the task text")
    text.add_argument("--task-file", help="a file holding the task text")
    parser.add_argument("--budget", type=int, default=16_000, help="token budget of the code context (default: 16000)")
    parser.add_argument("--json", action="store_true", help='print {"files", "context", "tokens"} as JSON')
    parser.add_argument(
        "--cache-dir", default=None, help="index cache (default: $QUORUM_INDEX_CACHE, else .quorum/index)"
    )
    parser.add_argument("--show", action="store_true", help="also print the planner's view: repository map and code")
    return parser


def _error(message: str) -> int:
    print(f"quorum context: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run(args: argparse.Namespace) -> int:
    repo = Path(args.repo)
    if not repo.is_dir():
        return _error(f"not a directory: {repo}")
    if args.task_file:
        try:
            task = Path(args.task_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return _error(f"cannot read the task file: {exc}")
    else:
        task = args.task
    if not task or not task.strip():
        return _error("the task text is empty")
    if args.budget <= 0:
        return _error("--budget must be a positive number of tokens")

    from quorum.context.api import context_json, default_cache_dir
    from quorum.context.assemble import planner_context
    from quorum.context.index import build_index
    from quorum.context.rank import rank

    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    if args.json:
        print(json.dumps(context_json(repo, task, args.budget, cache_dir=cache), indent=1))
        return EXIT_OK
    started = time.perf_counter()
    index = build_index(repo, cache)
    ranking = rank(index, task)
    stage = planner_context(index, ranking, args.budget)
    elapsed = time.perf_counter() - started
    state = "warm" if index.stats.get("warm") else "cold"
    print(
        f"{len(index.files)} files, {len(index.indexed)} indexed; index {state} "
        f"{index.stats.get('seconds', 0):.2f} s ({cache}); total {elapsed:.2f} s"
    )
    print("\nfiles:")
    for number, ranked in enumerate(ranking.files[:20], 1):
        print(f"{number:3} {ranked.score:7.3f}  {ranked.path}")
        for reason in ranked.reasons[:3]:
            print(f"              - {reason}")
    print(f"\ncontext ({sum(r.tokens for r in stage.regions)} tokens of {args.budget}, characters / 4):")
    for region in stage.regions:
        why = "; ".join(region.reasons)[:90]
        print(f"  {region.path}:{region.start_line}-{region.end_line}  {region.tokens} tok  {why}")
    if args.show:
        print("\n" + stage.text)
    return EXIT_OK
