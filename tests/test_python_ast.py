"""quorum.domain.python_ast: every parse under one lock, the CPython 3.11 depth-mismatch error retried once.

The race itself (python/cpython#106905) needs a thread switch inside the AST constructor and could not
be provoked on demand here; it was met once on the corpus (`quorum validate --parallel 2`). These tests
pin what the module promises: the lock is held while `ast.parse` runs, and only that error is retried.
"""

from __future__ import annotations

import ast

import pytest

from quorum.domain import python_ast


def test_parses_like_ast_parse_and_drops_syntax_warnings(recwarn):
    tree = python_ast.parse_module('x = "\\d"\n', "f.py")
    assert isinstance(tree, ast.Module) and ast.dump(tree) == ast.dump(ast.parse('x = "\\d"\n'))
    assert not [w for w in recwarn if issubclass(w.category, SyntaxWarning)]
    with pytest.raises(SyntaxError):
        python_ast.parse_module("def (:\n", "bad.py")


def test_the_lock_is_held_while_ast_parse_runs(monkeypatch):
    seen = []
    real = ast.parse

    def watching(source, filename="<unknown>"):
        seen.append(python_ast._PARSE_LOCK.locked())
        return real(source, filename=filename)

    monkeypatch.setattr(python_ast.ast, "parse", watching)
    python_ast.parse_module("a = 1\n")
    assert seen == [True] and not python_ast._PARSE_LOCK.locked()


def test_the_depth_mismatch_is_retried_once_then_raised(monkeypatch):
    calls = []
    real = ast.parse

    def flaky(failures: int):
        def parse(source, filename="<unknown>"):
            calls.append(filename)
            if len(calls) <= failures:
                raise SystemError("AST constructor recursion depth mismatch (before=45, after=41)")
            return real(source, filename=filename)

        return parse

    monkeypatch.setattr(python_ast.ast, "parse", flaky(1))
    assert isinstance(python_ast.parse_module("a = 1\n", "once.py"), ast.Module) and calls == ["once.py"] * 2
    calls.clear()
    monkeypatch.setattr(python_ast.ast, "parse", flaky(2))
    with pytest.raises(SystemError, match="recursion depth mismatch"):
        python_ast.parse_module("a = 1\n", "twice.py")
    assert calls == ["twice.py"] * 2


def test_other_system_errors_are_not_retried(monkeypatch):
    calls = []

    def broken(source, filename="<unknown>"):
        calls.append(filename)
        raise SystemError("something else")

    monkeypatch.setattr(python_ast.ast, "parse", broken)
    with pytest.raises(SystemError, match="something else"):
        python_ast.parse_module("a = 1\n")
    assert len(calls) == 1
