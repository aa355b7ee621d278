"""`ast.parse` that is safe to call from several threads of one process.

CPython 3.11 keeps the AST constructor's recursion depth in per-interpreter state, so two threads
building AST objects at once can corrupt it and one of them gets ``SystemError: AST constructor
recursion depth mismatch`` for valid code (python/cpython#106905). quorum parses repository files in
Prefect's task threads (the context index, test scope, setup.py, syntax checks), several tasks at a
time: seen on the corpus with ``quorum validate --parallel 2``. Every parse takes one process-wide
lock; a parse that still meets the error (another library parsing at the same moment) is retried
once, then the error is raised as it is.
"""

from __future__ import annotations

import ast
import threading
import warnings

_PARSE_LOCK = threading.Lock()
_DEPTH_MISMATCH = "AST constructor recursion depth mismatch"


def parse_module(source: str | bytes, filename: str = "<unknown>", *, quiet: bool = True) -> ast.Module:
    """``ast.parse(source, filename)`` under the lock. ``quiet``: SyntaxWarnings (odd escapes) are dropped."""
    for attempt in (1, 2):
        try:
            with _PARSE_LOCK, warnings.catch_warnings():
                if quiet:
                    warnings.simplefilter("ignore")
                return ast.parse(source, filename=filename)
        except SystemError as exc:
            if _DEPTH_MISMATCH not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")
