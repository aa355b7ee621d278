"""Apply a model reply to a repository: parse, check safety, plan every edit in memory, verify, write all or nothing.

Works on any directory (a git checkout or not); git is never run. Never raises for a bad reply:
`applied=False` with a reason that names the file and the hunk and says what to change.
"""

from __future__ import annotations

import difflib
import itertools
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from quorum.edits import safety
from quorum.edits.locate import MAX_ALTERNATIVES, FileView, Located, Placement, locate
from quorum.edits.models import ApplyResult, Edit, EditFormat, EditOutcome, Hunk, MatchKind, Op
from quorum.edits.parse import is_placeholder, parse_reply
from quorum.edits.render import file_diff
from quorum.edits.resolve import resolve_ambiguous
from quorum.edits.verify import verify_step
from quorum.edits.write import Change, WriteError, commit

WHOLE_FILE_MAX_LINES = 400
FRAGMENT_MIN_LINES = 5  # files with fewer non-blank lines are not checked for fragments
FRAGMENT_KEEP_RATIO = 0.5  # a whole-file block keeping less than this share of a file's lines looks like a fragment
_SKIP_DIRS = {".git", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache", ".pytest_cache"}


def apply_reply(
    repo: Path,
    reply: str,
    *,
    dry_run: bool = False,
    max_bytes: int = safety.MAX_PATCH_BYTES,
    whole_file_max_lines: int = WHOLE_FILE_MAX_LINES,
) -> ApplyResult:
    """Apply every edit in `reply` to the directory `repo`, or none of them.

    With `dry_run`, everything is checked and reported (`applied` says whether it would apply) and
    nothing is written.
    """
    root = Path(repo)
    if not root.is_dir():
        return ApplyResult(applied=False, dry_run=dry_run, reason=f"repository {root} is not a directory")
    root = root.resolve()
    parsed = parse_reply(reply)
    formats = parsed.formats
    fmt = None if not formats else formats[0].value if len(formats) == 1 else "mixed"

    def refuse(problems: list[str], outcomes: list[EditOutcome] | None = None) -> ApplyResult:
        unique = list(dict.fromkeys(problems))
        return ApplyResult(
            applied=False,
            dry_run=dry_run,
            reason="; ".join(unique),
            problems=unique,
            edits=outcomes or [],
            format=fmt,
            notes=parsed.notes,
        )

    if parsed.problems:
        return refuse(parsed.problems)
    problems = [p for edit in parsed.edits for p in safety.edit_problems(edit)]
    problems += safety.size_problems(parsed.edits, max_bytes)
    if problems:
        return refuse(problems)

    planner = _Planner(root, parsed.edits, whole_file_max_lines=whole_file_max_lines)
    planner.run()
    notes = parsed.notes + planner.notes
    if planner.problems:
        result = refuse(planner.problems, planner.outcomes)
        result.notes = notes
        return result
    changes, diff, added, files = planner.finish()
    if not changes:
        result = refuse(["the reply changes nothing: every edit leaves its file as it is"], planner.outcomes)
        result.notes = notes
        return result
    if not dry_run:
        try:
            commit(root, changes)
        except WriteError as exc:
            result = refuse([str(exc)], planner.outcomes)
            result.notes = notes
            return result
    for outcome in planner.outcomes:
        outcome.applied = outcome.match != MatchKind.none
    return ApplyResult(
        applied=True,
        dry_run=dry_run,
        files=files,
        added_lines=added,
        diff=diff,
        edits=planner.outcomes,
        format=fmt,
        notes=notes,
    )


# ------------------------------------------------------------------------------------------ state


@dataclass
class _File:
    path: str
    original: bytes | None  # None: did not exist
    original_mode: int | None
    raw: list[str] | None = None  # lines without '\n' (a CRLF file's keep '\r'); None: absent
    final_newline: bool = True
    added: list[bool] = field(default_factory=list)
    eol: str = ""  # "\r" for CRLF files
    mode: int | None = None  # permission bits to set, None: keep
    origin: str | None = None  # the path whose original content this started from (renames, copies)

    @property
    def exists(self) -> bool:
        return self.raw is not None

    def text(self) -> str | None:
        if self.raw is None:
            return None
        if not self.raw:
            return ""
        return "\n".join(self.raw) + ("\n" if self.final_newline else "")

    def set_text(self, text: str) -> None:
        self.raw, self.final_newline = _split(text)
        self.added = [False] * len(self.raw)


def _split(text: str) -> tuple[list[str], bool]:
    if text == "":
        return [], True
    final = text.endswith("\n")
    lines = text.split("\n")
    if final:
        lines.pop()
    return lines, final


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _oct_mode(bits: int | None) -> str:
    return "100755" if bits is not None and bits & 0o111 else "100644"


# ---------------------------------------------------------------------------------------- planner


class _Planner:
    def __init__(self, root: Path, edits: list[Edit], *, whole_file_max_lines: int):
        self.root = root
        self.edits = edits
        self.max_lines = whole_file_max_lines
        self.files: dict[str, _File] = {}
        self.order: list[str] = []  # paths in the order the reply touches them
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.outcomes: list[EditOutcome] = []
        self.edits_per_path: dict[str, int] = {}
        self.indent_placed: dict[str, list[EditOutcome]] = {}  # .py files with hunks placed ignoring indentation
        for edit in edits:
            self.edits_per_path[edit.path] = self.edits_per_path.get(edit.path, 0) + 1

    # -- loading ---------------------------------------------------------------------------

    def _state(self, path: str) -> _File | None:
        """The current state of `path` (loaded from disk the first time); None when it cannot be used."""
        if path in self.files:
            return self.files[path]
        problems = safety.path_problems([path]) or safety.workspace_problems(self.root, path)
        if problems:
            self.problems.extend(problems)
            return None
        full = self.root / path
        if not full.exists():
            state = _File(path=path, original=None, original_mode=None)
        else:
            try:
                data = safety.safe_open_read(self.root, path)
                mode = stat.S_IMODE(os.lstat(full).st_mode)
            except OSError as exc:
                self.problems.append(f"cannot read {path}: {exc.strerror or exc}")
                return None
            if safety.is_binary(data):
                self.problems.append(f"binary file refused: {path} holds NUL bytes; edits to binary files are not accepted")
                return None
            state = _File(path=path, original=data, original_mode=mode, origin=path)
            state.set_text(_decode(data))
            crlf = sum(1 for line in state.raw or [] if line.endswith("\r"))
            state.eol = "\r" if crlf and crlf * 2 >= len(state.raw or []) else ""
        self.files[path] = state
        return state

    def _touch(self, path: str) -> None:
        if path not in self.order:
            self.order.append(path)

    def _resolve(self, edit: Edit) -> str:
        """The path an edit means: as resolved, or the other reading when only that one exists."""
        if edit.create or not edit.alt_path:
            return edit.path
        if self._exists(edit.path) or not self._exists(edit.alt_path):
            return edit.path
        if safety.path_problems([edit.alt_path]):
            return edit.path
        self.notes.append(f"{edit.label}: read the path as {edit.alt_path} (the file {edit.path} does not exist)")
        return edit.alt_path

    def _exists(self, path: str) -> bool:
        if path in self.files:
            return self.files[path].exists
        full = self.root / path
        return full.is_file() and not full.is_symlink()

    def _outcome(self, edit: Edit, file: str, hunk: int = 1, *, what: str | None = None) -> EditOutcome:
        if what is None:
            what = {EditFormat.udiff: f"hunk #{hunk}", EditFormat.search_replace: "SEARCH/REPLACE block",
                    EditFormat.whole_file: "whole-file block"}[edit.format]  # fmt: skip
        source = {EditFormat.udiff: "diff", EditFormat.search_replace: "edit",
                  EditFormat.whole_file: "edit"}[edit.format]  # fmt: skip
        outcome = EditOutcome(
            file=file, edit=edit.index, hunk=hunk, label=f"{what} of {file} ({source} #{edit.index})", format=edit.format
        )
        self.outcomes.append(outcome)
        return outcome

    def _refuse(self, outcome: EditOutcome, reason: str) -> None:
        outcome.reason = reason
        self.problems.append(f"{outcome.label}: {reason}")

    # -- run -------------------------------------------------------------------------------

    def run(self) -> None:
        index = 0
        while index < len(self.edits):
            edit = self.edits[index]
            if edit.format == EditFormat.whole_file:
                self._whole_file(edit)
            elif edit.format == EditFormat.search_replace:
                group = [edit]
                while (
                    index + 1 < len(self.edits)
                    and self.edits[index + 1].format == EditFormat.search_replace
                    and self.edits[index + 1].path == edit.path
                ):
                    index += 1
                    group.append(self.edits[index])
                self._search_replace_group(group)
            else:
                self._diff(edit)
            index += 1
        self._check_python_indentation()

    def _check_python_indentation(self) -> None:
        """A hunk placed ignoring indentation must not break a Python file that compiled before.

        Indentation is meaning in Python: when the tolerant match re-indented (or kept) added lines
        and the result no longer compiles, the indentation was guessed wrong; refuse rather than guess.
        """
        for path, outcomes in self.indent_placed.items():
            state = self.files.get(path)
            if state is None or state.original is None or state.raw is None:
                continue
            try:
                compile(_decode(state.original), path, "exec", dont_inherit=True)
            except (SyntaxError, ValueError):
                continue  # it did not compile before: nothing to compare with
            try:
                compile(state.text() or "", path, "exec", dont_inherit=True)
            except (SyntaxError, ValueError) as exc:
                where = f" (line {exc.lineno}: {exc.msg})" if isinstance(exc, SyntaxError) else ""
                for outcome in outcomes:
                    self._refuse(
                        outcome,
                        f"its context lines match {path} only when indentation is ignored, and the result would not "
                        f"be valid Python{where}; copy the lines with their exact indentation",
                    )

    def _search_replace_group(self, group: list[Edit]) -> None:
        """Consecutive blocks for one file: placed together against its content when each finds exactly
        one place (then their order can settle an ambiguous one); else one after the other, each on
        the result of the previous ones (a later block may search text an earlier one wrote)."""
        state = self._state(group[0].path) if len(group) > 1 else None
        if state is not None and state.exists and all(
            any(line.op != Op.added for line in e.hunks[0].lines) and e.hunks[0].changes for e in group
        ):
            mark = len(self.outcomes)
            problems = len(self.problems)
            pairs = [(self._outcome(e, e.path), e.hunks[0]) for e in group]
            if all(self._placeholders_ok(o, h) for o, h in pairs) and self._place_and_splice(state, pairs, report=False):
                self._touch(group[0].path)
                return
            del self.outcomes[mark:]
            del self.problems[problems:]
        for edit in group:
            self._search_replace(edit)

    def _missing(self, path: str) -> str:
        hint = self._suggest(path)
        return f"No such file in the repository: {path}" + (f" (did you mean {hint}?)" if hint else "")

    def _suggest(self, path: str) -> str | None:
        name = path.rsplit("/", 1)[-1]
        found: list[str] = []
        seen = 0
        for directory, dirs, names in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not os.path.islink(os.path.join(directory, d))]
            seen += len(names)
            if name in names:
                found.append(os.path.relpath(os.path.join(directory, name), self.root).replace(os.sep, "/"))
            if seen > 50_000 or len(found) > 3:
                break
        ends = [f for f in found if f.endswith("/" + path) or path.endswith("/" + f)]
        if len(ends) == 1:
            return ends[0]
        return found[0] if len(found) == 1 else None

    # -- whole file ------------------------------------------------------------------------

    def _whole_file(self, edit: Edit) -> None:
        path = edit.path
        outcome = self._outcome(edit, path)
        state = self._state(path)
        if state is None:
            outcome.reason = "refused by the safety rules"
            return
        content = edit.content or ""
        holders = [line for line in content.split("\n") if is_placeholder(line)]
        if holders:
            self._refuse(
                outcome,
                f"the whole-file block contains the placeholder {holders[0].strip()!r}; a whole file must be written "
                "out in full (or use a diff / SEARCH/REPLACE blocks for a partial change)",
            )
            return
        if not state.exists:
            state.set_text(content)
            state.added = [True] * len(state.raw or [])
            state.eol = ""
            outcome.match = MatchKind.new_file
            outcome.start = 1
            self._touch(path)
            return
        old_lines = state.raw or []
        if len(old_lines) > self.max_lines:
            self._refuse(
                outcome,
                f"whole-file replacement refused: {path} has {len(old_lines)} lines, over the limit of "
                f"{self.max_lines} for whole-file edits; send a diff or SEARCH/REPLACE blocks instead",
            )
            return
        new_text = content
        if state.eol and content:
            new_text = "\n".join(line if line.endswith("\r") else line + "\r" for line in content.split("\n")[:-1]) + "\n"
        new_lines, final = _split(new_text)
        cmp_old = [line.rstrip("\r") for line in old_lines]
        cmp_new = [line.rstrip("\r") for line in new_lines]
        matcher = difflib.SequenceMatcher(None, cmp_old, cmp_new, autojunk=False)
        kept = sum(block.size for block in matcher.get_matching_blocks())
        non_blank = sum(1 for line in cmp_old if line.strip())
        if non_blank >= FRAGMENT_MIN_LINES and kept < FRAGMENT_KEEP_RATIO * len(cmp_old) and not _same_ends(cmp_old, cmp_new):
            if self.edits_per_path.get(path, 0) > 1:
                self.notes.append(
                    f"the fenced block after {path} (#{edit.block}) keeps only {kept} of its {len(cmp_old)} lines: "
                    "taken as an illustration, not as the whole file"
                )
                outcome.reason = "ignored: a fragment shown next to other edits of the same file"
                return
            self._refuse(
                outcome,
                f"the block would replace all {len(cmp_old)} lines of {path} but keeps only {kept} of them; if it "
                "is a fragment, send a diff or SEARCH/REPLACE blocks; a whole-file block must hold the complete file",
            )
            return
        if self.edits_per_path.get(path, 0) > 1:
            self._refuse(
                outcome,
                f"{path} is changed by a whole-file block and by other edits in the same reply; send one or the other",
            )
            return
        added = [False] * len(new_lines)
        for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
            if tag in ("replace", "insert"):
                for j in range(j1, j2):
                    added[j] = True
        state.raw, state.final_newline, state.added = new_lines, final, added
        outcome.match = MatchKind.whole_file
        outcome.start = 1
        self._touch(path)

    # -- SEARCH / REPLACE ------------------------------------------------------------------

    def _search_replace(self, edit: Edit) -> None:
        path = edit.path
        outcome = self._outcome(edit, path)
        state = self._state(path)
        if state is None:
            outcome.reason = "refused by the safety rules"
            return
        hunk = edit.hunks[0]
        if not self._placeholders_ok(outcome, hunk):
            return
        has_old = any(line.op != Op.added for line in hunk.lines)
        if not has_old:
            if state.exists and (state.raw or []):
                self._refuse(
                    outcome,
                    f"the SEARCH part is empty but {path} already exists and is not empty: put the lines to "
                    "replace in SEARCH (an empty SEARCH only creates a new file)",
                )
                return
            lines = [line.text for line in hunk.lines]
            state.raw = [line + state.eol for line in lines]
            state.final_newline = True
            state.added = [True] * len(lines)
            outcome.match = MatchKind.new_file
            outcome.start = 1
            self._touch(path)
            return
        if not state.exists:
            self._refuse(outcome, self._missing(path))
            return
        if not hunk.changes:
            outcome.reason = "SEARCH and REPLACE are the same: nothing to change"
            self.notes.append(f"{outcome.label}: SEARCH and REPLACE are the same; skipped")
            return
        self._place_and_splice(state, [(outcome, hunk)])
        self._touch(path)

    # -- unified diff ----------------------------------------------------------------------

    def _diff(self, edit: Edit) -> None:
        path = self._resolve(edit)
        if edit.create:
            self._create(edit, path)
            return
        if edit.delete:
            self._delete(edit, path)
            return
        source = edit.old_path if (edit.rename or edit.copy_) and edit.old_path else path
        if edit.rename or edit.copy_:
            src = self._state(source)
            dst = self._state(path)
            outcome = self._outcome(edit, path, what="rename" if edit.rename else "copy")
            if src is None or dst is None:
                outcome.reason = "refused by the safety rules"
                return
            if not src.exists:
                self._refuse(outcome, self._missing(source))
                return
            if dst.exists and source != path:
                self._refuse(outcome, f"cannot {'rename' if edit.rename else 'copy'} {source} to {path}: {path} already exists")
                return
            dst.raw, dst.final_newline = list(src.raw or []), src.final_newline
            dst.added, dst.eol, dst.origin = list(src.added), src.eol, src.origin
            dst.mode = src.mode if src.mode is not None else src.original_mode
            if edit.rename and source != path:
                src.raw = None
                src.added = []
                self._touch(source)
            outcome.match = MatchKind.exact
            self._touch(path)
        state = self._state(path)
        if state is None:
            return
        if not state.exists:
            outcome = self._outcome(edit, path)
            self._refuse(outcome, self._missing(path) + "; to create it, use '--- /dev/null' and '+++ b/" + path + "'")
            return
        if edit.new_mode and edit.old_mode and edit.new_mode != edit.old_mode:
            state.mode = (state.original_mode or 0o644) | 0o111 if edit.new_mode == "100755" else (state.original_mode or 0o644) & ~0o111
            self._touch(path)
        pairs = []
        for number, hunk in enumerate(edit.hunks, start=1):
            outcome = self._outcome(edit, path, number)
            if not self._placeholders_ok(outcome, hunk):
                return
            if not hunk.changes:
                outcome.reason = "no added or removed lines: nothing to change"
                self.notes.append(f"{outcome.label} has no added or removed lines; skipped")
                continue
            pairs.append((outcome, hunk))
        if pairs:
            self._place_and_splice(state, pairs)
        self._touch(path)

    def _create(self, edit: Edit, path: str) -> None:
        outcome = self._outcome(edit, path, what="new file")
        state = self._state(path)
        if state is None:
            outcome.reason = "refused by the safety rules"
            return
        if state.exists:
            self._refuse(
                outcome,
                f"{path} already exists, so a new-file diff ('--- /dev/null') cannot create it: send a diff "
                "against its current content",
            )
            return
        lines: list[str] = []
        no_eol = False
        for number, hunk in enumerate(edit.hunks, start=1):
            body = hunk.lines[: len(hunk.lines) - hunk.soft_tail] if hunk.soft_tail else hunk.lines
            wrong = [line for line in body if line.op != Op.added]
            if wrong:
                self._refuse(
                    outcome,
                    f"hunk #{number} of the new file {path} has a line that is not added ({wrong[0].text[:60]!r}): "
                    "every line of a new file starts with '+'",
                )
                return
            if not self._placeholders_ok(outcome, hunk):
                return
            lines.extend(line.text for line in body)
            no_eol = bool(body and body[-1].no_eol)
        state.raw = lines
        state.final_newline = not no_eol
        state.added = [True] * len(lines)
        state.eol = ""
        if edit.new_mode == "100755":
            state.mode = 0o755
        outcome.match = MatchKind.new_file
        outcome.start = 1
        self._touch(path)

    def _delete(self, edit: Edit, path: str) -> None:
        outcome = self._outcome(edit, path, what="deletion")
        state = self._state(path)
        if state is None:
            outcome.reason = "refused by the safety rules"
            return
        if not state.exists:
            self._refuse(outcome, self._missing(path))
            return
        removed = [
            line.text
            for hunk in edit.hunks
            for line in (hunk.lines[: len(hunk.lines) - hunk.soft_tail] if hunk.soft_tail else hunk.lines)
            if line.op in (Op.removed, Op.context)
        ]
        current = [line.rstrip("\r") for line in state.raw or []]
        if not edit.hunks:
            if current:
                self._refuse(
                    outcome,
                    f"the diff deletes {path} but does not list its lines; a deletion must remove every line of the file",
                )
                return
        elif not _same_lines(removed, current):
            self._refuse(
                outcome,
                f"the diff deletes {path} but its removed lines are not the file's current content "
                f"({len(removed)} lines listed, the file has {len(current)})",
            )
            return
        state.raw = None
        state.added = []
        outcome.match = MatchKind.deleted
        self._touch(path)

    def _placeholders_ok(self, outcome: EditOutcome, hunk: Hunk) -> bool:
        for line in hunk.lines:
            if line.op == Op.added and is_placeholder(line.text):
                self._refuse(
                    outcome,
                    f"it adds the placeholder line {line.text.strip()!r}; write out the real lines (a '...' line may "
                    "only stand for unchanged lines, as a context line)",
                )
                return False
        return True

    # -- placing hunks ---------------------------------------------------------------------

    def _place_and_splice(self, state: _File, pairs: list[tuple[EditOutcome, Hunk]], *, report: bool = True) -> bool:
        """Place all hunks of one step against the same content, then apply them together.

        Returns False (and, with `report`, records the reasons) when a hunk cannot be placed.
        """
        view = FileView(state.raw or [])
        found: list[Located] = [locate(view, hunk, eol=state.eol) for _, hunk in pairs]
        resolve_ambiguous(view, [hunk for _, hunk in pairs], found, state.eol)
        placed: list[tuple[EditOutcome, Placement]] = []
        failures: list[tuple[EditOutcome, str]] = []
        for (outcome, hunk), located in zip(pairs, found):
            if located.status == "unique" and located.placement is not None:
                placed.append((outcome, located.placement))
            else:
                failures.append((outcome, self._explain(view, hunk, located)))
        if not failures:
            placed.sort(key=lambda item: item[1].span)
            for (first, a), (second, b) in itertools.pairwise(placed):
                if a.span[1] > b.span[0]:
                    failures.append(
                        (
                            second,
                            (f"it overlaps {first.label.split(' (')[0]} (old lines {a.span[0] + 1}-{a.span[1]} and "
                            f"{b.span[0] + 1}-{b.span[1]}): merge the two into one hunk"),
                        )
                    )
                    break
        if failures:
            if report:
                for outcome, reason in failures:
                    self._refuse(outcome, reason)
            return False
        old_raw = list(state.raw or [])
        old_added = list(state.added)
        splices = sorted((s for _, p in placed for s in p.splices), key=lambda s: s.start, reverse=True)
        raw, added = list(old_raw), list(old_added)
        final_newline = state.final_newline
        for splice in splices:
            if splice.start + splice.length == len(old_raw) and splice.eol_marked:
                final_newline = not splice.no_eol
            raw[splice.start : splice.start + splice.length] = splice.new
            added[splice.start : splice.start + splice.length] = splice.added
        problems = verify_step(old_raw, raw, added, old_added, splices)
        if problems:
            for outcome, _ in placed:
                self._refuse(outcome, "internal check failed after placing the edit: " + "; ".join(problems))
            return False
        state.raw, state.added, state.final_newline = raw, added, final_newline
        if not raw:
            state.final_newline = True
        # Where each placed hunk landed in the new file (1-based), for the outcomes.
        shift = 0
        for outcome, placement in sorted(placed, key=lambda item: item[1].span):
            if placement.tier == MatchKind.indent and state.path.endswith((".py", ".pyi")):
                self.indent_placed.setdefault(state.path, []).append(outcome)
            outcome.match = placement.match
            outcome.placed_by = placement.placed_by
            first = min(s.start for s in placement.splices) if placement.splices else 0
            outcome.start = first + shift + 1
            shift += sum(len(s.new) - s.length for s in placement.splices)
        return True

    def _explain(self, view: FileView, hunk: Hunk, located: Located) -> str:
        if located.status == "ambiguous":
            alternatives = located.alternatives
            at_least = "at least " if len(alternatives) >= MAX_ALTERNATIVES else ""
            starts = sorted({p.span[0] + 1 for p in alternatives})
            if len(starts) == len(alternatives):
                return (
                    f"it matches {at_least}{len(starts)} places (old lines {_some(starts)}), so where it goes is "
                    "ambiguous: add more unchanged lines around the change so that it matches only one place"
                )
            # An elided hunk that starts at one place but whose later changes fit in several: name those.
            starts_of = [{sp.start for sp in p.splices} for p in alternatives]
            common = set.intersection(*starts_of)
            changes = sorted({start + 1 for found in starts_of for start in found - common})
            return (
                f"it matches {at_least}{len(alternatives)} ways: its '...' lines can stand for different runs of "
                f"lines, so its changes could go at old lines {_some(changes)}; add the unchanged lines around each "
                "change instead of '...' so that it matches only one way"
            )
        if located.status == "unplaceable":
            return (
                f"it cannot be placed: {located.detail}; include 2-3 unchanged lines before and after the change"
            )
        old = [line.text for line in hunk.lines if line.op in (Op.context, Op.removed)]
        keys = {" ".join(line.split()) for line in view.lines}
        absent = [text for text in old if text.strip() and " ".join(text.split()) not in keys]
        if absent:
            return (
                f"it does not apply: the line {absent[0].strip()[:80]!r} is not in the file (even ignoring whitespace); "
                "context and removed lines must be copied exactly from the current file"
            )
        return (
            "it does not apply: each of its context and removed lines exists in the file, but not together in "
            "this order (a line missing or extra in the hunk?); copy them exactly from the current file"
        )

    # -- results ---------------------------------------------------------------------------

    def finish(self) -> tuple[list[Change], str, dict[str, list[int]], list[str]]:
        changes: list[Change] = []
        diffs: list[str] = []
        added: dict[str, list[int]] = {}
        renamed_from = {
            state.path: state.origin
            for state in self.files.values()
            if state.origin and state.origin != state.path and state.exists
        }
        consumed_by_rename = {o for o in renamed_from.values() if not self.files.get(o, _File(o, None, None)).exists}
        for path in self.order:
            state = self.files[path]
            new_text = state.text()
            new_bytes = _encode(new_text) if new_text is not None else None
            mode_bits = state.mode if state.mode is not None else state.original_mode
            if new_bytes == state.original and (mode_bits == state.original_mode or new_bytes is None):
                continue
            changes.append(
                Change(path=path, data=new_bytes, mode=state.mode, original=state.original, original_mode=state.original_mode)
            )
            if new_bytes is not None and any(state.added):
                added[path] = [n for n, flag in enumerate(state.added, start=1) if flag]
            if path in consumed_by_rename:
                continue  # shown as the rename's source
            origin = renamed_from.get(path)
            if origin is not None and origin in consumed_by_rename:
                origin_state = self.files[origin]
                diffs.append(
                    file_diff(origin, path, _decode(origin_state.original or b""), new_text,
                              old_mode=_oct_mode(origin_state.original_mode), new_mode=_oct_mode(mode_bits))
                )  # fmt: skip
                continue
            diffs.append(
                file_diff(
                    path if state.original is not None else None,
                    path if new_text is not None else None,
                    _decode(state.original) if state.original is not None else None,
                    new_text,
                    old_mode=_oct_mode(state.original_mode),
                    new_mode=_oct_mode(mode_bits),
                )
            )
        files = [c.path for c in changes]
        return changes, "".join(diffs), added, files


def _some(numbers: list[int], limit: int = 5) -> str:
    return ", ".join(str(n) for n in numbers[:limit]) + (", ..." if len(numbers) > limit else "")


def _same_ends(old: list[str], new: list[str]) -> bool:
    """Both the first and the last non-blank lines are the same: a whole file, not a fragment of one."""
    old_lines = [line for line in old if line.strip()]
    new_lines = [line for line in new if line.strip()]
    return bool(old_lines and new_lines) and old_lines[0] == new_lines[0] and old_lines[-1] == new_lines[-1]


def _same_lines(a: list[str], b: list[str]) -> bool:
    if len(a) != len(b):
        return False
    return all(x == y or " ".join(x.split()) == " ".join(y.split()) for x, y in zip(a, b))
