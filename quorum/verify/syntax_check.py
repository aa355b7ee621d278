"""Which Python files a scanner could not have analysed because they do not parse.

Scanners are silent about such files in different ways: semgrep only parses a file when one of its
rules' keyword prefilters matches the text (so a broken file with nothing rule-relevant in it
"scans clean"), bandit lists it as skipped. A scan over a file that does not parse proves nothing
about it, so the scanner reports name these files and say ``incomplete``.

"Parses" means: ``ast.parse`` by the Python running quorum, the same interpreter the tests run
under, so a file using newer syntax than that is reported too (its tests could not run either).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from quorum.domain.python_ast import parse_module

MAX_BYTES = 5_000_000


class SyntaxProblem(BaseModel):
    file: str
    line: int = 0
    message: str

    def describe(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


def syntax_problem(source: bytes, filename: str) -> SyntaxProblem | None:
    """Why ``source`` does not parse as Python, or None when it does. Pure."""
    try:
        parse_module(source, filename)  # SyntaxWarning for odd escapes is not our concern
    except SyntaxError as exc:
        return SyntaxProblem(file=filename, line=exc.lineno or 0, message=f"{type(exc).__name__}: {exc.msg}")
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
        return SyntaxProblem(file=filename, message=f"{type(exc).__name__}: {exc}")
    return None


def python_syntax_problems(workspace: Path, files: list[str]) -> list[SyntaxProblem]:
    """The files (relative to ``workspace``, already checked to be inside it) that do not parse."""
    problems = []
    for rel in files:
        if not rel.endswith((".py", ".pyi")):
            continue
        path = Path(workspace) / rel
        try:
            if path.stat().st_size > MAX_BYTES:
                problems.append(SyntaxProblem(file=rel, message=f"larger than {MAX_BYTES} bytes; not checked"))
                continue
            data = path.read_bytes()
        except OSError as exc:
            problems.append(SyntaxProblem(file=rel, message=f"unreadable: {exc.strerror}"))
            continue
        problem = syntax_problem(data, rel)
        if problem is not None:
            problems.append(problem)
    return problems
