"""Split a model reply into fenced blocks and the text between them (markdown fences, ``` or ~~~)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})[ \t]*([^\n]*?)[ \t]*$")
_PATH_CHARS = re.compile(r"^[\w.\-/+@~,=\[\]{}()' $]+$", re.UNICODE)
_LABEL = re.compile(r"^(?:file(?:name)?|path|in|update|updated|create|new file|edit)\s*[:\-]?\s+", re.IGNORECASE)
_KNOWN_LANGS = {
    "diff", "patch", "udiff", "python", "py", "python3", "text", "txt", "plain", "plaintext", "bash", "sh",
    "shell", "console", "javascript", "js", "typescript", "ts", "json", "yaml", "yml", "toml", "ini", "cfg",
    "markdown", "md", "rst", "html", "css", "c", "cpp", "go", "rust", "java", "sql", "xml", "make", "makefile",
}  # fmt: skip


_BARE_NAMES = {"Makefile", "Dockerfile", "LICENSE", "Procfile", "Gemfile", "Rakefile", "Jenkinsfile", "Vagrantfile",
               "CODEOWNERS", "Containerfile", "Justfile", "justfile", "GNUmakefile"}  # fmt: skip


@dataclass
class Block:
    """A fenced block (fenced=True) or a run of text outside any fence (fenced=False)."""

    number: int  # 1-based among fenced blocks; 0 for text outside fences
    fenced: bool
    lines: list[str]
    lang: str = ""
    info_path: str | None = None  # a path named in the info string (```python src/app.py)
    before: list[str] = field(default_factory=list)  # the text lines just before the opening fence


def split_blocks(text: str) -> list[Block]:
    """Fenced blocks and the text between them, in order.

    A fence closes with the same character, at least as many of them, nothing else on the line and no
    more indentation than the opening fence had — so diff lines such as `+```` or ` ```` (a context line
    of a markdown file) never close a block. An unclosed fence runs to the end of the reply.
    """
    lines = text.split("\n")
    blocks: list[Block] = []
    outside: list[str] = []
    number = 0
    index = 0
    in_diff = False  # inside a diff written outside any fence: ' ```' there is a context line
    while index < len(lines):
        line = lines[index]
        if in_diff and not _is_diff_line(line):
            in_diff = False
        if not in_diff and (
            line.startswith("diff --git ")
            or (line.startswith("--- ") and index + 1 < len(lines) and lines[index + 1].startswith("+++ "))
        ):
            in_diff = True
        opening = _OPEN.match(line)
        if (
            not opening
            or (opening.group(2)[0] == "`" and "`" in opening.group(3))
            or (in_diff and opening.group(1))
        ):
            outside.append(line)
            index += 1
            continue
        in_diff = False
        indent, fence, info = len(opening.group(1)), opening.group(2), opening.group(3)
        end = _closing(lines, index + 1, indent, fence)
        if outside:
            blocks.append(Block(number=0, fenced=False, lines=outside))
        number += 1
        lang, info_path = _read_info(info)
        body = [line[indent:] if line[:indent].strip() == "" else line for line in lines[index + 1 : end]]
        blocks.append(Block(number=number, fenced=True, lines=body, lang=lang, info_path=info_path, before=outside))
        outside = []
        index = end + 1
    if outside:
        blocks.append(Block(number=0, fenced=False, lines=outside))
    return blocks


_SEARCH = re.compile(r"^<{5,9} SEARCH>?\s*$")
_REPLACE = re.compile(r"^>{5,9} REPLACE\s*$")


def _closing(lines: list[str], start: int, indent: int, fence: str) -> int:
    """The closing fence; none counts inside a SEARCH/REPLACE block still open (its text may hold fences)."""
    closing = re.compile(rf"^ {{0,{indent}}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
    open_block = False
    for index in range(start, len(lines)):
        line = lines[index]
        if _SEARCH.match(line):
            open_block = True
        elif _REPLACE.match(line):
            open_block = False
        elif not open_block and closing.match(line):
            return index
    return len(lines)


def _is_diff_line(line: str) -> bool:
    if line == "" or line[:1] in (" ", "+", "-", "@", "\\"):
        return True
    return line.startswith(
        ("diff --git ", "index ", "new file mode", "deleted file mode", "old mode", "new mode", "rename ",
         "copy ", "similarity index", "dissimilarity index", "Binary files ", "GIT binary patch")
    )  # fmt: skip


def _read_info(info: str) -> tuple[str, str | None]:
    """The language and a path from an info string: `python`, `python src/a.py`, `python:src/a.py`, `src/a.py`."""
    info = info.strip()
    if not info:
        return "", None
    tokens = info.replace(":", " ", 1).split() if ":" in info.split()[0] else info.split()
    lang = tokens[0].lower()
    path = None
    for token in tokens[1:] if lang in _KNOWN_LANGS else tokens:
        token = token.strip("'\"")
        for key in ("title=", "file=", "path=", "filename="):
            if token.startswith(key):
                token = token[len(key) :].strip("'\"")
        if looks_like_path(token):
            path = token
            break
    if lang not in _KNOWN_LANGS and path == tokens[0].strip("'\""):
        lang = ""
    return lang, path


def looks_like_path(text: str) -> bool:
    """A bare file path: one token with a '.' or '/', made of the characters paths are made of."""
    if not text or len(text) > 300 or " " in text or text.startswith(("-", "=", "<", ">", "+", "@")):
        return False
    if "://" in text or text.endswith("/") or not _PATH_CHARS.match(text):
        return False
    if set(text) <= {".", "/"}:
        return False
    last = text.rsplit("/", 1)[-1]
    if last in _BARE_NAMES or re.match(r"^\.[A-Za-z0-9][\w.-]*$", last):
        return True
    return "/" in text or ("." in last.strip(".") and not last.endswith("."))


def path_from_line(line: str) -> str | None:
    """The path on a line that holds only a path, maybe decorated: `path`, **path**, ### path, File: path, path:."""
    text = line.strip()
    if not text or len(text) > 300:
        return None
    text = text.lstrip("#").strip()
    text = _LABEL.sub("", text)
    for _ in range(3):
        text = text.strip().strip("*_").strip("`").strip("'\"").rstrip(":").strip()
    return text if looks_like_path(text) else None


def path_before(lines: list[str], *, window: int = 2) -> str | None:
    """The path on the last non-empty line among the last `window + 1` lines (path then fence, maybe a blank line)."""
    tail = lines[-(window + 1) :] if lines else []
    for line in reversed(tail):
        if line.strip():
            return path_from_line(line)
    return None
