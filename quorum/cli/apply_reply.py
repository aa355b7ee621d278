"""`quorum apply-reply --repo DIR --reply FILE [--dry-run] [--json]`: debug a model reply by hand.

Applies every edit of a reply (unified diff, SEARCH/REPLACE blocks, whole files) to a directory,
or none of them, with the pipeline's own applier (`quorum.edits.apply_reply`). Exit codes: 0
applied (with --dry-run: would apply), 1 refused (the reason is printed), 2 bad input (no such
repository directory, unreadable reply file, bad arguments).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quorum.edits import ApplyResult, apply_reply

EXIT_APPLIED, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2


def add_apply_reply_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "apply-reply",
        help="apply the edits in a model reply to a repository (all or nothing)",
        description="Apply every edit in a model reply (unified diff, SEARCH/REPLACE blocks, whole files) "
        "to a repository, or none of them, with the pipeline's own applier.",
        epilog="Exit codes: 0 applied (or would apply, with --dry-run), 1 refused, 2 bad input.",
    )
    parser.add_argument("--repo", required=True, help="the repository folder (a git checkout or a plain directory)")
    parser.add_argument("--reply", required=True, help="file holding the model's reply ('-' for standard input)")
    parser.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def run_apply_reply(args: argparse.Namespace) -> int:
    repo = Path(args.repo)
    if not repo.is_dir():
        print(f"quorum: error: repository {repo} is not a directory", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if args.reply == "-":
            reply = sys.stdin.buffer.read().decode("utf-8")
        else:
            reply = Path(args.reply).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"quorum: error: cannot read the reply {args.reply}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    result = apply_reply(repo, reply, dry_run=args.dry_run)
    print(result.model_dump_json(indent=2) if args.json else render(result))
    return EXIT_APPLIED if result.applied else EXIT_REFUSED


def render(result: ApplyResult) -> str:
    """The result for a person: what was applied and how each edit was placed, or every reason to refuse."""
    lines = []
    if result.applied:
        verb = "would apply" if result.dry_run else "applied"
        lines.append(f"{verb}: {len(result.edits)} edit(s) to {len(result.files)} file(s) ({result.format})")
        for outcome in result.edits:
            where = f" at line {outcome.start}" if outcome.start else ""
            extra = f", placed by {outcome.placed_by}" if outcome.placed_by != "content" else ""
            lines.append(f"  {outcome.label}: {outcome.match.value}{where}{extra}")
    else:
        lines.append("refused: nothing was changed")
        lines.extend(f"  {problem}" for problem in (result.problems or [result.reason]))
    lines.extend(f"  note: {note}" for note in result.notes)
    return "\n".join(lines)
