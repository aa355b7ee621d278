"""Patches from models: extract, parse, check for safety, apply with git (DESIGN.md §7).

Pure functions:
- `extract_diff(reply)`: the unified diff inside a model reply.
- `parse_patch(diff)`: the files a patch touches, with the line numbers it adds and the git flags
  (new/deleted/renamed, modes, binary, symlink, submodule), plus any structural problems.
- `check_patch_safety(diff)`: human-readable reasons to refuse a patch, each naming the path.

I/O: `apply_patch(workspace, diff)` checks safety, then `git apply --check`, then `git apply`; it never
raises for a bad patch and always says why it refused.

Paths are read the way `git apply` reads them (-p1: one leading component such as `a/` is dropped;
C-style quoted names are unquoted), and the safety rules look at both the names as written and the
names git will use.

CRLF: `git apply` accepts CRLF at the end of the patch's *structure* lines (`diff --git`, `---`,
`+++`, `@@` headers: measured with git 2.39, see tests), so `extract_diff` converts nothing. Content
lines must match the file byte for byte: a patch whose every line ends in CRLF (which git never
writes: its header lines are always LF, so this means the reply went through a CRLF conversion)
does not apply to an LF file. `apply_patch` therefore tries the patch as given first and, only if
git rejects it and every line ends in CRLF, tries it again with LF line endings. Patches for
CRLF files (CRLF content, LF headers) apply as given.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field

from quorum.domain.models import PatchResult
from quorum.workspace.workspace import GitError, run_git

MAX_PATCH_BYTES = 200_000
GIT_APPLY_TIMEOUT_S = 60.0

MODE_SYMLINK = "120000"
MODE_SUBMODULE = "160000"
DEV_NULL = "/dev/null"

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_INDEX = re.compile(r"^index [0-9a-fA-F]+\.\.[0-9a-fA-F]+(?: (\d{6}))?\s*$")
# A date after the name in a traditional header; matched only at the start of a whitespace run so
# long runs of spaces cannot make the search quadratic.
_TRADITIONAL_DATE = re.compile(r"(?<!\s)\s+(?=\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2})")
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*([A-Za-z0-9_+.-]*)[^\n]*$")
_HUNK_APPLIED = re.compile(r"^Hunk #(\d+) succeeded at (\d+) \(offset (-?\d+) lines?\)\.")
_CHECKING = re.compile(r"^Checking patch (.+)\.\.\.$")


class Hunk(BaseModel):
    old_start: int
    old_count: int
    new_start: int
    new_count: int
    added_lines: list[int] = Field(default_factory=list, description="Line numbers in the new file.")


class PatchedFile(BaseModel):
    """One file section of a patch."""

    path: str = Field(description="The path git writes: the new path, or the old path for a deletion.")
    old_path: str | None = Field(default=None, description="None for a new file.")
    new_path: str | None = Field(default=None, description="None for a deletion.")
    names_as_written: list[str] = Field(default_factory=list, description="Every name in the headers, before -p1.")
    is_new: bool = False
    is_deleted: bool = False
    is_rename: bool = False
    is_copy: bool = False
    old_mode: str | None = None
    new_mode: str | None = None
    is_binary: bool = False
    is_symlink: bool = False
    is_submodule: bool = False
    hunks: list[Hunk] = Field(default_factory=list)
    size: int = Field(default=0, description="Bytes of this file's section of the patch.")

    @property
    def mode_changed(self) -> bool:
        return self.old_mode is not None and self.new_mode is not None and self.old_mode != self.new_mode

    @property
    def added_lines(self) -> list[int]:
        return sorted({line for hunk in self.hunks for line in hunk.added_lines})


class ParsedPatch(BaseModel):
    files: list[PatchedFile] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list, description="Structural problems (malformed hunks...).")

    @property
    def paths(self) -> list[str]:
        """The touched paths, in patch order, without repeats (deleted files included)."""
        return list(dict.fromkeys(f.path for f in self.files))

    @property
    def added_lines(self) -> dict[str, list[int]]:
        """Path -> sorted added line numbers in the new file, for files that gain lines."""
        merged: dict[str, set[int]] = {}
        for f in self.files:
            if not f.is_deleted and f.added_lines:
                merged.setdefault(f.path, set()).update(f.added_lines)
        return {path: sorted(lines) for path, lines in merged.items()}


# ------------------------------------------------------------------------------------------ extract


def extract_diff(model_reply: str) -> str:
    """The unified diff in a model reply.

    1. The content of the first non-empty fenced block labelled ```diff or ```patch (``` or ~~~, any
       fence length; the closing fence must start its line, so `+```` lines inside the diff are safe;
       an unclosed fence runs to the end of the reply).
    2. Else, from the first line starting with `diff --git`, or with `--- ` directly followed by a
       `+++ ` line (a lone `---` is a markdown rule): to the end of the enclosing fenced block if
       the line is inside an unlabelled one, else to the end of the reply.

    The result ends with a newline. Line endings are kept as they are (see the module docstring).
    Raises ValueError when the reply holds no diff.
    """
    if not model_reply or not model_reply.strip():
        raise ValueError("the reply is empty: expected a unified diff in a ```diff block")
    lines = model_reply.split("\n")

    fenced = _labelled_block(lines)
    if fenced is not None:
        return _finish(fenced)

    block_end: int | None = None  # index of the closing fence of the block we are in, if any
    index = 0
    while index < len(lines):
        line = lines[index].rstrip("\r")
        opening = _FENCE_OPEN.match(line)
        if opening and block_end is None:
            block_end = _closing_fence(lines, index + 1, opening.group(1))
            index += 1
            continue
        if block_end is not None and index == block_end:
            block_end = None
            index += 1
            continue
        if _is_diff_start(lines, index):
            end = block_end if block_end is not None else len(lines)
            return _finish(lines[index:end])
        index += 1
    raise ValueError(
        "no unified diff found in the reply: expected a ```diff block, or lines starting with "
        "'diff --git' or '--- '/'+++ '"
    )


def _labelled_block(lines: list[str]) -> list[str] | None:
    index = 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index].rstrip("\r"))
        if not opening:
            index += 1
            continue
        end = _closing_fence(lines, index + 1, opening.group(1))
        if opening.group(2).lower() in ("diff", "patch", "udiff") and any(
            line.strip() for line in lines[index + 1 : end]
        ):
            return lines[index + 1 : end]
        index = end + 1
    return None


def _closing_fence(lines: list[str], start: int, fence: str) -> int:
    pattern = re.compile(r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*\r?$")
    for index in range(start, len(lines)):
        if pattern.match(lines[index]):
            return index
    return len(lines)


def _is_diff_start(lines: list[str], index: int) -> bool:
    line = lines[index]
    if line.startswith("diff --git "):
        return True
    return line.startswith("--- ") and index + 1 < len(lines) and lines[index + 1].startswith("+++ ")


def _finish(lines: list[str]) -> str:
    text = "\n".join(lines)
    if not text.strip():
        raise ValueError("the diff block in the reply is empty")
    return text if text.endswith("\n") else text + "\n"


# -------------------------------------------------------------------------------------------- parse


def parse_patch(diff_text: str) -> ParsedPatch:
    """Parse a unified diff (git or traditional) without touching the disk. Never raises.

    Added line numbers come from each hunk header's new-file start, counting context and `+` lines.
    Problems that make the patch unusable (a hunk shorter or longer than its header says, a bad hunk
    header, a file section without hunks) are listed in `problems`, each naming the path; a hunk
    followed directly by more `+`/`-`/` ` lines is reported because git would silently ignore them.
    """
    return _Parser(diff_text).parse()


class _Section:
    """Mutable state for one file section while parsing."""

    def __init__(self) -> None:
        self.git_names: tuple[str | None, str | None] | None = None  # from `diff --git`, after -p1
        self.raw_names: list[str] = []
        self.minus: str | None = None  # stripped names from ---/+++; DEV_NULL kept as is
        self.plus: str | None = None
        self.rename_from: str | None = None
        self.rename_to: str | None = None
        self.copy_from: str | None = None
        self.copy_to: str | None = None
        self.old_mode: str | None = None
        self.new_mode: str | None = None
        self.new_file = False
        self.deleted_file = False
        self.index_mode: str | None = None
        self.binary = False
        self.hunks: list[Hunk] = []
        self.old: str | None = None  # resolved names (after -p1, renames, /dev/null)
        self.new: str | None = None


class _Parser:
    def __init__(self, text: str):
        self.lines = text.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.offsets = [0]
        for line in self.lines:
            self.offsets.append(self.offsets[-1] + len(line.encode("utf-8", "surrogatepass")) + 1)
        self.index = 0
        self.files: list[PatchedFile] = []
        self.problems: list[str] = []

    def _at_file_lines(self) -> bool:
        """At a `--- ` line directly followed by a `+++ ` line (a file header, not a removed line)."""
        return (
            self.index + 1 < len(self.lines)
            and self.lines[self.index].startswith("--- ")
            and self.lines[self.index + 1].startswith("+++ ")
        )

    def line(self, index: int | None = None) -> str:
        return self.lines[self.index if index is None else index].rstrip("\r")

    def parse(self) -> ParsedPatch:
        while self.index < len(self.lines):
            line = self.line()
            if line.startswith("diff --git "):
                self._section(git_header=line)
            elif self._at_file_lines():
                self._section(git_header=None)
            elif line.startswith(("diff --cc ", "diff --combined ")):
                self.problems.append(f"malformed patch: combined diffs are not supported ({line[:80]!r})")
                self.index += 1
            else:
                self.index += 1  # garbage between sections, as git ignores it
        return ParsedPatch(files=self.files, problems=self.problems)

    # -- one file section --------------------------------------------------------------------

    def _section(self, git_header: str | None) -> None:
        start = self.index
        section = _Section()
        if git_header is not None:
            a, b = _split_git_header_names(git_header[len("diff --git ") :])
            section.raw_names.extend(n for n in (a, b) if n)
            section.git_names = (_strip_prefix(a) if a else None, _strip_prefix(b) if b else None)
            self.index += 1
            self._extended_headers(section)
        else:
            self._file_lines(section)
        name = self._describe(section)
        self._hunks(section, name)
        self._finish(section, start)

    def _extended_headers(self, section: _Section) -> None:
        while self.index < len(self.lines):
            line = self.line()
            if line.startswith(("diff --git ", "@@")):
                return
            if self._at_file_lines():
                self._file_lines(section)
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
                section.rename_from = self._plain_name(section, line.split(" ", 2)[2])
            elif line.startswith(("rename to ", "rename new ")):
                section.rename_to = self._plain_name(section, line.split(" ", 2)[2])
            elif line.startswith("copy from "):
                section.copy_from = self._plain_name(section, line[10:])
            elif line.startswith("copy to "):
                section.copy_to = self._plain_name(section, line[8:])
            elif line.startswith("GIT binary patch"):
                section.binary = True
                self.index += 1
                while self.index < len(self.lines) and not self.line().startswith("diff --git "):
                    self.index += 1
                return
            elif line.startswith("Binary files ") and line.endswith(" differ"):
                section.binary = True
            elif match := _INDEX.match(line):
                section.index_mode = match.group(1)
            elif line.startswith(("similarity index ", "dissimilarity index ", "index ")):
                pass
            else:
                return  # end of the extended header (prose or the next section)
            self.index += 1

    def _plain_name(self, section: _Section, text: str) -> str:
        name = _unquote_name(text)
        section.raw_names.append(name)
        return name

    def _file_lines(self, section: _Section) -> None:
        minus_raw = _header_name(self.line()[4:])
        plus_raw = _header_name(self.line(self.index + 1)[4:])
        for raw in (minus_raw, plus_raw):
            if raw != DEV_NULL:
                section.raw_names.append(raw)
        section.minus = DEV_NULL if minus_raw == DEV_NULL else _strip_prefix(minus_raw)
        section.plus = DEV_NULL if plus_raw == DEV_NULL else _strip_prefix(plus_raw)
        self.index += 2

    def _describe(self, section: _Section) -> str:
        git_a, git_b = section.git_names or (None, None)
        old = section.rename_from or section.copy_from
        if old is None:
            old = None if section.minus == DEV_NULL else (section.minus or git_a)
        new = section.rename_to or section.copy_to
        if new is None:
            new = None if section.plus == DEV_NULL else (section.plus or git_b)
        section.new_file = section.new_file or section.minus == DEV_NULL
        section.deleted_file = section.deleted_file or section.plus == DEV_NULL
        if section.new_file:
            old = None
        if section.deleted_file:
            new = None
        section.old, section.new = old, new
        return (old if section.deleted_file else new) or old or new or "(unnamed file)"

    # -- hunks ---------------------------------------------------------------------------------

    def _hunks(self, section: _Section, name: str) -> None:
        while self.index < len(self.lines):
            line = self.line()
            if not line.startswith("@@"):
                return
            match = _HUNK.match(line)
            if not match:
                self.problems.append(f"malformed hunk header in {name}: {line[:80]!r}")
                self.index += 1
                self._skip_hunk_body()
                continue
            old_start, new_start = int(match.group(1)), int(match.group(3))
            old_count = int(match.group(2)) if match.group(2) is not None else 1
            new_count = int(match.group(4)) if match.group(4) is not None else 1
            hunk = Hunk(old_start=old_start, old_count=old_count, new_start=new_start, new_count=new_count)
            self.index += 1
            self._hunk_body(hunk, name, len(section.hunks) + 1)
            section.hunks.append(hunk)

    def _hunk_body(self, hunk: Hunk, name: str, number: int) -> None:
        old_left, new_left = hunk.old_count, hunk.new_count
        new_line = hunk.new_start
        header = f"@@ -{hunk.old_start},{hunk.old_count} +{hunk.new_start},{hunk.new_count} @@"
        while old_left > 0 or new_left > 0:
            if self.index >= len(self.lines):
                self.problems.append(
                    f"malformed hunk #{number} in {name}: the patch ends before the lines its header "
                    f"{header} announces ({old_left} old and {new_left} new lines missing)"
                )
                return
            raw = self.lines[self.index]
            first = raw[:1]
            if raw == "" or first == " ":
                old_left, new_left, new_line = old_left - 1, new_left - 1, new_line + 1
            elif first == "+":
                hunk.added_lines.append(new_line)
                new_left, new_line = new_left - 1, new_line + 1
            elif first == "-":
                old_left -= 1
            elif first == "\\":
                pass
            else:
                self.problems.append(
                    f"malformed hunk #{number} in {name}: line {self.index + 1} ({raw[:60]!r}) is not a "
                    f"diff line, but the header {header} announces {old_left} more old and {new_left} more new lines"
                )
                return
            self.index += 1
            if old_left < 0 or new_left < 0:
                self.problems.append(
                    f"malformed hunk #{number} in {name}: its lines do not match the counts in its header {header}"
                )
                self._skip_hunk_body()
                return
        if self.index < len(self.lines) and self.lines[self.index].startswith("\\"):
            self.index += 1  # "\ No newline at end of file" after the last line
        if self.index < len(self.lines):
            following = self.lines[self.index]
            if following[:1] in ("+", "-", " ") and following.rstrip("\r") != "-- " and not self._at_file_lines():
                self.problems.append(
                    f"malformed hunk #{number} in {name}: line {self.index + 1} ({following[:60]!r}) follows "
                    f"a hunk that is already complete per its header {header}; git would silently ignore it"
                )
                self._skip_hunk_body()

    def _skip_hunk_body(self) -> None:
        """After a broken hunk: skip its remaining diff lines, up to the next hunk or file section."""
        while self.index < len(self.lines):
            line = self.lines[self.index]
            if line[:1] not in ("+", "-", " ", "\\") or line.startswith("diff --git "):
                return
            if self._at_file_lines():
                return
            self.index += 1

    # -- wrap up -----------------------------------------------------------------------------

    def _finish(self, section: _Section, start: int) -> None:
        old, new = section.old, section.new
        path = (old if section.deleted_file else new) or old or new or ""
        modes = {section.old_mode, section.new_mode, section.index_mode} - {None}
        new_mode = section.new_mode or (section.index_mode if not section.deleted_file else None)
        old_mode = section.old_mode or (section.index_mode if not section.new_file else None)
        patched = PatchedFile(
            path=path,
            old_path=old,
            new_path=new,
            names_as_written=list(dict.fromkeys(section.raw_names)),
            is_new=section.new_file,
            is_deleted=section.deleted_file,
            is_rename=section.rename_from is not None or section.rename_to is not None,
            is_copy=section.copy_from is not None or section.copy_to is not None,
            old_mode=old_mode,
            new_mode=new_mode,
            is_binary=section.binary,
            is_symlink=MODE_SYMLINK in modes,
            is_submodule=MODE_SUBMODULE in modes,
            hunks=section.hunks,
            size=self.offsets[self.index] - self.offsets[start],
        )
        if not path:
            self.problems.append(f"malformed patch: a file section at line {start + 1} names no file")
        elif not section.hunks and not (
            patched.is_new or patched.is_deleted or patched.is_rename or patched.is_copy
            or patched.mode_changed or patched.is_binary
        ):
            self.problems.append(f"malformed patch: no hunks for {path}")
        self.files.append(patched)


# ------------------------------------------------------------------------------------------- names

_C_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}


def _unquote(text: str) -> tuple[str, str] | None:
    """Parse a C-style quoted name at the start of `text`: (name, rest after the closing quote)."""
    if not text.startswith('"'):
        return None
    out = bytearray()
    index = 1
    while index < len(text):
        char = text[index]
        if char == '"':
            return out.decode("utf-8", "backslashreplace"), text[index + 1 :]
        if char == "\\" and index + 1 < len(text):
            nxt = text[index + 1]
            if nxt in _C_ESCAPES:
                out.append(_C_ESCAPES[nxt])
                index += 2
                continue
            octal = re.match(r"[0-7]{3}", text[index + 1 : index + 4])
            if octal:
                out.append(int(octal.group(0), 8) & 0xFF)
                index += 4
                continue
        out.extend(char.encode("utf-8", "surrogatepass"))
        index += 1
    return None  # unterminated quote


def _unquote_name(text: str) -> str:
    text = text.rstrip("\r")
    parsed = _unquote(text)
    return parsed[0] if parsed else text


def _header_name(text: str) -> str:
    """The name in a `--- `/`+++ ` line: quoted, or up to a tab (then a date may follow)."""
    text = text.rstrip("\r")
    parsed = _unquote(text)
    if parsed:
        return parsed[0]
    if "\t" in text:
        return text.split("\t", 1)[0]
    dated = _TRADITIONAL_DATE.search(text)
    return text[: dated.start()] if dated else text


def _strip_prefix(name: str) -> str:
    """git apply's -p1: drop everything up to the first '/' (a name without '/' is kept)."""
    if name == DEV_NULL:
        return name
    cleaned = re.sub("/+", "/", name)
    return cleaned.split("/", 1)[1] if "/" in cleaned else cleaned


def _split_git_header_names(rest: str) -> tuple[str | None, str | None]:
    """The two names after `diff --git `, as written (prefix kept)."""
    rest = rest.rstrip("\r")
    first = _unquote(rest)
    if first is not None:
        name_a, tail = first
        tail = tail.lstrip(" ")
        second = _unquote(tail)
        return name_a, (second[0] if second else tail or None)
    # Unquoted: names may contain spaces. Like git, prefer the split where both sides name the
    # same file once the prefix is dropped; fall back to the split before " b/". Linear time:
    # a split is only compared when both names have the same length.
    first_slash = rest.find("/")
    next_slash = [-1] * (len(rest) + 1)
    for position in range(len(rest) - 1, -1, -1):
        next_slash[position] = position if rest[position] == "/" else next_slash[position + 1]
    for index, char in enumerate(rest):
        if char != " ":
            continue
        if rest.startswith('"', index + 1):
            second = _unquote(rest[index + 1 :])
            return rest[:index], (second[0] if second else rest[index + 1 :])
        right_slash = next_slash[index + 1]
        if first_slash == -1 or first_slash > index or right_slash == -1:
            continue
        left_name, right_start = rest[first_slash + 1 : index], right_slash + 1
        if left_name and len(left_name) == len(rest) - right_start and rest.startswith(left_name, right_start):
            return rest[:index], rest[index + 1 :]
    if " b/" in rest:
        left, right = rest.split(" b/", 1)
        return left, "b/" + right
    parts = rest.split(" ", 1)
    return parts[0] or None, (parts[1] if len(parts) > 1 else None)


# ------------------------------------------------------------------------------------------ safety


def check_patch_safety(diff_text: str, *, max_bytes: int = MAX_PATCH_BYTES) -> list[str]:
    """Reasons to refuse this patch (an empty list means it is safe to try). Pure; never raises.

    Refused: an empty or malformed patch (no file sections, no hunks, broken hunks), absolute
    paths, `..` components, anything inside a `.git` directory, creating or changing symlinks
    (mode 120000), submodules (mode 160000), binary patches, control characters in paths, and
    patches larger than `max_bytes`. Each reason names the offending path.
    """
    if not diff_text or not diff_text.strip():
        return ["empty patch: there is nothing to apply"]
    problems: list[str] = []
    size = len(diff_text.encode("utf-8", "surrogatepass"))
    parsed = parse_patch(diff_text)
    if size > max_bytes:
        largest = max(parsed.files, key=lambda f: f.size, default=None)
        where = f" (largest file section: {largest.path}, {largest.size} bytes)" if largest else ""
        problems.append(f"patch too large: {size} bytes, over the limit of {max_bytes} bytes{where}")
    if not parsed.files:
        problems.append(
            "malformed patch: no file headers ('diff --git' or '---'/'+++' lines followed by hunks) found"
        )
    problems.extend(parsed.problems)
    for f in parsed.files:
        problems.extend(_path_problems(f))
        if f.is_symlink:
            verb = "creates" if f.is_new else "deletes" if f.is_deleted else "changes"
            problems.append(f"symlink refused: the patch {verb} symlink {f.path} (mode {MODE_SYMLINK})")
        if f.is_submodule:
            problems.append(f"submodule refused: the patch touches submodule {f.path} (mode {MODE_SUBMODULE})")
        if f.is_binary:
            problems.append(f"binary patch refused for {f.path}")
    return list(dict.fromkeys(problems))


def _path_problems(f: PatchedFile) -> list[str]:
    problems: list[str] = []
    # Names as written (before -p1) and the names git will use after it.
    names = list(dict.fromkeys([*f.names_as_written, *(n for n in (f.old_path, f.new_path) if n)]))
    for name in names:
        shown = _strip_prefix(name) if name.startswith(("a/", "b/")) else name
        if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name) or name.startswith("\\"):
            problems.append(f"absolute path refused: {name}")
        parts = name.replace("\\", "/").split("/")
        if ".." in parts:
            problems.append(f"path outside the repository refused: {shown}")
        if any(_is_git_dir(part) for part in parts):
            problems.append(f"path inside .git refused: {shown}")
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            problems.append(f"control character in path refused: {name!r}")
    if f.path and not f.path.strip("/"):
        problems.append(f"malformed path {f.path!r}")
    return problems


def _is_git_dir(component: str) -> bool:
    # Also the spellings some filesystems fold into ".git" (case, trailing dots/spaces, 8.3 name).
    folded = component.lower().rstrip(". ")
    return folded == ".git" or folded == "git~1"


# ------------------------------------------------------------------------------------------- apply


def apply_patch(
    workspace: Path, diff_text: str, *, max_bytes: int = MAX_PATCH_BYTES, timeout: float = GIT_APPLY_TIMEOUT_S
) -> PatchResult:
    """Apply `diff_text` to the git workspace. Never raises for a bad patch: applied=False with the reason.

    Order: safety check; no touched path may be (or sit below) a symlink in the workspace; then
    `git apply --check`, then `git apply` (both `--whitespace=nowarn`). On success, `files` lists the
    touched paths (deleted ones included) and `added_lines` the added line numbers in the new files,
    corrected for hunks git applied at an offset from their header's position.
    """
    problems = check_patch_safety(diff_text, max_bytes=max_bytes)
    if problems:
        return PatchResult(applied=False, reason="; ".join(problems))
    root = Path(workspace)
    if not (root / ".git").exists():
        return PatchResult(applied=False, reason=f"workspace {root} is not the root of a git repository")
    parsed = parse_patch(diff_text)
    problems = _workspace_problems(root, parsed)
    if problems:
        return PatchResult(applied=False, reason="; ".join(problems))

    data = diff_text.encode("utf-8", "surrogateescape")
    try:
        checked = _git_apply(root, data, check=True, timeout=timeout)
        if checked.returncode != 0 and _all_crlf(diff_text):
            as_lf = diff_text.replace("\r\n", "\n").encode("utf-8", "surrogateescape")
            if _git_apply(root, as_lf, check=True, timeout=timeout).returncode == 0:
                data, checked = as_lf, None
        if checked is not None and checked.returncode != 0:
            return PatchResult(applied=False, reason=f"git apply --check failed: {_stderr(checked)}")
        applied = _git_apply(root, data, check=False, timeout=timeout)
    except GitError as exc:
        return PatchResult(applied=False, reason=str(exc))
    except OSError as exc:
        return PatchResult(applied=False, reason=f"could not run git apply: {exc}")
    if applied.returncode != 0:
        return PatchResult(applied=False, reason=f"git apply failed: {_stderr(applied)}")
    return PatchResult(
        applied=True,
        files=parsed.paths,
        added_lines=_added_lines_as_applied(parsed, applied.stderr.decode("utf-8", "replace")),
    )


def _git_apply(root: Path, data: bytes, *, check: bool, timeout: float):
    args = ["apply", "--verbose", "--whitespace=nowarn"] + (["--check"] if check else []) + ["-"]
    return run_git(args, root, input=data, timeout=timeout, check=False)


def _stderr(result) -> str:
    lines = [
        line
        for line in result.stderr.decode("utf-8", "replace").splitlines()
        if line.strip() and not line.startswith(("Checking patch ", "Applied patch ", "Hunk #"))
    ]
    text = "\n".join(lines).strip() or f"exit status {result.returncode}"
    return text if len(text) <= 2000 else text[:1000] + "\n[...]\n" + text[-1000:]


def _all_crlf(text: str) -> bool:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return bool(lines) and all(line.endswith("\r") for line in lines)


def _workspace_problems(root: Path, parsed: ParsedPatch) -> list[str]:
    """Symlinks already in the workspace: a plain-looking hunk on a symlink repoints it (git allows it)."""
    problems = []
    for f in parsed.files:
        for name in dict.fromkeys(n for n in (f.old_path, f.new_path) if n):
            current = root
            for part in name.split("/"):
                current = current / part
                if current.is_symlink():
                    where = "is" if current == root / name else f"sits below {current.relative_to(root)}, which is"
                    problems.append(f"symlink refused: {name} {where} a symlink in the workspace")
                    break
    return problems


def _added_lines_as_applied(parsed: ParsedPatch, verbose: str) -> dict[str, list[int]]:
    """Shift each hunk's added lines by the offset git reports ("Hunk #2 succeeded at 14 (offset 3 lines)")."""
    offsets: list[dict[int, int]] = []
    for line in verbose.splitlines():
        if _CHECKING.match(line) or line.startswith("Applied patch "):
            if _CHECKING.match(line):
                offsets.append({})
            continue
        match = _HUNK_APPLIED.match(line)
        if match and offsets:
            offsets[-1][int(match.group(1))] = int(match.group(3))
    if len(offsets) != len(parsed.files) or not any(offsets):
        return parsed.added_lines
    merged: dict[str, set[int]] = {}
    for f, shifts in zip(parsed.files, offsets):
        if f.is_deleted:
            continue
        for number, hunk in enumerate(f.hunks, start=1):
            shift = shifts.get(number, 0)
            if hunk.added_lines:
                merged.setdefault(f.path, set()).update(line + shift for line in hunk.added_lines)
    return {path: sorted(lines) for path, lines in merged.items()}
