"""How repository text is laid out for a reader (pure): a context is a sequence of blocks.

A block is one view of one file: `lines` (1-based inclusive lines, each prefixed `N|` with its line
number as on disk), `skeleton` (its definitions: `line  signature  # first docstring line`) or
`paths` (the file listing of the whole tree, path "."). The context functions build blocks and a
`Renderer` turns them into text; budgets are counted on that text, so the renderer the pipeline
uses (the stages' delimited `<file>` blocks, quorum.stages.prompting) is the one that is counted.
`PLAIN` is the renderer for people (`quorum context --show`) and tests:

    ### src/click/core.py lines 2356-2358
    2356|    def get_default(self, ctx: Context, call: bool = True) -> t.Any:
    ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Block:
    path: str
    body: str  # without a trailing newline
    view: str = "lines"  # 'lines', 'skeleton' or 'paths'
    start_line: int = 0
    end_line: int = 0
    note: str = ""


class Renderer(Protocol):
    def block(self, block: Block) -> str:
        """The block as text, ending with a newline."""
        ...

    def heading(self, text: str) -> str:
        """A section heading between blocks ('' when the block markup says enough)."""
        ...


class PlainRenderer:
    def block(self, block: Block) -> str:
        if block.view == "lines":
            head = f"### {block.path} lines {block.start_line}-{block.end_line}" + (f" ({block.note})" if block.note else "")
            return f"{head}\n{block.body}\n"
        if block.view == "skeleton":
            return f"{block.path} ({block.note})\n{block.body}\n" if block.body else f"{block.path} ({block.note})\n"
        return f"{block.body}\n"

    def heading(self, text: str) -> str:
        return f"## {text}\n"


PLAIN: Renderer = PlainRenderer()


def numbered(lines: list[str], start: int, end: int) -> str:
    """Lines start..end (1-based, inclusive) of a file, each prefixed with its number and '|'."""
    return "\n".join(f"{n}|{lines[n - 1]}" for n in range(start, min(end, len(lines)) + 1))
