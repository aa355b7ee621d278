"""Benchmark: the edit replies real cheap models write, applied by quorum and by git/patch (issue 14).

Builds a corpus of real changes at run time: the gold patches of the task corpus (--corpus, its
instances.jsonl: tree at the base commit in `snapshot`, gold fix in `patch`; laid out with
../shared/corpus/materialize.py) and recent non-merge commits that change .py files in git mirrors
(--mirror, bare git dirs brought with the search tool's `fetch`; the parent tree and the commit's
tree). For each change it writes the gold change as a model reply in the ways models get it wrong
(the intent stays unambiguous), plus negative controls that must be refused, and applies every reply
with

- quorum: `quorum.edits.apply_reply` (every fenced block, any format, located by content);
- `git apply` and `git apply --recount --ignore-whitespace -C1`, and GNU `patch --fuzz=3`, each fed
  the diff that the git-based applier before issue 14 took from a reply (`first_diff`: the first
  ```diff/```patch block, else from the first `diff --git` or `---`/`+++` line to the end of its
  fenced block).

Each run starts from the files the change touches, at the base commit, in a fresh directory.
"correct": the directory afterwards equals the gold result exactly (every file, bytes);
"wrong": the tool reported success but the tree differs, or it failed and left files changed;
"refused": the tool failed and nothing changed. A negative control is never "correct": applying it
is "wrong". Nothing from the corpus or the mirrors is stored: everything is read at run time, in a
temporary directory (--dump, for debugging, must point outside the repository).

    .venv/bin/python bench/edits.py [--corpus DIR] [--mirror DIR ...] [--commits N] [--tools quorum]

Exit 0: quorum met the bar (0 wrong in every row, every negative control refused, >= 95 % correct
on every correct-intent row but 0-context hunks); 1: it did not; 2: a corpus or mirror is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quorum.edits import WHOLE_FILE_MAX_LINES, apply_reply  # noqa: E402

DEFAULT_CORPUS = Path("/work/corpus")
DEFAULT_MIRRORS = [Path("/work/.mirror/pallets+click/repo"), Path("/work/.mirror/psf+requests/repo")]
MAX_FILES = 12
MAX_FILE_BYTES = 400_000
TOOLS = ("quorum", "git apply", "git apply --recount --ignore-whitespace -C1", "patch --fuzz=3")
GIT_ENV = {**os.environ, "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


@dataclass
class Case:
    id: str
    base: dict[str, bytes]  # touched files that exist before
    result: dict[str, bytes]  # touched files that exist after
    diffs: dict[int, str] = field(default_factory=dict)  # context lines -> git diff


# ------------------------------------------------------------------------------------------- corpus


def _git(args: list[str], *, cwd: Path | None = None, git_dir: Path | None = None, input: bytes | None = None,
         check: bool = True) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    command = ["git"] + ([f"--git-dir={git_dir}"] if git_dir else []) + args
    return subprocess.run(command, cwd=cwd, input=input, capture_output=True, check=check, env=GIT_ENV, timeout=120)


def _touched(patch: str) -> list[str]:
    names = []
    for line in patch.splitlines():
        match = re.match(r"^diff --git a/(\S+) b/(\S+)$", line)
        if match:
            names.extend([match.group(1), match.group(2)])
    return list(dict.fromkeys(names))


class MissingInput(Exception):
    """A corpus or mirror the bench was pointed at is not there (exit 2, with how to get it)."""


def check_inputs(corpus: Path | None, mirrors: list[Path]) -> None:
    """Every source must exist: a bench that quietly skips one measures something else."""
    problems = []
    if corpus is not None and not (corpus / "instances.jsonl").is_file():
        problems.append(
            f"no corpus at {corpus} (expected {corpus / 'instances.jsonl'}): lay it out with "
            "python3 ../shared/corpus/materialize.py --instances ../shared/corpus/instances.jsonl "
            "--mirror pallets/click=<git dir> --mirror psf/requests=<git dir> --out DIR, then pass --corpus DIR "
            "(or --no-corpus)"
        )
    for mirror in mirrors:
        if not (mirror / "HEAD").is_file() and not (mirror / ".git").exists():
            owner_name = mirror.parent.name.replace("+", "/") if "+" in mirror.parent.name else "<owner>/<name>"
            problems.append(
                f"no git mirror at {mirror}: bring github:{owner_name} with the search tool's fetch (it lands "
                "under /work/.mirror/<owner>+<name>/repo), then pass --mirror DIR (or --no-mirrors)"
            )
    if not problems:
        return
    raise MissingInput("\n".join(problems))


def corpus_cases(corpus: Path, work: Path) -> list[Case]:
    cases = []
    path = corpus / "instances.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        inst = json.loads(line)
        snapshot = corpus / inst["snapshot"]
        names = _touched(inst["patch"])
        base = {n: (snapshot / n).read_bytes() for n in names if (snapshot / n).is_file()}
        tree = work / "gold"
        _write_tree(tree, base)
        applied = subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], cwd=tree, input=inst["patch"].encode(),
                                 capture_output=True, env=GIT_ENV)  # fmt: skip
        if applied.returncode != 0:
            print(f"note: gold patch of {inst['instance_id']} does not apply; skipped", file=sys.stderr)
            continue
        result = _read_tree(tree)
        cases.append(Case(id=inst["instance_id"], base=base, result=result))
    return cases


def mirror_cases(mirror: Path, count: int, skip: set[str]) -> list[Case]:
    cases: list[Case] = []
    log = _git(["log", "--no-merges", "--format=%H", "-n", str(count * 6), "--", "*.py"], git_dir=mirror)
    name = mirror.parent.name.replace("+", "/")
    for sha in log.stdout.decode().split():
        if len(cases) >= count:
            break
        if any(sha.startswith(s) or s.startswith(sha[:8]) for s in skip):
            continue
        status = _git(["diff-tree", "--no-commit-id", "-r", "--no-renames", "--name-status", "-z", sha], git_dir=mirror)
        parts = status.stdout.decode("utf-8", "surrogateescape").split("\0")
        entries = [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2)]
        if not entries or len(entries) > MAX_FILES or any(s[0] not in "AMD" for s, _ in entries):
            continue
        base: dict[str, bytes] = {}
        result: dict[str, bytes] = {}
        ok = True
        for kind, path in entries:
            if kind in "MD":
                base[path] = _git(["show", f"{sha}^:{path}"], git_dir=mirror).stdout
            if kind in "AM":
                result[path] = _git(["show", f"{sha}:{path}"], git_dir=mirror).stdout
        for data in [*base.values(), *result.values()]:
            if b"\0" in data or len(data) > MAX_FILE_BYTES:
                ok = False
        if ok:
            cases.append(Case(id=f"{name}@{sha[:8]}", base=base, result=result))
    return cases


def make_diffs(case: Case, work: Path) -> None:
    repo = work / "diffs"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    _git(["init", "-q"], cwd=repo)
    _write_tree(repo, case.base, keep_git=True)
    _git(["add", "-A"], cwd=repo)
    _git(["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "--allow-empty", "-m", "base"], cwd=repo)
    _write_tree(repo, case.result, keep_git=True)
    _git(["add", "-A"], cwd=repo)
    _git(["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-q", "--allow-empty", "-m", "result"], cwd=repo)
    for context in (0, 1, 3, 8):
        out = _git(["diff", f"-U{context}", "--no-renames", "--no-color", "--full-index", "HEAD~1", "HEAD"], cwd=repo)
        case.diffs[context] = out.stdout.decode("utf-8", "surrogateescape")


def _write_tree(root: Path, files: dict[str, bytes], *, keep_git: bool = False) -> None:
    if root.exists():
        for entry in root.iterdir():
            if keep_git and entry.name == ".git":
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _read_tree(root: Path) -> dict[str, bytes]:
    out = {}
    for directory, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in names:
            full = Path(directory, name)
            out[full.relative_to(root).as_posix()] = full.read_bytes()
    return out


# ------------------------------------------------------------------------------------ diff structure


@dataclass
class FileSection:
    header: list[str]  # diff --git, index, mode lines, ---, +++
    hunks: list[list[str]]  # each: the @@ line then its body lines

    @property
    def path(self) -> str:
        for line in self.header:
            if line.startswith("+++ ") and line != "+++ /dev/null":
                return line[6:]
        for line in self.header:
            if line.startswith("--- ") and line != "--- /dev/null":
                return line[6:]
        return self.header[0].split(" b/", 1)[1]

    @property
    def is_new(self) -> bool:
        return "--- /dev/null" in self.header

    @property
    def is_deleted(self) -> bool:
        return "+++ /dev/null" in self.header

    def text(self) -> str:
        return "".join(line + "\n" for line in self.header + [l for h in self.hunks for l in h])


def sections(diff: str) -> list[FileSection]:
    out: list[FileSection] = []
    for line in diff.split("\n")[:-1] if diff.endswith("\n") else diff.split("\n"):
        if line.startswith("diff --git "):
            out.append(FileSection(header=[line], hunks=[]))
        elif line.startswith("@@"):
            out[-1].hunks.append([line])
        elif out[-1].hunks:
            out[-1].hunks[-1].append(line)
        else:
            out[-1].header.append(line)
    return out


def join(parts: list[FileSection]) -> str:
    return "".join(p.text() for p in parts)


def fence(body: str, lang: str = "diff") -> str:
    """A fence longer than any fence line inside the body (as a careful model writes it)."""
    longest = max((len(m) for m in re.findall(r"^ {0,3}(`{3,})", body, re.M)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{body}{ticks}\n"


def reply(body: str, lang: str = "diff") -> str:
    return f"Here is the change.\n\n{fence(body, lang)}\nThis implements the plan.\n"


_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")


def _rewrite_headers(diff: str, fn) -> str:
    parts = sections(diff)
    for part in parts:
        for hunk in part.hunks:
            match = _HEADER.match(hunk[0])
            assert match, hunk[0]
            a, b = int(match.group(1)), int(match.group(2) or 1)
            c, d = int(match.group(3)), int(match.group(4) or 1)
            hunk[0] = fn(a, b, c, d, match.group(5))
    return join(parts)


# ------------------------------------------------------------------------------------------ variants

ELISION_COMMENT = {".py": "# ... existing code ...", ".toml": "# ... existing code ...", ".cfg": "# ...",
                   ".yaml": "# ...", ".yml": "# ...", ".sh": "# ... existing code ...", ".js": "// ... existing code ..."}  # fmt: skip


def v_clean(case: Case, rng: random.Random):
    return reply(case.diffs[3])


def v_python_fence(case: Case, rng: random.Random):
    return reply(case.diffs[3], "python")


def v_bare_fence(case: Case, rng: random.Random):
    return reply(case.diffs[3], "")


def v_unfenced(case: Case, rng: random.Random):
    return "I made these changes:\n\n" + case.diffs[3]


def v_crlf(case: Case, rng: random.Random):
    if any(b"\r" in data for data in [*case.base.values(), *case.result.values()]):
        return None, "files hold CR characters"
    return reply(case.diffs[3]).replace("\n", "\r\n")


def v_wrong_starts(case: Case, rng: random.Random):
    def fn(a, b, c, d, tail):
        shift = rng.choice([-1, 1]) * rng.randint(3, 40)
        return f"@@ -{max(1, a + shift)},{b} +{max(1, c + shift)},{d} @@{tail}"

    return reply(_rewrite_headers(case.diffs[3], fn))


def v_wrong_counts(case: Case, rng: random.Random):
    def fn(a, b, c, d, tail):
        shift = rng.choice([-1, 1]) * rng.randint(3, 40)
        return f"@@ -{max(1, a + shift)},{max(0, b + rng.randint(-3, 4))} +{max(1, c + shift + 2)},{max(0, d + rng.randint(-3, 4))} @@{tail}"

    return reply(_rewrite_headers(case.diffs[3], fn))


def v_no_numbers(case: Case, rng: random.Random):
    return reply(_rewrite_headers(case.diffs[3], lambda a, b, c, d, tail: "@@ ... @@"))


def v_no_git_headers(case: Case, rng: random.Random):
    parts = sections(case.diffs[3])
    if any(not p.hunks for p in parts):
        return None, "an empty new file (needs a diff --git line)"
    for part in parts:
        part.header = [l for l in part.header if l.startswith(("--- ", "+++ "))]
    return reply(join(parts))


def v_no_prefixes(case: Case, rng: random.Random):
    parts = sections(case.diffs[3])
    for part in parts:
        header = []
        for line in part.header:
            if line.startswith("diff --git a/"):
                a, b = line[len("diff --git a/") :].split(" b/", 1)
                line = f"diff --git {a} {b}"
            elif line.startswith(("--- a/", "+++ b/")):
                line = line[:4] + line[6:]
            header.append(line)
        part.header = header
    return reply(join(parts))


def v_blank_stripped(case: Case, rng: random.Random):
    lines = case.diffs[3].split("\n")
    if " " not in lines:
        return None, "no blank context line"
    return reply("\n".join("" if l == " " else l for l in lines))


def v_indent_drift(case: Case, rng: random.Random):
    parts = sections(case.diffs[3])
    drifted = 0
    for part in parts:
        for hunk in part.hunks:
            context = [i for i, l in enumerate(hunk) if i and l.startswith(" ") and l.strip()]
            if len(context) < 2:
                continue
            for number, index in enumerate(context):
                if number % 2 == 0:
                    continue  # the first (and every other) context line stays exact
                text = hunk[index][1:]
                kind = rng.choice(["more", "less", "trailing", "tab"])
                if kind == "less" and text.startswith(" "):
                    text = text[1:]
                elif kind == "tab" and text.startswith("    "):
                    text = "\t" + text[4:]
                elif kind == "trailing":
                    text = text + "  "
                else:
                    text = "  " + text
                hunk[index] = " " + text
                drifted += 1
    if not drifted:
        return None, "no hunk with 2+ non-blank context lines"
    return reply(join(parts))


def v_hunk_dedent(case: Case, rng: random.Random):
    parts = sections(case.diffs[3])
    changed = 0
    for part in parts:
        if part.is_new or part.is_deleted:
            continue
        for hunk_number, hunk in enumerate(part.hunks):
            body = [l for l in hunk[1:] if l[:1] in " +-" and l[1:].strip()]
            if not body:
                continue
            common = min(len(l[1:]) - len(l[1:].lstrip(" ")) for l in body)
            if common == 0 or any(l[1:][:common].strip() for l in body):
                continue
            part.hunks[hunk_number] = [hunk[0]] + [
                (l[0] + l[1 + common :]) if l[:1] in " +-" and l[1:].strip() else l for l in hunk[1:]
            ]
            changed += 1
    if not changed:
        return None, "no hunk with common indentation"
    return reply(join(parts))


def v_elision(case: Case, rng: random.Random):
    parts = sections(case.diffs[8])
    elided = 0
    for part in parts:
        if part.is_new or part.is_deleted:
            continue
        marker = ELISION_COMMENT.get(Path(part.path).suffix, "...")
        for hunk_number, hunk in enumerate(part.hunks):
            out = [hunk[0]]
            body = hunk[1:]
            index = 0
            while index < len(body):
                if not body[index].startswith(" "):
                    out.append(body[index])
                    index += 1
                    continue
                end = index
                while end < len(body) and body[end].startswith(" "):
                    end += 1
                run = body[index:end]
                if len(run) >= 6:
                    keep_head, keep_tail = run[:2], run[-2:]
                    nxt = keep_tail[0][1:]
                    indent = nxt[: len(nxt) - len(nxt.lstrip())] if nxt.strip() else ""
                    out.extend(keep_head + [" " + indent + marker] + keep_tail)
                    elided += 1
                else:
                    out.extend(run)
                index = end
            part.hunks[hunk_number] = out
    if not elided:
        return None, "no context run long enough to elide"
    return reply(_rewrite_headers(join(parts), lambda a, b, c, d, tail: f"@@ -{a},{b} +{c},{d} @@{tail}"))


def v_context0(case: Case, rng: random.Random):
    return reply(case.diffs[0])


def v_context1(case: Case, rng: random.Random):
    return reply(case.diffs[1])


def v_two_blocks(case: Case, rng: random.Random):
    parts = sections(case.diffs[3])
    if len(parts) < 2:
        return None, "one file only"
    return "I changed several files.\n\n" + "\nAnd then:\n\n".join(fence(p.text()) for p in parts)


def _no_final_newline(case: Case) -> bool:
    return any(data and not data.endswith(b"\n") for data in [*case.base.values(), *case.result.values()])


def _search_replace(case: Case, *, path_inside: bool) -> tuple[str | None, str] | str:
    parts = sections(case.diffs[3])
    if any(p.is_deleted for p in parts):
        return None, "deletes a file"
    if _no_final_newline(case):
        return None, "a file without final newline"
    blocks = []
    for part in parts:
        lang = "python" if part.path.endswith(".py") else ""
        if not part.hunks:  # an empty new file: empty SEARCH, empty REPLACE
            body = "<<<<<<< SEARCH\n=======\n>>>>>>> REPLACE\n"
            blocks.append(fence(part.path + "\n" + body, "") if path_inside else part.path + "\n" + fence(body, lang))
        for hunk in part.hunks:
            search = [l[1:] for l in hunk[1:] if l[:1] in (" ", "-")]
            replace = [l[1:] for l in hunk[1:] if l[:1] in (" ", "+")]
            body = "<<<<<<< SEARCH\n" + "".join(l + "\n" for l in search) + "=======\n"
            body += "".join(l + "\n" for l in replace) + ">>>>>>> REPLACE\n"
            if path_inside:
                blocks.append(fence(part.path + "\n" + body, ""))
            else:
                blocks.append(part.path + "\n" + fence(body, lang))
    return "Here are the edits.\n\n" + "\n".join(blocks)


def v_search_replace(case: Case, rng: random.Random):
    return _search_replace(case, path_inside=False)


def v_sr_path_inside(case: Case, rng: random.Random):
    return _search_replace(case, path_inside=True)


def v_whole_file(case: Case, rng: random.Random):
    parts = sections(case.diffs[3])
    if any(p.is_deleted for p in parts):
        return None, "deletes a file"
    if _no_final_newline(case):
        return None, "a file without final newline"
    big = [n for n, d in case.base.items() if d.count(b"\n") > WHOLE_FILE_MAX_LINES]
    if big:
        return None, f"a file over {WHOLE_FILE_MAX_LINES} lines"
    blocks = []
    for name, data in case.result.items():
        if case.base.get(name) == data:
            continue
        if not data:
            return None, "an empty new file"
        lang = "python" if name.endswith(".py") else ""
        blocks.append(name + "\n" + fence(data.decode("utf-8", "surrogateescape"), lang))
    return "Here are the new files.\n\n" + "\n".join(blocks)


# -- negative controls: must be refused ----------------------------------------------------------


def n_context_missing(case: Case, rng: random.Random):
    parts = sections(case.diffs[3])
    for part in parts:
        if part.is_new or part.is_deleted:
            continue
        for hunk in part.hunks:
            for index, line in enumerate(hunk):
                if index and line.startswith(" ") and line.strip():
                    hunk[index] = " " + line[1 : len(line) - len(line.lstrip())] + "this_line_is_not_in_the_file()"
                    return reply(join(parts))
    return None, "no context line"


def n_missing_file(case: Case, rng: random.Random):
    parts = sections(case.diffs[3])
    for part in parts:
        if part.is_new or part.is_deleted:
            continue
        old = part.path
        directory, _, name = old.rpartition("/")
        new = (directory + "/" if directory else "") + "no_such_" + name
        part.header = [l.replace(old, new) for l in part.header]
        return reply(part.text())
    return None, "no modified file"


def _duplicated_line(case: Case) -> tuple[str, str, list[int]] | None:
    for name, data in sorted(case.base.items()):
        lines = data.decode("utf-8", "surrogateescape").split("\n")
        positions: dict[str, list[int]] = defaultdict(list)
        for number, line in enumerate(lines):
            if len(line.strip()) >= 4:
                positions[line].append(number)
        for line, where in positions.items():
            if len(where) >= 2 and where[0] > 0 and lines.count(lines[0]) == 1 and lines[0].strip():
                return name, line, where
    return None


def n_ambiguous_search(case: Case, rng: random.Random):
    found = _duplicated_line(case)
    if not found:
        return None, "no line occurs twice"
    name, line, _ = found
    indent = line[: len(line) - len(line.lstrip())]
    body = f"<<<<<<< SEARCH\n{line}\n=======\n{line}\n{indent}inserted_line = 1\n>>>>>>> REPLACE\n"
    return "Edit:\n\n" + name + "\n" + fence(body, "python")


def n_ambiguous_elision(case: Case, rng: random.Random):
    found = _duplicated_line(case)
    if not found:
        return None, "no line occurs twice"
    name, line, _ = found
    first = case.base[name].decode("utf-8", "surrogateescape").split("\n")[0]
    indent = line[: len(line) - len(line.lstrip())]
    marker = ELISION_COMMENT.get(Path(name).suffix, "...")
    body = f"--- a/{name}\n+++ b/{name}\n@@ ... @@\n {first}\n {marker}\n+{indent}inserted_line = 1\n {line}\n"
    return reply(body)


VARIANTS = {
    "clean": v_clean,
    "```python fence": v_python_fence,
    "bare ``` fence": v_bare_fence,
    "no fence": v_unfenced,
    "CRLF reply": v_crlf,
    "no diff --git lines": v_no_git_headers,
    "wrong @@ starts": v_wrong_starts,
    "wrong @@ starts+counts": v_wrong_counts,
    "@@ ... @@ (no numbers)": v_no_numbers,
    "no a/ b/ prefixes": v_no_prefixes,
    "blank context stripped": v_blank_stripped,
    "indentation drift": v_indent_drift,
    "hunk dedented": v_hunk_dedent,
    "# ... existing code ...": v_elision,
    "1 context line": v_context1,
    "0 context lines": v_context0,
    "two fenced blocks": v_two_blocks,
    "SEARCH/REPLACE": v_search_replace,
    "SEARCH/REPLACE path inside": v_sr_path_inside,
    "whole file": v_whole_file,
}
NEGATIVE = {
    "NEG context not in file": n_context_missing,
    "NEG missing file": n_missing_file,
    "NEG ambiguous SEARCH": n_ambiguous_search,
    "NEG ambiguous elided hunk": n_ambiguous_elision,
}
# Rows where refusing is an acceptable outcome for a correct-intent reply (not held to 95 %).
UNIQUE_ONLY = {"0 context lines"}


# ------------------------------------------------------------------------------------------- running

_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*([A-Za-z0-9_+.-]*)[^\n]*$")


def first_diff(text: str) -> str | None:
    """The rule of the git-based applier before issue 14 (extract_diff): the first labelled diff block, else from the first diff start."""
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index].rstrip("\r"))
        if not opening:
            index += 1
            continue
        end = _closing(lines, index + 1, opening.group(1))
        if opening.group(2).lower() in ("diff", "patch", "udiff") and any(l.strip() for l in lines[index + 1 : end]):
            return _finish(lines[index + 1 : end])
        index = end + 1
    block_end = None
    index = 0
    while index < len(lines):
        line = lines[index].rstrip("\r")
        opening = _FENCE_OPEN.match(line)
        if opening and block_end is None:
            block_end = _closing(lines, index + 1, opening.group(1))
            index += 1
            continue
        if block_end is not None and index == block_end:
            block_end = None
            index += 1
            continue
        if line.startswith("diff --git ") or (
            line.startswith("--- ") and index + 1 < len(lines) and lines[index + 1].startswith("+++ ")
        ):
            return _finish(lines[index : block_end if block_end is not None else len(lines)])
        index += 1
    return None


def _closing(lines: list[str], start: int, fence_text: str) -> int:
    pattern = re.compile(r"^ {0,3}" + re.escape(fence_text[0]) + "{" + str(len(fence_text)) + r",}[ \t]*\r?$")
    for index in range(start, len(lines)):
        if pattern.match(lines[index]):
            return index
    return len(lines)


def _finish(lines: list[str]) -> str:
    text = "\n".join(lines)
    return text if text.endswith("\n") else text + "\n"


def run_tool(tool: str, tree: Path, text: str) -> bool:
    """Apply with one tool in `tree`; True when the tool reported success."""
    if tool == "quorum":
        return apply_reply(tree, text).applied
    diff = first_diff(text)
    if diff is None:
        return False
    patch_file = tree.parent / "reply.patch"
    patch_file.write_bytes(diff.encode("utf-8", "surrogateescape"))
    env = {**GIT_ENV, "GIT_CEILING_DIRECTORIES": str(tree.parent)}
    if tool == "git apply":
        command = ["git", "apply", "--whitespace=nowarn", str(patch_file)]
    elif tool.startswith("git apply --recount"):
        command = ["git", "apply", "--whitespace=nowarn", "--recount", "--ignore-whitespace", "-C1", str(patch_file)]
    else:
        command = ["patch", "-p1", "--fuzz=3", "--batch", "--forward", "--no-backup-if-mismatch", "-E", "-s",
                   "--reject-file=-", "-i", str(patch_file)]  # fmt: skip
    try:
        done = subprocess.run(command, cwd=tree, capture_output=True, env=env, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def classify(ok: bool, after: dict[str, bytes], base: dict[str, bytes], gold: dict[str, bytes], negative: bool) -> str:
    if not ok:
        return "refused" if after == base else "wrong"
    if negative:
        return "wrong"
    return "correct" if after == gold else "wrong"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                        help=f"the laid-out task corpus (holds instances.jsonl; default {DEFAULT_CORPUS})")
    parser.add_argument("--no-corpus", action="store_true", help="only the mirrors' commits")
    parser.add_argument("--mirror", type=Path, action="append", default=None,
                        help="bare git dir (repeatable; default: " + ", ".join(map(str, DEFAULT_MIRRORS)) + ")")
    parser.add_argument("--no-mirrors", action="store_true", help="only the corpus's gold patches")
    parser.add_argument("--commits", type=int, default=40, help="recent non-merge .py commits per mirror (default 40)")
    parser.add_argument("--only", action="append", default=None, help="run only these variants (substring match)")
    parser.add_argument("--tools", default="all", help="'quorum' for quorum only, or 'all'")
    parser.add_argument("--show", action="store_true", help="print every quorum refusal or wrong application")
    parser.add_argument("--case", action="append", default=None, help="only cases whose id contains this")
    parser.add_argument("--dump", type=Path, default=None, help="write the replies quorum got wrong or refused here")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--json", type=Path, default=None, help="write the counts as JSON here")
    args = parser.parse_args(argv)
    mirrors = [] if args.no_mirrors else (args.mirror or DEFAULT_MIRRORS)
    corpus = None if args.no_corpus else args.corpus
    try:
        check_inputs(corpus, mirrors)
    except MissingInput as exc:
        print(f"bench/edits.py: {exc}", file=sys.stderr)
        return 2
    if corpus is None and not mirrors:
        parser.error("--no-corpus and --no-mirrors leave nothing to measure")
    if args.dump is not None and args.dump.resolve().is_relative_to(ROOT):
        parser.error(f"--dump {args.dump} is inside the repository: replies built from the corpus are never committed")
    tools = TOOLS if args.tools == "all" else ("quorum",)
    variants = {**VARIANTS, **NEGATIVE}
    if args.only:
        variants = {k: v for k, v in variants.items() if any(o.lower() in k.lower() for o in args.only)}

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="quorum-bench-edits-") as tmp:
        work = Path(tmp)
        cases = corpus_cases(corpus, work) if corpus is not None else []
        skip = {c.id.rsplit("-", 1)[-1] for c in cases}
        for mirror in mirrors:
            cases += mirror_cases(mirror, args.commits, skip)
        if args.case:
            cases = [c for c in cases if any(s in c.id for s in args.case)]
        for case in cases:
            make_diffs(case, work)
        print(f"{len(cases)} real changes ({sum(1 for c in cases if '@' not in c.id)} corpus gold patches, "
              f"{sum(1 for c in cases if '@' in c.id)} mirror commits)\n")  # fmt: skip

        counts: dict[str, dict[str, dict[str, int]]] = {}
        skipped: dict[str, dict[str, int]] = {}
        diff_mismatch = 0
        tree = work / "tree"
        for name, builder in variants.items():
            negative = name in NEGATIVE
            counts[name] = {tool: {"correct": 0, "wrong": 0, "refused": 0} for tool in tools}
            skipped[name] = defaultdict(int)
            for case in cases:
                rng = random.Random(f"{args.seed}:{name}:{case.id}")
                built = builder(case, rng)
                if isinstance(built, tuple):
                    skipped[name][built[1]] += 1
                    continue
                for tool in tools:
                    _write_tree(tree, case.base)
                    ok = run_tool(tool, tree, built)
                    after = _read_tree(tree)
                    verdict = classify(ok, after, case.base, case.result, negative)
                    counts[name][tool][verdict] += 1
                    if tool == "quorum" and ok and not negative:
                        diff_mismatch += _diff_roundtrip(tree, case, built, after)
                    if tool == "quorum" and args.show and (verdict == "wrong" or (verdict == "refused" and not negative)):
                        _write_tree(tree, case.base)
                        result = apply_reply(tree, built, dry_run=True)
                        print(f"[{name}] {case.id}: {verdict}: {result.reason[:600]}")
                        if args.dump:
                            args.dump.mkdir(parents=True, exist_ok=True)
                            slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{name}_{case.id}")
                            (args.dump / f"{slug}.md").write_text(built, encoding="utf-8", errors="surrogateescape")
    print_table(counts, skipped, tools)
    print(f"\nquorum's normalised diff re-applied with `git apply` to the base gave a different tree: {diff_mismatch} time(s)")
    print(f"time: {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"counts": counts, "skipped": skipped}, indent=2))
    return 0 if verdict_ok(counts) else 1


def _diff_roundtrip(tree: Path, case: Case, text: str, after: dict[str, bytes]) -> int:
    """Re-apply quorum's normalised diff with plain `git apply` on the base: it must give the same tree."""
    check = tree.parent / "check"
    _write_tree(check, case.base)
    result = apply_reply(check, text, dry_run=True)
    _write_tree(check, case.base)
    (tree.parent / "norm.patch").write_bytes(result.diff.encode("utf-8", "surrogateescape"))
    env = {**GIT_ENV, "GIT_CEILING_DIRECTORIES": str(tree.parent)}
    done = subprocess.run(["git", "apply", str(tree.parent / "norm.patch")], cwd=check, capture_output=True, env=env)
    return 0 if done.returncode == 0 and _read_tree(check) == after else 1


def verdict_ok(counts) -> bool:
    for name, per_tool in counts.items():
        q = per_tool["quorum"]
        total = sum(q.values())
        if q["wrong"]:
            return False
        if name in NEGATIVE or name in UNIQUE_ONLY or not total:
            continue
        if q["correct"] < 0.95 * total:
            return False
    return True


def print_table(counts, skipped, tools) -> None:
    short = {"quorum": "quorum", "git apply": "git apply", "git apply --recount --ignore-whitespace -C1": "git --recount -C1",
             "patch --fuzz=3": "patch --fuzz=3"}  # fmt: skip
    header = f"{'variant':<28} {'n':>4}  " + "  ".join(f"{short[t] + ' c/w/r':>22}" for t in tools)
    print(header)
    print("-" * len(header))
    for name, per_tool in counts.items():
        n = sum(per_tool[tools[0]].values())
        cells = []
        for tool in tools:
            c = per_tool[tool]
            first = "-" if name in NEGATIVE else str(c["correct"])
            cells.append(f"{first + ' / ' + str(c['wrong']) + ' / ' + str(c['refused']):>22}")
        note = ""
        if skipped.get(name):
            note = "  (skipped: " + ", ".join(f"{v} {k}" for k, v in skipped[name].items()) + ")"
        print(f"{name:<28} {n:>4}  " + "  ".join(cells) + note)
    print("\nc/w/r = correct / wrong / refused. Negative controls (NEG) must be refused: '-' = not applicable.")


if __name__ == "__main__":
    sys.exit(main())
