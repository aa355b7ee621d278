"""Python structure from `ast` (pure): classes and functions (methods and nested ones too) with signature,
first docstring line and line span (decorators included), module top-level chunks, imports, top-level and
class-level assignments, and message-like string literals.

Only statements are walked (not expressions), which keeps parsing close to the cost of `ast.parse`.
"""

from __future__ import annotations

import ast
import re

from quorum.domain.python_ast import parse_module

from .models import ImportRef, Symbol

MAX_CHUNK_LINES = 120  # a module top-level gap longer than this is cut into chunks of this size
_STRING = re.compile(r"""(?:"([^"\\\n]{10,300})"|'([^'\\\n]{10,300})')""")
_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try)
_TRYSTAR = getattr(ast, "TryStar", None)
_MATCH = getattr(ast, "Match", None)


def _header(lines: list[str], node: ast.AST) -> tuple[str, int]:
    """The definition's header as one line (decorators excluded) and the line where it ends."""
    body0 = node.body[0]
    if body0.lineno > node.lineno:
        raw = lines[node.lineno - 1 : body0.lineno - 1]
        end = body0.lineno - 1
        while len(raw) > 1 and (not raw[-1].strip() or raw[-1].lstrip().startswith("#")):
            raw.pop()
            end -= 1
    else:
        raw = [lines[node.lineno - 1][: body0.col_offset]]
        end = node.lineno
    text = " ".join(
        part.split("#", 1)[0] if "#" in part and "'" not in part and '"' not in part else part for part in raw
    )
    text = " ".join(text.split()).rstrip()
    if text.endswith(":"):
        text = text[:-1].rstrip()
    if len(text) > 400:
        text = text[:397] + "..."
    return text, end


def _doc(node: ast.AST) -> tuple[str, int]:
    """First non-empty docstring line and the docstring's last line (0 when there is none)."""
    body0 = node.body[0] if getattr(node, "body", None) else None
    if isinstance(body0, ast.Expr) and isinstance(body0.value, ast.Constant) and isinstance(body0.value.value, str):
        for line in body0.value.value.splitlines():
            if line.strip():
                first = line.strip()
                return (first[:157] + "..." if len(first) > 160 else first), body0.end_lineno or body0.lineno
        return "", body0.end_lineno or body0.lineno
    return "", 0


def _params(args: ast.arguments) -> tuple[str, ...]:
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    if args.vararg:
        names.append(args.vararg.arg)
    if args.kwarg:
        names.append(args.kwarg.arg)
    return tuple(n for n in names if n not in ("self", "cls"))


def _assign_names(stmt: ast.stmt) -> list[str]:
    targets: list[ast.expr] = []
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets = [stmt.target]
    names: list[str] = []
    for target in targets:
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            names.extend(e.id for e in target.elts if isinstance(e, ast.Name))
    return names


class _Collector:
    def __init__(self, path: str, lines: list[str]):
        self.path = path
        self.lines = lines
        self.symbols: list[Symbol] = []
        self.imports: list[ImportRef] = []
        self.assigns: list[tuple[str, int, int]] = []

    def body(self, stmts: list[ast.stmt], parent: int, in_class: bool) -> None:
        for stmt in stmts:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.definition(stmt, parent, in_class)
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    self.imports.append(ImportRef(alias.name, (), 0, stmt.lineno))
            elif isinstance(stmt, ast.ImportFrom):
                self.imports.append(
                    ImportRef(stmt.module or "", tuple(a.name for a in stmt.names), stmt.level or 0, stmt.lineno)
                )
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                if parent < 0 or in_class:
                    for name in _assign_names(stmt):
                        self.assigns.append((name, stmt.lineno, parent))
            elif isinstance(stmt, _COMPOUND) or (_TRYSTAR and isinstance(stmt, _TRYSTAR)):
                for attr in ("body", "orelse", "finalbody"):
                    self.body(getattr(stmt, attr, None) or [], parent, in_class)
                for handler in getattr(stmt, "handlers", None) or []:
                    self.body(handler.body, parent, in_class)
            elif _MATCH and isinstance(stmt, _MATCH):
                for case in stmt.cases:
                    self.body(case.body, parent, in_class)

    def definition(self, node: ast.AST, parent: int, in_class: bool) -> None:
        is_class = isinstance(node, ast.ClassDef)
        start = min([node.lineno] + [d.lineno for d in node.decorator_list])
        prefix = self.symbols[parent].qualname + "." if parent >= 0 else ""
        signature, header_end = _header(self.lines, node)
        doc, _ = _doc(node)
        kind = "class" if is_class else ("method" if in_class else "function")
        self.symbols.append(
            Symbol(
                path=self.path,
                qualname=prefix + node.name,
                name=node.name,
                kind=kind,
                start_line=start,
                end_line=node.end_lineno or node.lineno,
                signature=signature,
                doc=doc,
                parent=parent,
                params=() if is_class else _params(node.args),
                header_end=header_end,
            )
        )
        index = len(self.symbols) - 1
        self.body(node.body, index, is_class)


def parse_python(path: str, text: str) -> tuple[list[Symbol], list[ImportRef], list[tuple[str, int, int]], str | None]:
    """Symbols (definitions first, then module top-level chunks), imports, assignments, syntax error."""
    lines = split_lines(text)
    try:
        tree = parse_module(text, path)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return [], [], [], f"{type(exc).__name__}: {exc}"[:200]
    collector = _Collector(path, lines)
    collector.body(tree.body, -1, False)
    symbols = collector.symbols
    symbols.extend(module_chunks(path, lines, [(s.start_line, s.end_line) for s in symbols if s.parent < 0]))
    return symbols, collector.imports, collector.assigns, None


def module_chunks(path: str, lines: list[str], top_spans: list[tuple[int, int]]) -> list[Symbol]:
    """The module's top level outside definitions, as '<module>' symbols of at most MAX_CHUNK_LINES lines."""
    n = len(lines)
    covered = bytearray(n + 2)
    for start, end in top_spans:
        for line in range(start, min(end, n) + 1):
            covered[line] = 1
    chunks: list[Symbol] = []
    line = 1
    while line <= n:
        if covered[line]:
            line += 1
            continue
        start = line
        while line <= n and not covered[line]:
            line += 1
        end = line - 1
        while start <= end and not lines[start - 1].strip():
            start += 1
        while end >= start and not lines[end - 1].strip():
            end -= 1
        for piece_start in range(start, end + 1, MAX_CHUNK_LINES):
            piece_end = min(end, piece_start + MAX_CHUNK_LINES - 1)
            chunks.append(Symbol(path=path, qualname="<module>", name="<module>", kind="module",
                                 start_line=piece_start, end_line=piece_end, header_end=piece_start))  # fmt: skip
    return chunks


def text_chunks(path: str, lines: list[str], size: int = 60) -> list[Symbol]:
    """Fixed-size line windows of a non-Python (or unparsable) file, as '<text>' symbols."""
    out = []
    for start in range(1, len(lines) + 1, size):
        end = min(len(lines), start + size - 1)
        out.append(Symbol(path=path, qualname="<text>", name="<text>", kind="text", start_line=start, end_line=end,
                          header_end=start))  # fmt: skip
    return out


def own_spans(sym: Symbol, children: list[Symbol]) -> tuple[tuple[int, int], ...]:
    """Lines of `sym` minus those of its direct children (the definitions nested in it)."""
    holes = sorted((c.start_line, c.end_line) for c in children)
    spans: list[tuple[int, int]] = []
    cursor = sym.start_line
    for start, end in holes:
        if start > cursor:
            spans.append((cursor, start - 1))
        cursor = max(cursor, end + 1)
    if cursor <= sym.end_line:
        spans.append((cursor, sym.end_line))
    return tuple(spans) or ((sym.start_line, sym.start_line),)


def literals(text: str) -> list[tuple[int, str]]:
    """Message-like string literals (10+ chars, with a space) and their line: matched against error text."""
    out = []
    line, last = 1, 0
    for match in _STRING.finditer(text):
        value = match.group(1) or match.group(2)
        if " " in value.strip():
            line += text.count("\n", last, match.start())
            last = match.start()
            out.append((line, value))
    return out


def split_lines(text: str) -> list[str]:
    """Lines as editors, `sed -n` and `ast` number them ('\n' separated, a final '\r' dropped)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]
