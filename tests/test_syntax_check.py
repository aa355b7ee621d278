"""quorum.verify.syntax_check: which files a scanner could not have analysed."""

from __future__ import annotations

from pathlib import Path

from quorum.verify.syntax_check import python_syntax_problems, syntax_problem


def test_syntax_problem_pure() -> None:
    assert syntax_problem(b"x = 1\n", "a.py") is None
    problem = syntax_problem(b"x = 1\ndef f(:\n", "a.py")
    assert problem is not None and problem.line == 2 and problem.describe().startswith("a.py:2: SyntaxError")
    assert syntax_problem(b"x = '\0'\n\0", "nul.py") is not None
    assert syntax_problem(b"s = '\\d'\n", "warn.py") is None  # a SyntaxWarning is not a problem


def test_python_syntax_problems_on_files(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("x = 1\n")
    (tmp_path / "bad.py").write_text("class\n")
    (tmp_path / "notes.txt").write_text("class\n")
    problems = python_syntax_problems(tmp_path, ["ok.py", "bad.py", "notes.txt", "gone.py"])
    assert [(p.file, p.line) for p in problems] == [("bad.py", 1), ("gone.py", 0)]
    assert "unreadable" in problems[1].message
