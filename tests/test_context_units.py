"""Pure parts: tokens, task-text parsing, Python symbols, spans, graph, file classification."""

from __future__ import annotations

import textwrap

from quorum.context.assemble import merge_spans, patched_lines, render_span
from quorum.context.files import classify, is_test_path, language_of, skip_reason
from quorum.context.graph import build_graph, linked_tests, module_names
from quorum.context.lexical import expand, stem, tokens
from quorum.context.models import ImportRef
from quorum.context.python_symbols import parse_python, split_lines
from quorum.context.query import parse_query


def test_identifiers_split_into_parts_and_keep_the_whole():
    assert expand("prompt_suffix") == ("prompt", "suffix", "prompt_suffix")
    assert expand("HelpFormatter") == ("help", "format", "helpformatter")
    assert expand("getNetrcAuth")[-1] == "getnetrcauth"
    assert expand("self") == ()  # stop word
    assert stem("parsing") == stem("parsed") == stem("parse") == stem("parser")
    assert stem("completions") == stem("completion") == stem("complete")
    assert stem("process") == stem("processes") == "process"
    assert sorted(tokens("x = b'-'")) == ["byt"]  # a bytes literal is a use of bytes


def test_query_finds_frames_dotted_names_code_spans_and_messages():
    q = parse_query(
        textwrap.dedent(
            """\
            Crash in `Loader.read_config` when the path is empty (#123)

            Traceback (most recent call last):
              File "/usr/lib/python3/site-packages/pkg/loader.py", line 42, in read_config
                data = _parse(text)
              File "/usr/lib/python3/site-packages/pkg/parse.py", line 7, in _parse
            ValueError: could not parse the empty configuration

            Calling pkg.loader.load_all() also fails. Co-authored-by: Someone <x@y.z>
            """
        )
    )
    assert [(f.path.rsplit("/", 1)[-1], f.line, f.function) for f in q.frames] == [
        ("loader.py", 42, "read_config"),
        ("parse.py", 7, "_parse"),
    ]
    assert "Loader.read_config" in q.dotted and "pkg.loader.load_all" in q.dotted
    assert {"Loader", "read_config", "_parse", "ValueError", "load_all"} <= set(q.code)
    assert "could not parse the empty configuration" in q.messages
    assert "123" not in q.text  # issue references are dropped


def test_merge_pull_request_line_keeps_the_branch_name():
    q = parse_query("Merge pull request #6589 from someone/super_len_str_utf-8\n\nEnhance `super_len`")
    assert "super_len" in q.code
    assert "someone" not in q.tokens


PY = '''\
import os
from . import helpers

LIMIT = 10


@decorator
def outer(a, b=1, *args, key=None, **kw):
    """Outer does things.

    More text.
    """
    def inner(x):
        return x

    return inner(a)


class Box(Base):
    """A box."""

    size = 3

    def open(self, force: bool = False) -> bool:
        return force

    @property
    def label(self):
        return "box"
'''


def test_python_symbols_spans_signatures_docstrings_and_module_chunks():
    symbols, imports, assigns, error = parse_python("pkg/box.py", PY)
    assert error is None
    by_name = {s.qualname: s for s in symbols}
    outer = by_name["outer"]
    assert (outer.start_line, outer.end_line) == (7, 16)  # decorator line included
    assert outer.signature == "def outer(a, b=1, *args, key=None, **kw)"
    assert outer.doc == "Outer does things."
    assert outer.params == ("a", "b", "key", "args", "kw")
    inner = by_name["outer.inner"]
    assert inner.kind == "function" and inner.parent == symbols.index(outer)
    assert (inner.start_line, inner.end_line) == (13, 14)
    assert by_name["Box.open"].kind == "method"
    assert by_name["Box.open"].signature == "def open(self, force: bool = False) -> bool"
    assert by_name["Box.label"].start_line == 27  # @property
    chunks = [s for s in symbols if s.kind == "module"]
    assert [(c.start_line, c.end_line) for c in chunks] == [(1, 4)]
    assert [i.module for i in imports] == ["os", ""] and imports[1].level == 1
    assert ("LIMIT", 4, -1) in assigns and ("size", 22, symbols.index(by_name["Box"])) in assigns


def test_syntax_error_is_reported_not_raised():
    symbols, _, _, error = parse_python("bad.py", "def broken(:\n    pass\n")
    assert symbols == [] and error and error.startswith("SyntaxError")


def test_split_lines_matches_editor_numbering():
    assert split_lines("a\r\nb\n\nc") == ["a", "b", "", "c"]
    assert split_lines("a\fb\n") == ["a\fb"]  # a form feed is not a line break


def test_merge_spans_and_render_with_exact_line_numbers():
    assert merge_spans([(10, 20), (1, 3), (22, 25), (40, 41)], gap=3) == [(1, 3), (10, 25), (40, 41)]
    assert merge_spans([(5, 9), (6, 7)]) == [(5, 9)]
    lines = [f"line {n}" for n in range(1, 11)]
    text = render_span("a.py", lines, 3, 4)
    assert text == "### a.py lines 3-4\n3|line 3\n4|line 4\n"


def test_patched_lines_are_new_side_numbers():
    patch = textwrap.dedent(
        """\
        diff --git a/m.py b/m.py
        --- a/m.py
        +++ b/m.py
        @@ -10,3 +10,4 @@ def f():
             a = 1
        -    b = 2
        +    b = 3
        +    c = 4
             return a
        """
    )
    assert patched_lines(patch) == {"m.py": [11, 12]}


def test_file_kinds_languages_and_skip_reasons():
    assert classify("src/pkg/core.py") == "source"
    assert classify("tests/test_core.py") == "test" and is_test_path("pkg/core_test.py")
    assert classify("docs/index.md") == "doc"
    assert classify("CHANGES.md") == "changelog"
    assert classify(".github/workflows/ci.yml") == "ci"
    assert classify("examples/demo.py") == "example"
    assert language_of("a/b.pyi") == "python" and language_of("Makefile") == "make"
    assert skip_reason("a.bin", 4, b"ab\0c") == "binary"
    assert skip_reason("a.txt", 2, b"\xff\xfe") == "not UTF-8"
    assert skip_reason("uv.lock", 2, b"{}") == "lock file"
    assert skip_reason("pkg/_vendor/six.py", 2, b"x") == "vendored"
    assert skip_reason("big.py", 10, b"x" * 10, max_bytes=5).startswith("huge")
    assert skip_reason("ok.py", 1, b"x") is None


def test_module_names_imports_and_tests_of():
    paths = ["src/pkg/__init__.py", "src/pkg/core.py", "src/pkg/util.py", "tests/test_core.py", "tests/test_misc.py"]
    modules = module_names(paths)
    assert modules["src/pkg/core.py"] == "pkg.core" and modules["src/pkg/__init__.py"] == "pkg"
    assert modules["tests/test_core.py"] == "test_core"
    imports = {
        "src/pkg/core.py": [ImportRef("util", ("helper",), 1, 1)],
        "src/pkg/__init__.py": [ImportRef("", ("core",), 1, 1)],
        "tests/test_misc.py": [ImportRef("pkg.util", ("helper",), 0, 1)],
        "tests/test_core.py": [ImportRef("pkg", (), 0, 1)],
        "src/pkg/util.py": [],
    }
    forward, backward = build_graph(modules, imports)
    assert forward["src/pkg/core.py"] == ["src/pkg/util.py"]
    assert forward["src/pkg/__init__.py"] == ["src/pkg/core.py"]
    assert forward["tests/test_misc.py"] == ["src/pkg/util.py"]
    tests = ["tests/test_core.py", "tests/test_misc.py"]
    assert linked_tests("src/pkg/core.py", tests, backward) == [("tests/test_core.py", "named after it")]
    assert linked_tests("src/pkg/util.py", tests, backward) == [("tests/test_misc.py", "imports it")]
