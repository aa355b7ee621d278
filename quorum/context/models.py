"""Data shapes of the context package.

Two families:

- the *index* (`FileEntry`, `Symbol`, `Unit`, `ImportRef`, `FileParse`): plain slotted dataclasses,
  built once per tree and pickled into the cache, so loading a warm index is cheap;
- the *results* handed to the pipeline and printed by the command line (`RankedFile`, `RankedRegion`,
  `ContextRegion`, `StageContext`, `Localization`, `RepoMap`): pydantic models.

Line numbers are 1-based and inclusive everywhere, and refer to the files as they are on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field

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


class ContextRegion(BaseModel):
    path: str
    start_line: int
    end_line: int
    tokens: int
    reason: str = ""


class StageContext(BaseModel):
    """What one stage's model is given: the regions (with line numbers) and the rendered text."""

    stage: str
    budget: int
    regions: list[ContextRegion] = Field(default_factory=list)
    text: str = ""
    tokens: int = 0  # tokens of `text` as counted by the stage's counter


class SymbolRef(BaseModel):
    path: str
    qualname: str
    start_line: int
    end_line: int


class Localization(BaseModel):
    """Files and symbols to read and to edit: the `localize` stage's result (or its deterministic fallback)."""

    read_files: list[str] = Field(default_factory=list)
    edit_files: list[str] = Field(default_factory=list)
    symbols: list[SymbolRef] = Field(default_factory=list)
    source: str = "deterministic"


class RepoMap(BaseModel):
    text: str
    tokens: int
    paths: int  # paths listed
    skeletons: list[str] = Field(default_factory=list)  # files whose skeleton is shown
