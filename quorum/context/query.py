"""What a task text points at (pure): identifiers, dotted names, paths, quoted messages and traceback frames.

Identifiers are sorted by how surely they are code:
- `code`: inside backticks, called (`name()`), dotted (`a.b`), snake_case, camelCase/CamelCase, dunder;
- `words`: every other word (lower-cased), still matched against names defined in the repository but
  with less weight ("pager", "netrc").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .lexical import STOP_WORDS, tokens

_TRAILER = re.compile(r"^\s*[\w-]+-by:.*$", re.IGNORECASE | re.MULTILINE)
_MERGE = re.compile(r"^Merge (?:pull request|branch) #?\S* from (?:[^/\s]+/)?(\S+)$", re.MULTILINE)
# commit-message boilerplate: not evidence of where the code is
_TASK_STOP = frozenset(
    "fix fixes fixed fixing close closes closed closing resolve resolves resolved ref refs wip squashed merge "
    "don doesn didn isn aren wasn won shouldn couldn wouldn issue issues".split()
)
_ISSUE_REF = re.compile(r"(?:\b[\w.-]+/[\w.-]+)?#\d+\b|\bGH-\d+\b")
_URL = re.compile(r"https?://\S+")
_CODE_SPAN = re.compile(r"``(.+?)``|`([^`\n]+)`")
_FRAME = re.compile(r'File "([^"]+)", line (\d+)(?:, in ([\w<>.]+))?')
_EXC_LINE = re.compile(
    r"^\s*((?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Warning|Exit|Interrupt)):\s*(.+?)\s*$", re.MULTILINE
)
_QUOTED = re.compile(r'"([^"\n]{6,200})"|\'([^\'\n]{6,200})\'|“([^”\n]{6,200})”')
_DOTTED = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(\(\))?")
_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\(|(?<![\w)\]])\.([A-Za-z_]\w*)\(")
_IDENT = re.compile(r"(?<![\w.])([A-Za-z_]\w*)")
_PATH = re.compile(
    r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.(?:py|pyi|md|rst|txt|toml|cfg|ini|ya?ml|json|js|ts|c|h|go|rs))\b"
)
_FILE_SUFFIXES = (".py", ".pyi", ".md", ".rst", ".txt", ".toml", ".cfg", ".ini", ".yaml", ".yml", ".json")
_NOT_DOTTED = {"e.g", "i.e", "etc.", "vs.", "a.k.a"}


_TASK_STOP_TOKENS = frozenset(t for word in _TASK_STOP for t in tokens(word))


@dataclass(frozen=True)
class Frame:
    path: str
    line: int
    function: str


@dataclass
class Query:
    text: str  # the cleaned task text
    tokens: list[str]  # BM25 tokens of the cleaned text
    code: list[str] = field(default_factory=list)  # identifiers marked as code, in order of first mention
    words: list[str] = field(default_factory=list)  # other words (lower-case)
    dotted: list[str] = field(default_factory=list)  # a.b(.c) names
    paths: list[str] = field(default_factory=list)  # file paths mentioned
    frames: list[Frame] = field(default_factory=list)  # traceback frames, outermost first
    messages: list[str] = field(default_factory=list)  # quoted strings and exception messages


def clean(text: str) -> str:
    """Drop commit boilerplate: trailers, issue references, URLs; keep a merged branch's name."""
    text = _TRAILER.sub("", text)
    text = _MERGE.sub(lambda m: m.group(1).replace("-", " ").replace("/", " "), text)
    text = _URL.sub(" ", text)
    text = _ISSUE_REF.sub(" ", text)
    return text


def _is_code_word(word: str) -> bool:
    core = word.strip("_")
    if not core:
        return False
    if word.startswith("__") and word.endswith("__"):
        return True
    if "_" in core:
        return True
    if any(c.isupper() for c in core[1:]) and any(c.islower() for c in core):  # camelCase / CamelCase
        return True
    return any(c.isdigit() for c in core) and any(c.isalpha() for c in core) and len(core) > 3


def parse_query(text: str) -> Query:
    cleaned = clean(text)
    q = Query(text=cleaned, tokens=[t for t in tokens(cleaned) if t not in _TASK_STOP_TOKENS])
    seen_code: dict[str, None] = {}
    seen_words: dict[str, None] = {}

    def add_code(name: str) -> None:
        name = name.strip()
        if name and name not in seen_code and name.lower() not in STOP_WORDS and name.lower() not in _TASK_STOP:
            seen_code[name] = None

    for m in _FRAME.finditer(cleaned):
        q.frames.append(Frame(m.group(1), int(m.group(2)), m.group(3) or ""))
        if m.group(3) and not m.group(3).startswith("<"):
            add_code(m.group(3))
    for m in _EXC_LINE.finditer(cleaned):
        add_code(m.group(1).rsplit(".", 1)[-1])
        if len(m.group(2)) >= 6:
            q.messages.append(m.group(2))
    for m in _QUOTED.finditer(cleaned):
        value = next(g for g in m.groups() if g)
        if " " in value.strip() and not value.strip().startswith("File "):
            q.messages.append(value.strip())
    for m in _PATH.finditer(cleaned):
        if m.group(1) not in q.paths:
            q.paths.append(m.group(1))
    spans = [m.group(1) or m.group(2) for m in _CODE_SPAN.finditer(cleaned)]
    for span in spans:  # everything in a code span is code
        for dm in _DOTTED.finditer(span):
            _add_dotted(q, dm.group(1), add_code)
        for im in _IDENT.finditer(span):
            add_code(im.group(1))
    prose = _CODE_SPAN.sub(" ", cleaned)
    prose = _FRAME.sub(" ", prose)
    for dm in _DOTTED.finditer(prose):
        _add_dotted(q, dm.group(1), add_code)
    for cm in _CALL.finditer(prose):
        add_code(cm.group(1) or cm.group(2))
    for im in _IDENT.finditer(prose):
        word = im.group(1)
        if _is_code_word(word):
            add_code(word)
        elif len(word) > 2 and word.lower() not in STOP_WORDS and word.lower() not in _TASK_STOP:
            seen_words.setdefault(word.lower(), None)
    q.code = list(seen_code)
    q.words = [w for w in seen_words if w not in {c.lower() for c in q.code}]
    return q


def _add_dotted(q: Query, name: str, add_code) -> None:
    if name.lower() in _NOT_DOTTED or name.lower().endswith(_FILE_SUFFIXES):
        return
    if re.fullmatch(r"\d+(\.\d+)+", name):
        return
    if name not in q.dotted:
        q.dotted.append(name)
    for part in name.split("."):
        if part not in ("self", "cls"):
            add_code(part)
