"""Reply -> typed edits: every fenced block, in any format, and diffs or SEARCH/REPLACE blocks outside fences.

Pure: no file is read. What a block holds decides how it is read:

- `<<<<<<< SEARCH` / `=======` / `>>>>>>> REPLACE` markers (5 to 9 of each character, as Aider
  accepts): SEARCH/REPLACE blocks. The file is the path alone on a line inside the fence before the
  block, else on the line before the fence, else the previous block's file.
- `diff --git`, `--- `+`+++ ` file headers or `@@` lines: a unified diff. Line numbers and counts in
  `@@` headers are read but never trusted (`@@ ... @@` is fine); a hunk ends at the next header or
  at the end of the block. Inside a fence, an empty line is a blank context line whose space was
  stripped and an unprefixed line a context line that lost its space; trailing ones are "soft"
  (matched if they can be, dropped if not). Counts, when they are right, only keep `--- `/`+++ `
  content lines inside their hunk.
- anything else in a fence with a path (the line before the fence, or the info string): the whole
  new content of that file. A fence without a path and without edit markers is an illustration and
  is ignored. A ```diff block with no hunk in it is a problem (never a silent partial application).
"""

from __future__ import annotations

import re

from quorum.edits import fences
from quorum.edits.models import Edit, EditFormat, Hunk, HunkLine, Op, ParsedReply
from quorum.edits.names import DEV_NULL, header_name, split_git_header_names, strip_prefix, unquote_name

SEARCH = re.compile(r"^<{5,9} SEARCH>?\s*$")
DIVIDER = re.compile(r"^={5,9}\s*$")
REPLACE = re.compile(r"^>{5,9} REPLACE\s*$")
_HUNK_NUMBERS = re.compile(r"^@@+ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_INDEX = re.compile(r"^index [0-9a-fA-F]+\.\.[0-9a-fA-F]+(?: (\d{6}))?\s*$")
_DIFF_LANGS = {"diff", "patch", "udiff"}

# `... existing code ...` and the like: optional comment leader, dots (or an ellipsis character),
# optional short words, optional dots, optional comment closer.
_ELISION = re.compile(
    r"^(?:#+|//+|/\*+|<!--|--|;+|\*+|%+)?\s*(?:\.\.\.+|…|\[\.\.\.\])\s*"
    r"(?P<words>\(?[A-Za-z][A-Za-z0-9 ,'/\-]*\)?)?\s*(?:\.\.\.+|…)?\s*(?:\*/|-->)?$"
)
_WORDS_ONLY = re.compile(
    r"^(?:#+|//+|/\*+|<!--|--|;+|%+)\s*(?:\.\.\.+\s*)?(?P<words>[A-Za-z][A-Za-z0-9 ,'/()\-]*?)\s*(?:\.\.\.+|…)?\s*(?:\*/|-->)?$"
)
# Words-only comments count as elisions only with these phrases ("# rest of the code unchanged").
_PLACEHOLDER_WORDS = re.compile(
    r"\b(existing code|rest of (the )?(code|file|function|method|class|module)|code unchanged|unchanged code|"
    r"remains? (the same|unchanged)|same as before|omitted for brevity|other (methods|functions) unchanged)\b",
    re.IGNORECASE,
)


def is_elision(text: str) -> bool:
    """A line that stands for unchanged lines: `...`, `# ...`, `# ... existing code ...`, `// rest unchanged`."""
    stripped = text.strip()
    if not stripped:
        return False
    if _ELISION.match(stripped):
        return True
    words = _WORDS_ONLY.match(stripped)
    return bool(words and words.group("words") and _PLACEHOLDER_WORDS.search(words.group("words")))


def is_placeholder(text: str) -> bool:
    """An elision line that says so in words (`# ... existing code ...`): never real content to add."""
    stripped = text.strip()
    if not is_elision(stripped):
        return False
    match = _ELISION.match(stripped) or _WORDS_ONLY.match(stripped)
    words = match.group("words") if match else None
    return bool(words and (_PLACEHOLDER_WORDS.search(words) or re.search(r"\bunchanged\b", words, re.IGNORECASE)))


def parse_reply(reply: str) -> ParsedReply:
    """Every edit in a model reply, in reply order, with the problems that make it unusable. Never raises."""
    result = ParsedReply()
    if reply is None or not reply.strip():
        result.problems.append(
            "empty reply: expected edits (a ```diff block, SEARCH/REPLACE blocks, or a whole file after its path)"
        )
        return result
    text = reply.replace("\r\n", "\n").replace("\r", "\n") if "\r" in reply else reply
    sizes: list[int] = []
    for block in fences.split_blocks(text):
        before = len(result.edits)
        if block.fenced:
            _read_fenced(block, result)
        else:
            _read_outside(block, result)
        size = len("\n".join(block.lines).encode("utf-8", "surrogateescape"))
        new = result.edits[before:]
        for edit in new:
            edit.size = edit.size or size // max(1, len(new))
        sizes.append(size)
    _dedupe(result)
    for number, edit in enumerate(result.edits, start=1):
        edit.index = number
    if not result.edits and not result.problems:
        result.problems.append(
            "malformed reply: no edit found. Expected a ```diff block with ---/+++ file headers and @@ hunks, "
            "SEARCH/REPLACE blocks (the file path alone on the line before the fence), or the whole new "
            "content of a file in a fence after its path"
        )
    return result


# ------------------------------------------------------------------------------------------ blocks


def _read_fenced(block: fences.Block, result: ParsedReply) -> None:
    lines = block.lines
    if not any(line.strip() for line in lines):
        return  # an empty block: nothing meant
    if any(SEARCH.match(line) for line in lines):
        default = block.info_path or fences.path_before(block.before)
        _search_replace(lines, block.number, default, result)
        return
    if _has_diff(lines):
        default = block.info_path or fences.path_before(block.before)
        _Diff(lines, block.number, fenced=True, default_path=default, result=result).parse()
        return
    if block.lang in _DIFF_LANGS:
        result.problems.append(
            f"```{block.lang} block #{block.number} holds no hunk: a diff needs ---/+++ file headers and @@ hunks"
        )
        return
    path = block.info_path or fences.path_before(block.before)
    if path is None:
        return  # an illustration, not an edit
    if not _lang_fits(block.lang, path):
        result.notes.append(
            f"fenced block #{block.number} (```{block.lang}) after {path} is not {path}'s language: "
            "taken as an illustration, not as the whole file"
        )
        return
    content = "\n".join(lines)
    result.edits.append(
        Edit(
            index=0,
            format=EditFormat.whole_file,
            block=block.number,
            path=_clean_plain(path),
            names_as_written=[path],
            content=content + "\n" if content else "",
        )
    )


def _read_outside(block: fences.Block, result: ParsedReply) -> None:
    """Outside fences only unambiguous edits count: diffs from their file header, SEARCH/REPLACE blocks."""
    lines = block.lines
    index = 0
    while index < len(lines):
        line = lines[index]
        if SEARCH.match(line):
            last = max(i for i, candidate in enumerate(lines) if REPLACE.match(candidate) or i == index)
            default = fences.path_before(lines[:index])
            _search_replace(lines[index : last + 1], 0, default, result)
            index = last + 1
            continue
        if line.startswith("diff --git ") or (
            line.startswith("--- ") and index + 1 < len(lines) and lines[index + 1].startswith("+++ ")
        ):
            end = index + 1
            while end < len(lines) and _is_diff_line(lines[end]):
                end += 1
            if (
                end < len(lines)
                and lines[end - 1].strip()
                and end + 1 < len(lines)
                and lines[end + 1][:1] in ("+", "-", " ", "@")
                and not lines[end + 1].startswith(("--- ", "+++ "))
            ):
                # A stray line inside a hunk (not after a blank line): reading on would guess, stopping
                # here would drop the rest of the hunk. Neither is safe.
                plus = [l for l in lines[index:end] if l.startswith("+++ ")]
                name = strip_prefix(header_name(plus[-1][4:]))[0] if plus else "(unnamed file)"
                result.problems.append(
                    f"the diff for {name} does not apply as written: the line {lines[end][:60]!r} interrupts a hunk; every "
                    "hunk line starts with ' ' (unchanged), '-' (removed) or '+' (added)"
                )
                return
            while end > index and not lines[end - 1].strip():
                end -= 1
            _Diff(lines[index:end], 0, fenced=False, default_path=None, result=result).parse()
            index = end
            continue
        index += 1


def _is_diff_line(line: str) -> bool:
    if line == "" or line[:1] in (" ", "+", "-", "@", "\\"):
        return True
    return line.startswith(
        ("diff --git ", "index ", "new file mode", "deleted file mode", "old mode", "new mode", "rename ",
         "copy ", "similarity index", "dissimilarity index", "Binary files ", "GIT binary patch", "literal ",
         "delta ")
    )  # fmt: skip


def _has_diff(lines: list[str]) -> bool:
    for index, line in enumerate(lines):
        if line.startswith(("diff --git ", "@@")):
            return True
        if line.startswith("--- ") and index + 1 < len(lines) and lines[index + 1].startswith("+++ "):
            return True
    return False


# Fence languages that say what a block is; a whole-file block must be in its file's language.
_LANG_SUFFIXES = {
    "python": (".py", ".pyi", ".pyw"), "py": (".py", ".pyi", ".pyw"), "python3": (".py", ".pyi"),
    "bash": (".sh", ".bash"), "sh": (".sh", ".bash"), "shell": (".sh", ".bash", ".zsh"), "zsh": (".zsh", ".sh"),
    "console": (), "shell-session": (), "powershell": (".ps1",), "ps1": (".ps1",), "cmd": (".cmd", ".bat"),
    "bat": (".bat", ".cmd"), "json": (".json", ".jsonc", ".json5"), "yaml": (".yml", ".yaml"),
    "yml": (".yml", ".yaml"), "toml": (".toml",), "markdown": (".md", ".markdown"), "md": (".md", ".markdown"),
    "rst": (".rst",), "html": (".html", ".htm"), "css": (".css",), "sql": (".sql",),
    "javascript": (".js", ".mjs", ".cjs"), "js": (".js", ".mjs", ".cjs"), "typescript": (".ts", ".tsx"),
    "ts": (".ts", ".tsx"), "go": (".go",), "rust": (".rs",), "java": (".java",),
}  # fmt: skip


def _lang_fits(lang: str, path: str) -> bool:
    if lang not in _LANG_SUFFIXES:
        return True  # no label, or one that says nothing (text, ini, cfg...)
    return path.lower().endswith(_LANG_SUFFIXES[lang])


def _clean_plain(path: str) -> str:
    path = re.sub("/+", "/", path.strip())
    while path.startswith("./"):
        path = path[2:]
    return path


# ------------------------------------------------------------------------------- SEARCH / REPLACE


def _search_replace(lines: list[str], block: int, default: str | None, result: ParsedReply) -> None:
    path = default
    pending: str | None = None  # a path line seen since the last block
    index = 0
    while index < len(lines):
        line = lines[index]
        if not SEARCH.match(line):
            found = fences.path_from_line(line)
            if found:
                pending = found
            index += 1
            continue
        if pending:
            path = pending
        pending = None
        divider = index + 1
        while divider < len(lines) and not DIVIDER.match(lines[divider]) and not SEARCH.match(lines[divider]):
            divider += 1
        end = divider + 1
        while end < len(lines) and not REPLACE.match(lines[end]) and not SEARCH.match(lines[end]):
            end += 1
        where = f"SEARCH/REPLACE block in fenced block #{block}" if block else "SEARCH/REPLACE block"
        if divider >= len(lines) or not DIVIDER.match(lines[divider]):
            result.problems.append(f"{where} for {path or '(no file)'}: '=======' missing after <<<<<<< SEARCH")
            return
        if end >= len(lines) or not REPLACE.match(lines[end]):
            result.problems.append(f"{where} for {path or '(no file)'}: '>>>>>>> REPLACE' missing")
            return
        search, replace = lines[index + 1 : divider], lines[divider + 1 : end]
        if not path:
            result.problems.append(
                f"{where} has no file path: put the path alone on the line before the ``` fence "
                f"(search begins {(search[0] if search else '')[:60]!r})"
            )
        else:
            result.edits.append(
                Edit(
                    index=0,
                    format=EditFormat.search_replace,
                    block=block,
                    path=_clean_plain(path),
                    names_as_written=[path],
                    hunks=[search_replace_hunk(search, replace)],
                    size=len("\n".join(lines[index : end + 1]).encode("utf-8", "surrogateescape")),
                )
            )
        index = end + 1


def search_replace_hunk(search: list[str], replace: list[str]) -> Hunk:
    """SEARCH/REPLACE as a hunk: the lines they share are context, the rest removed or added.

    `... existing code ...` lines pair up when SEARCH and REPLACE hold the same number of them: each
    pair is an elision, and the parts between them are compared part by part.
    """
    marks_s = [i for i, line in enumerate(search) if is_elision(line)]
    marks_r = [i for i, line in enumerate(replace) if is_elision(line)]
    if marks_s and len(marks_s) == len(marks_r):
        parts_s = _split_at(search, marks_s)
        parts_r = _split_at(replace, marks_r)
        lines: list[HunkLine] = []
        for number, (part_s, part_r) in enumerate(zip(parts_s, parts_r)):
            if number:
                lines.append(HunkLine(op=Op.elision, text=search[marks_s[number - 1]]))
            lines.extend(_line_diff(part_s, part_r))
        return Hunk(header="SEARCH/REPLACE", lines=lines)
    return Hunk(header="SEARCH/REPLACE", lines=_line_diff(search, replace))


def _split_at(lines: list[str], marks: list[int]) -> list[list[str]]:
    parts, start = [], 0
    for mark in marks:
        parts.append(lines[start:mark])
        start = mark + 1
    parts.append(lines[start:])
    return parts


def _line_diff(old: list[str], new: list[str]) -> list[HunkLine]:
    import difflib

    out: list[HunkLine] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.extend(HunkLine(op=Op.context, text=t) for t in old[i1:i2])
            continue
        out.extend(HunkLine(op=Op.removed, text=t) for t in old[i1:i2])
        out.extend(HunkLine(op=Op.added, text=t) for t in new[j1:j2])
    return out


# -------------------------------------------------------------------------------------- unified diff


class _Section:
    def __init__(self) -> None:
        self.raw: list[str] = []
        self.git_a: str | None = None
        self.git_b: str | None = None
        self.minus: str | None = None
        self.plus: str | None = None
        self.rename_from: str | None = None
        self.rename_to: str | None = None
        self.copy_from: str | None = None
        self.copy_to: str | None = None
        self.old_mode: str | None = None
        self.new_mode: str | None = None
        self.index_mode: str | None = None
        self.new_file = False
        self.deleted_file = False
        self.binary = False
        self.hunks: list[Hunk] = []
        self.has_file_lines = False
        self.default_path: str | None = None
        self.start = 0


class _Diff:
    def __init__(self, lines: list[str], block: int, *, fenced: bool, default_path: str | None, result: ParsedReply):
        self.lines = lines
        self.block = block
        self.fenced = fenced
        self.default_path = default_path
        self.result = result
        self.index = 0
        self.section: _Section | None = None

    def _at_file_lines(self, index: int | None = None) -> bool:
        i = self.index if index is None else index
        return i + 1 < len(self.lines) and self.lines[i].startswith("--- ") and self.lines[i + 1].startswith("+++ ")

    def parse(self) -> None:
        while self.index < len(self.lines):
            line = self.lines[self.index]
            if line.startswith("diff --git "):
                self._close()
                self.section = _Section()
                self.section.start = self.index
                a, b = split_git_header_names(line[len("diff --git ") :])
                self.section.raw.extend(n for n in (a, b) if n)
                self.section.git_a, self.section.git_b = a, b
                self.index += 1
                self._extended_headers()
            elif self._at_file_lines():
                if self.section is None or self.section.has_file_lines or self.section.hunks:
                    self._close()
                    self.section = _Section()
                    self.section.start = self.index
                self._file_lines()
            elif line.startswith("@@"):
                if self.section is None:
                    self.section = _Section()
                    self.section.default_path = self.default_path
                    self.section.start = self.index
                self._hunk()
            elif line.startswith(("diff --cc ", "diff --combined ")):
                self.result.problems.append(f"combined diffs are not supported ({line[:80]!r})")
                self.index += 1
            else:
                self.index += 1
        self._close()

    def _extended_headers(self) -> None:
        section = self.section
        assert section is not None
        while self.index < len(self.lines):
            line = self.lines[self.index]
            if line.startswith(("diff --git ", "@@")) or self._at_file_lines():
                return
            if line.startswith("old mode "):
                section.old_mode = line[9:].strip()
            elif line.startswith("new mode "):
                section.new_mode = line[9:].strip()
            elif line.startswith("new file mode "):
                section.new_file, section.new_mode = True, line[14:].strip()
            elif line.startswith("deleted file mode "):
                section.deleted_file, section.old_mode = True, line[18:].strip()
            elif line.startswith(("rename from ", "rename old ")):
                section.rename_from = self._plain(line.split(" ", 2)[2])
            elif line.startswith(("rename to ", "rename new ")):
                section.rename_to = self._plain(line.split(" ", 2)[2])
            elif line.startswith("copy from "):
                section.copy_from = self._plain(line[10:])
            elif line.startswith("copy to "):
                section.copy_to = self._plain(line[8:])
            elif line.startswith("GIT binary patch"):
                section.binary = True
                self.index += 1
                while self.index < len(self.lines) and not self.lines[self.index].startswith("diff --git "):
                    self.index += 1
                return
            elif line.startswith("Binary files ") and line.rstrip().endswith(" differ"):
                section.binary = True
            elif match := _INDEX.match(line):
                section.index_mode = match.group(1)
            elif line.startswith(("similarity index ", "dissimilarity index ", "index ")):
                pass
            else:
                return
            self.index += 1

    def _plain(self, text: str) -> str:
        name = unquote_name(text)
        assert self.section is not None
        self.section.raw.append(name)
        return name

    def _file_lines(self) -> None:
        section = self.section
        assert section is not None
        minus = header_name(self.lines[self.index][4:])
        plus = header_name(self.lines[self.index + 1][4:])
        for name in (minus, plus):
            if name != DEV_NULL:
                section.raw.append(name)
        section.minus, section.plus = minus, plus
        section.has_file_lines = True
        self.index += 2

    def _hunk(self) -> None:
        section = self.section
        assert section is not None
        header = self.lines[self.index]
        numbers = _HUNK_NUMBERS.match(header)
        old_count = new_count = None
        if numbers:
            old_count = int(numbers.group(2)) if numbers.group(2) is not None else 1
            new_count = int(numbers.group(4)) if numbers.group(4) is not None else 1
        self.index += 1
        body: list[HunkLine] = []
        unprefixed: list[bool] = []
        old_seen = new_seen = 0
        while self.index < len(self.lines):
            line = self.lines[self.index]
            counted_open = old_count is not None and (old_seen < old_count or new_seen < (new_count or 0))
            if line.startswith(("@@", "diff --git ")):
                break
            if self._at_file_lines() and (
                not counted_open or (self.index + 2 < len(self.lines) and self.lines[self.index + 2].startswith("@@"))
            ):
                break
            if line.startswith("\\"):
                if body:
                    body[-1].no_eol = True
                self.index += 1
                continue
            if line == "":
                body.append(HunkLine(op=Op.context, text=""))
                unprefixed.append(True)
                old_seen, new_seen = old_seen + 1, new_seen + 1
            elif line[0] == " ":
                body.append(HunkLine(op=Op.context, text=line[1:]))
                unprefixed.append(False)
                old_seen, new_seen = old_seen + 1, new_seen + 1
            elif line[0] == "-":
                body.append(HunkLine(op=Op.removed, text=line[1:]))
                unprefixed.append(False)
                old_seen += 1
            elif line[0] == "+":
                body.append(HunkLine(op=Op.added, text=line[1:]))
                unprefixed.append(False)
                new_seen += 1
            elif self.fenced and not line.startswith(("index ", "new file mode", "deleted file mode")):
                body.append(HunkLine(op=Op.context, text=line))  # a context line that lost its space
                unprefixed.append(True)
                old_seen, new_seen = old_seen + 1, new_seen + 1
            else:
                break
            self.index += 1
        # Trailing empty or unprefixed lines: maybe real context, maybe noise before the fence or prose.
        soft = 0
        for line, bare in zip(reversed(body), reversed(unprefixed)):
            if line.op == Op.context and (bare or not line.text.strip()):
                soft += 1
            else:
                break
        for line in body:
            if line.op == Op.context and is_elision(line.text):
                line.op = Op.elision
        hunk = Hunk(header=header.strip(), lines=body, soft_tail=soft)
        section.hunks.append(hunk)

    def _close(self) -> None:
        section = self.section
        self.section = None
        if section is None:
            return
        where = f" (fenced block #{self.block})" if self.block else ""
        git_a = strip_prefix(section.git_a)[0] if section.git_a else None
        git_b = strip_prefix(section.git_b)[0] if section.git_b else None
        minus = section.minus
        plus = section.plus
        new_file = section.new_file or minus == DEV_NULL
        deleted = section.deleted_file or plus == DEV_NULL
        old_name = section.rename_from or section.copy_from
        new_name = section.rename_to or section.copy_to
        alt: str | None = None
        if new_name is None:
            if plus is not None and plus != DEV_NULL:
                new_name, alt = strip_prefix(plus)
            elif git_b and not deleted:
                new_name, alt = git_b, strip_prefix(section.git_b)[1] if section.git_b else None
        if old_name is None:
            if minus is not None and minus != DEV_NULL:
                old_name, old_alt = strip_prefix(minus)
                alt = alt or old_alt
            elif git_a and not new_file:
                old_name = git_a
        if new_file:
            old_name = None
        if deleted:
            new_name = None
        path = (old_name if deleted else new_name) or old_name or new_name or section.default_path
        if path is None:
            self.result.problems.append(
                f"a diff hunk{where} names no file: start each file with '--- a/PATH' and '+++ b/PATH' lines"
            )
            return
        is_rename = section.rename_from is not None or section.rename_to is not None
        is_copy = section.copy_from is not None or section.copy_to is not None
        if not is_rename and not is_copy and old_name and new_name and old_name != new_name:
            # `--- a/x` / `+++ x` and the like: the same file written two ways, not a rename.
            if strip_prefix(old_name)[1] == new_name or old_name == strip_prefix(new_name)[1]:
                pass
            else:
                is_rename = True
        modes = {section.old_mode, section.new_mode, section.index_mode} - {None}
        mode_changed = section.old_mode is not None and section.new_mode is not None and section.old_mode != section.new_mode
        edit = Edit(
            index=0,
            format=EditFormat.udiff,
            block=self.block,
            path=path,
            old_path=old_name if (is_rename or is_copy) else None,
            alt_path=alt if alt and alt != path else None,
            names_as_written=list(dict.fromkeys(section.raw)) or [path],
            create=new_file,
            delete=deleted,
            rename=is_rename,
            copy=is_copy,
            old_mode=section.old_mode or (section.index_mode if not new_file else None),
            new_mode=section.new_mode or (section.index_mode if not deleted else None),
            binary=section.binary,
            symlink="120000" in modes,
            submodule="160000" in modes,
            hunks=section.hunks,
            size=len("\n".join(self.lines[section.start : self.index]).encode("utf-8", "surrogateescape")),
        )
        if not section.hunks and not (
            new_file or deleted or is_rename or is_copy or mode_changed or section.binary or edit.symlink or edit.submodule
        ):
            self.result.problems.append(f"malformed diff for {path}{where}: no hunks (no @@ lines) follow its header")
            return
        self.result.edits.append(edit)


def _dedupe(result: ParsedReply) -> None:
    seen: dict[str, int] = {}
    kept: list[Edit] = []
    for edit in result.edits:
        key = edit.model_dump_json(exclude={"index", "block", "size"})
        if key in seen:
            result.notes.append(f"the {edit.label.split(' #')[0]} for {edit.path} in block #{edit.block} repeats an earlier one; used once")
            continue
        seen[key] = len(kept)
        kept.append(edit)
    result.edits = kept
