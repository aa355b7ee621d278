"""Typed values shared by the edit modules: the parsed edits of a reply and the result of applying them.

`EditFormat`, `MatchKind`, `EditOutcome` and the result (`ApplyResult`, which is the pipeline's
`PatchResult`) live in `quorum.domain` and are re-exported here.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field

from quorum.domain.edit_format import EditFormat
from quorum.domain.models import EditOutcome, MatchKind, PatchResult

__all__ = [
    "ApplyResult",
    "Edit",
    "EditFormat",
    "EditOutcome",
    "Hunk",
    "HunkLine",
    "MatchKind",
    "Op",
    "ParsedReply",
]


class Op(str, Enum):
    context = " "
    removed = "-"
    added = "+"
    elision = "~"  # a `... existing code ...` line: zero or more unchanged lines


class HunkLine(BaseModel):
    op: Op
    text: str
    no_eol: bool = Field(default=False, description="Followed by '\\ No newline at end of file' in the reply.")


class Hunk(BaseModel):
    """One hunk of a diff, or one SEARCH/REPLACE block turned into a hunk."""

    header: str = ""
    lines: list[HunkLine] = Field(default_factory=list)
    soft_tail: int = Field(
        default=0,
        description="How many of the last lines are blank or unprefixed context lines that may be "
        "trailing noise (an editor-stripped blank context line, an empty line before the fence): "
        "they are matched when they can be and dropped when they cannot.",
    )

    @property
    def changes(self) -> bool:
        return any(line.op in (Op.removed, Op.added) for line in self.lines)


class Edit(BaseModel):
    """One file operation found in a reply: a diff file section, one SEARCH/REPLACE block, or one whole file."""

    index: int = Field(description="1-based position of the edit in the reply.")
    format: EditFormat
    block: int = Field(description="1-based number of the fenced block it came from (0: outside any fence).")
    path: str = Field(description="The path written to (the old path for a deletion), prefixes resolved.")
    old_path: str | None = Field(default=None, description="Source of a rename or copy.")
    alt_path: str | None = Field(
        default=None, description="A second reading of the path (the name as written, with its a/ or b/ kept)."
    )
    names_as_written: list[str] = Field(default_factory=list)
    create: bool = False
    delete: bool = False
    rename: bool = False
    copy_: bool = Field(default=False, alias="copy")
    old_mode: str | None = None
    new_mode: str | None = None
    binary: bool = False
    symlink: bool = False
    submodule: bool = False
    hunks: list[Hunk] = Field(default_factory=list)
    content: str | None = Field(default=None, description="Whole-file format: the complete new content.")
    size: int = Field(default=0, description="Bytes of the reply this edit takes.")

    model_config = {"populate_by_name": True}

    @property
    def label(self) -> str:
        what = {
            EditFormat.udiff: "diff",
            EditFormat.search_replace: "SEARCH/REPLACE block",
            EditFormat.whole_file: "whole-file block",
        }[self.format]
        return f"{what} #{self.index} for {self.path}"


class ParsedReply(BaseModel):
    edits: list[Edit] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list, description="Why the reply cannot be used as it is.")
    notes: list[str] = Field(default_factory=list, description="Things skipped on purpose (duplicates, illustrations).")

    @property
    def formats(self) -> list[EditFormat]:
        return list(dict.fromkeys(e.format for e in self.edits))


# The result types are the domain's: the pipeline stores them as they are (apply.json) and the
# domain may not import this package. `ApplyResult` is `quorum.domain.models.PatchResult`.
ApplyResult = PatchResult
