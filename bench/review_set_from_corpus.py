"""Build a labelled review set from the real bug-fix corpus, at run time, outside the project.

    .venv/bin/python bench/review_set_from_corpus.py --corpus /work/corpus --out /tmp/quorum-corpus-set
    .venv/bin/quorum review-eval /tmp/quorum-corpus-set/set.yaml --roster scripted \\
        --roster examples/rosters/premium-reviewers.yaml --tools semgrep,bandit

The corpus is laid out by ../shared/corpus/materialize.py (instances.jsonl with `snapshot`, the tree
at the base commit, and `patch`, the gold fix to non-test files). For every instance this writes a
small git repository, OUT/repos/<instance>, with three commits:

    C0  the snapshot (the bug is there)
    C1  C0 + the gold fix                 -> clean change     <instance>.fix     = C0..C1, no defects
    C2  C1 with the fix reversed (= C0)   -> defective change <instance>.revert  = C1..C2

The reversed fix re-introduces a real bug. Its labelled defect is one per file the fix touched,
with the lines the reversed change touches in the file after it (quorum.domain.labels.touched_lines:
added lines, and the two lines around a pure removal).

Reviewers: with real models (a roster of real reviewers and API keys) nothing else is needed. For the
offline run, this script also writes scripts/<change>.yaml with replies for four *simulated*
reviewers, the models of the `scripted` roster and of examples/rosters/premium-reviewers.yaml. Their
replies are computed from the diff text alone by fixed heuristics (below): they never see the labels,
so their scores are real scores of those heuristics, not of the models they are priced as. What the
offline run shows is that the harness matches, counts and prices exactly; the figures are simulated.

  scripted/gpt-5-mini         guard watcher: a hunk that removes more guard lines (if/raise/return/
                              is None/isinstance/except/and/or/not) than it adds -> high, at its first
                              touched line
  scripted/gemini-2.5-flash   condition reader: a hunk whose changed lines hold a condition -> high at
                              the hunk header's first line (up to 3 context lines early); others -> medium
  scripted/claude-sonnet-4-5  deletion sceptic: a hunk that removes more code lines than it adds -> high,
                              two lines after its last touched line; others -> low
  scripted/gpt-5              careful: a hunk that removes a raise/return/if/is None/isinstance line and
                              adds none of them -> high at its first touched line

Nothing this script writes may be committed (it is built from the corpus): --out must be outside the
project checkout.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quorum.domain.labels import touched_lines  # noqa: E402

GUARD = re.compile(r"\b(if|elif|raise|return|except|assert|isinstance|is None|is not None|and|or|not)\b")
CAREFUL = re.compile(r"\b(raise|return|if|isinstance)\b|\bis (not )?None\b")
CONDITION = re.compile(r"^\s*(if|elif|while)\b|\b(and|or|not)\b")
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
IDENTITY = ["-c", "user.name=quorum-bench", "-c", "user.email=bench@localhost", "-c", "commit.gpgSign=false"]


@dataclass
class Hunk:
    file: str
    new_start: int
    removed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    touched: list[int] = field(default_factory=list)


def hunks_of(diff: str) -> list[Hunk]:
    """Per hunk: the file, the header's new start, the removed and added lines, and its touched new lines."""
    hunks: list[Hunk] = []
    path = None
    for line in diff.splitlines():
        if line.startswith("+++ "):
            name = line[4:].strip()
            path = None if name == "/dev/null" else name.removeprefix("b/")
            continue
        match = HUNK.match(line)
        if match and path:
            hunks.append(Hunk(file=path, new_start=int(match.group(3))))
            continue
        if not hunks or line.startswith(("diff --git", "--- ", "index ")):
            continue
        if line.startswith("+"):
            hunks[-1].added.append(line[1:])
        elif line.startswith("-"):
            hunks[-1].removed.append(line[1:])
    for hunk in hunks:  # touched lines, hunk by hunk, with the same rule as the labels
        single = _hunk_text(diff, hunk)
        hunk.touched = touched_lines(single).get(hunk.file, [hunk.new_start])
    return hunks


def _hunk_text(diff: str, hunk: Hunk) -> str:
    """The one-hunk diff of `hunk` (re-found by position), for touched_lines."""
    lines = diff.splitlines()
    out, current, keep = [], None, False
    for line in lines:
        if line.startswith("+++ "):
            current = line[4:].strip().removeprefix("b/")
            continue
        match = HUNK.match(line)
        if match:
            keep = current == hunk.file and int(match.group(3)) == hunk.new_start
            if keep:
                out = [f"--- a/{hunk.file}", f"+++ b/{hunk.file}", line]
            continue
        if keep:
            if line.startswith(("diff --git", "--- ")):
                break
            out.append(line)
    return "\n".join(out) + "\n"


def _code(lines: list[str]) -> list[str]:
    return [line for line in lines if line.strip() and not line.strip().startswith("#")]


def finding(severity: str, file: str, line: int, category: str, message: str) -> dict:
    return {"severity": severity, "file": file, "line": max(1, line), "category": category, "message": message}


def persona_reviews(diff: str) -> dict[str, dict]:
    """The four simulated reviewers' replies to one change (see the module docstring); labels never read."""
    hunks = [h for h in hunks_of(diff) if h.file.endswith(".py")]
    by_model: dict[str, list[dict]] = {m: [] for m in
                                       ("scripted/gpt-5-mini", "scripted/gemini-2.5-flash", "scripted/claude-sonnet-4-5", "scripted/gpt-5")}  # fmt: skip
    for h in hunks:
        removed_guards = [line for line in h.removed if GUARD.search(line)]
        added_guards = [line for line in h.added if GUARD.search(line)]
        first, last = h.touched[0], h.touched[-1]
        if len(removed_guards) > len(added_guards):
            by_model["scripted/gpt-5-mini"].append(finding(
                "high", h.file, first, "removed-check",
                f"This change removes a check ({removed_guards[0].strip()[:80]!r}) without replacing it."))  # fmt: skip
        if any(CONDITION.search(line) for line in h.removed + h.added):
            by_model["scripted/gemini-2.5-flash"].append(finding(
                "high", h.file, h.new_start, "condition-change", "A condition changes here; make sure every case is still handled."))  # fmt: skip
        else:
            by_model["scripted/gemini-2.5-flash"].append(finding(
                "medium", h.file, first, "review-note", "Consider a test for this change."))  # fmt: skip
        if len(_code(h.removed)) > len(_code(h.added)):
            by_model["scripted/claude-sonnet-4-5"].append(finding(
                "high", h.file, last + 2, "removed-behaviour", "Code is removed here; the behaviour it implemented may be lost."))  # fmt: skip
        else:
            by_model["scripted/claude-sonnet-4-5"].append(finding(
                "low", h.file, first, "style", "Minor: consider a comment explaining this change."))  # fmt: skip
        careful_removed = [line for line in h.removed if CAREFUL.search(line)]
        if careful_removed and not any(CAREFUL.search(line) for line in h.added):
            by_model["scripted/gpt-5"].append(finding(
                "high", h.file, first, "lost-guard",
                f"The change drops {careful_removed[0].strip()[:80]!r} and nothing takes its place."))  # fmt: skip
    replies = {}
    for model, findings in by_model.items():
        blocking = any(f["severity"] in ("high", "critical") for f in findings)
        replies[model] = {1: {"verdict": "request_changes" if blocking else "approve",
                              "summary": f"{len(findings)} finding(s) (simulated reviewer)", "findings": findings}}  # fmt: skip
    return replies


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    result = subprocess.run(["git", *IDENTITY, *args], cwd=repo, input=input, capture_output=True, check=True)
    return result.stdout.decode().strip()


def build_repo(snapshot: Path, patch: str, dest: Path) -> tuple[str, str, str]:
    """C0 snapshot, C1 fixed, C2 fix reversed; returns their commits."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(snapshot, dest, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    git(dest, "init", "-q", "--initial-branch=main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "--no-verify", "-m", "snapshot (base commit)")
    c0 = git(dest, "rev-parse", "HEAD")
    git(dest, "apply", "--whitespace=nowarn", "-", input=patch.encode())
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "--no-verify", "-m", "the gold fix")
    c1 = git(dest, "rev-parse", "HEAD")
    git(dest, "apply", "-R", "--whitespace=nowarn", "-", input=patch.encode())
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "--no-verify", "-m", "the fix reversed")
    return c0, c1, git(dest, "rev-parse", "HEAD")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="/work/corpus", help="folder with instances.jsonl (materialize.py's --out)")
    parser.add_argument("--out", default="/tmp/quorum-corpus-set", help="where to build the set (outside the project)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N instances (0: all)")
    parser.add_argument("--window", type=int, default=3, help="the set's matching window in lines (default 3)")
    args = parser.parse_args()

    corpus, out = Path(args.corpus).resolve(), Path(args.out).resolve()
    if out == ROOT or ROOT in out.parents:
        parser.error(f"--out {out} is inside the project: nothing built from the corpus may be committed")
    rows = [json.loads(line) for line in (corpus / "instances.jsonl").read_text().splitlines() if line.strip()]
    if args.limit:
        rows = rows[: args.limit]
    (out / "scripts").mkdir(parents=True, exist_ok=True)
    changes, defects_total, skipped = [], 0, []
    for row in rows:
        iid = row["instance_id"]
        snapshot = corpus / row["snapshot"]
        try:
            c0, c1, c2 = build_repo(snapshot, row["patch"], out / "repos" / iid)
        except subprocess.CalledProcessError as exc:
            skipped.append(f"{iid}: {exc.stderr.decode(errors='replace').strip()[:200]}")
            continue
        repo = out / "repos" / iid
        files = ", ".join(row.get("gold_files") or [])
        for kind, base, head in (("fix", c0, c1), ("revert", c1, c2)):
            cid = f"{iid}.{kind}"
            diff = subprocess.run(["git", "diff", "--no-color", "--no-renames", base, head], cwd=repo,
                                  capture_output=True, check=True).stdout.decode()  # fmt: skip
            defects = []
            if kind == "revert":
                defects = [{"file": path, "lines": lines, "note": "the reversed fix re-introduces the bug here"}
                           for path, lines in sorted(touched_lines(diff).items())]  # fmt: skip
                defects_total += len(defects)
            script = {"review": persona_reviews(diff)}
            (out / "scripts" / f"{cid}.yaml").write_text(
                "# Simulated reviewers (heuristics over the diff; see bench/review_set_from_corpus.py). Built from\n"
                "# the corpus at run time: never commit.\n" + yaml.safe_dump(script, sort_keys=False, width=120))
            changes.append({"id": cid, "repo": f"repos/{iid}", "range": f"{base}..{head}",
                            "description": f"A proposed change to {files}.", "script": f"scripts/{cid}.yaml",
                            "defects": defects})  # fmt: skip
    name = f"corpus-{len(rows)}"
    (out / "set.yaml").write_text(
        "# Labelled review set built from the bug-fix corpus by bench/review_set_from_corpus.py. Never commit.\n"
        + yaml.safe_dump({"set": name, "window": args.window, "changes": changes}, sort_keys=False, width=120))
    clean = sum(1 for c in changes if not c["defects"])
    print(f"review set {name}: {len(changes)} changes ({len(changes) - clean} defective with {defects_total} "
          f"labelled defects, {clean} clean) in {out / 'set.yaml'}")  # fmt: skip
    for line in skipped:
        print(f"  skipped {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
