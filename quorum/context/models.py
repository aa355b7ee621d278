"""Data shapes of the context package.

Two families:

- the *index* (`FileEntry`, `Symbol`, `Unit`, `ImportRef`, `FileParse`): plain slotted dataclasses,
  built once per tree and pickled into the cache, so loading a warm index is cheap;
- the *results* handed to the pipeline and printed by the command line (`RankedFile`, `RankedRegion`,
  `ContextRegion`, `StageContext`, `Localization`, `RepoMap`): pydantic models. `ContextRegion` and the
  record part of `StageContext` are the domain's (`quorum.domain.models`), as stored in context.json.

Line numbers are 1-based and inclusive everywhere, and refer to the files as they are on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from quorum.domain.models import ContextSpan, StageContextRecord

# ------------------------------------------------------------------------------------------- index


@dataclass(slots=True)
class FileEntry:
    """One file of the tree. `skip` is None for indexed files, else why the file was left out."""

    path: str  # relative, '/'-separated
    size: int
    sha: str  # sha1 of the content ("" when unreadable)
    language: str  # 'python', 'markdown', ... or 'unknown'
    kind: str  # 'source', 'test', 'doc', 'changelog', 'config', 'ci', 'example', 'other'
    lines: int = 0
    skip: str | None = None


@dataclass(slots=True)
class Symbol:
    """A Python class or function (methods and nested functions included), or a module's top level."""

    path: str
    qualname: str  # 'Foo', 'Foo.bar', 'outer.inner'; '<module>' for a module's top-level chunk
    name: str
    kind: str  # 'class', 'function', 'method', 'module'
    start_line: int  # first decorator line for decorated definitions
    end_line: int
    signature: str = ""
    doc: str = ""  # first line of the docstring
    parent: int = -1  # index of the enclosing symbol in the file's symbol list, -1 at top level
    params: tuple[str, ...] = ()
    header_end: int = 0  # last line of the signature (decorators and `def`/`class` line(s); docstring excluded)
    spans: tuple[tuple[int, int], ...] = ()  # the lines it owns itself (nested definitions excluded)

    def pack(self) -> tuple:
        """Plain tuple (without the path) for the cache: unpickles much faster than objects."""
        return (self.qualname, self.name, self.kind, self.start_line, self.end_line, self.signature,
                self.doc, self.parent, self.params, self.header_end, self.spans)  # fmt: skip

    @classmethod
    def unpack(cls, path: str, packed: tuple) -> Symbol:
        return cls(path, *packed)


@dataclass(slots=True)
class ImportRef:
    module: str  # as written ('' for `from . import x`)
    names: tuple[str, ...]
    level: int  # relative import level
    line: int


@dataclass(slots=True)
class FileParse:
    """What the index knows about one file's content (cached by content hash).

    Every symbol is also a lexical region (a BM25 document): `unit_tokens[i]` holds the space-joined
    tokens of the lines `symbols[i]` owns.
    """

    sha: str
    symbols: list[Symbol] = field(default_factory=list)
    imports: list[ImportRef] = field(default_factory=list)
    assigns: list[tuple[str, int, int]] = field(default_factory=list)  # (name, line, owning symbol)
    literals: list[tuple[int, str]] = field(default_factory=list)  # (line, message-like string)
    unit_tokens: list[str] = field(default_factory=list)
    chars: int = 0
    lines: int = 0
    syntax_error: str | None = None


# ------------------------------------------------------------------------------------------ results


class RankedFile(BaseModel):
    path: str
    score: float
    reasons: list[str] = Field(default_factory=list)


class RankedRegion(BaseModel):
    path: str
    qualname: str
    kind: str
    start_line: int
    end_line: int
    score: float
    reasons: list[str] = Field(default_factory=list)


# A region a model is shown, and what one stage's model is given: the records kept in context.json
# (quorum.domain.models), plus the rendered text itself.
ContextRegion = ContextSpan


class StageContext(StageContextRecord):
    """What one stage's model is given: the regions (with line numbers), the rendered text and its tokens."""

    text: str = ""

    def record(self, model: str = "") -> StageContextRecord:
        """The record without the text (for context.json and the task's result)."""
        data = self.model_dump(exclude={"text"})
        if model:
            data["model"] = model
        return StageContextRecord.model_validate(data)


class SymbolRef(BaseModel):
    """A definition to read or edit; lines are 0 until resolved against the index."""

    path: str
    qualname: str
    start_line: int = 0
    end_line: int = 0
    edit: bool = True


class Localization(BaseModel):
    """Files and symbols to read and to edit: the `localize` stage's result (or its deterministic fallback)."""

    read_files: list[str] = Field(default_factory=list)
    edit_files: list[str] = Field(default_factory=list)
    new_files: list[str] = Field(default_factory=list, description="Files the change will create.")
    symbols: list[SymbolRef] = Field(default_factory=list)
    source: str = Field(default="deterministic", description="'model' (the localize stage) or 'deterministic'.")
    notes: list[str] = Field(default_factory=list, description="Why the fallback stood in; names that did not resolve.")

    def standing_in(self, reason: str) -> Localization:
        """This (deterministic) localization standing in for the model's, with the reason noted."""
        return self.model_copy(update={"source": "deterministic", "notes": [*self.notes, reason[:500]]})

    def summary(self) -> str:
        symbols = ", ".join(f"{s.path}:{s.qualname}" for s in self.symbols[:6]) or "none"
        return (f"localization ({self.source}): edit {', '.join(self.edit_files) or 'none'}; "
                f"read {', '.join(self.read_files[:6]) or 'none'}; symbols {symbols}"
                + (f"; new files {', '.join(self.new_files)}" if self.new_files else ""))  # fmt: skip


class RepoMap(BaseModel):
    text: str
    tokens: int
    paths: int  # indexed paths (all listed, or deep folders folded into counts when they do not fit)
    skeletons: list[str] = Field(default_factory=list)  # files whose skeleton is shown
