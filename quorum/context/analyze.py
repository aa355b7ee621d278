"""One file's content -> what the index keeps about it (pure): symbols, units (lexical regions) and their tokens."""

from __future__ import annotations

from .lexical import token_string
from .models import FileParse, Symbol
from .python_symbols import literals, own_spans, parse_python, split_lines, text_chunks

# Languages whose content is indexed lexically; other text files are listed (paths) but not searched.
TEXT_INDEXED = {
    "python", "cython", "markdown", "rst", "text", "toml", "ini", "yaml", "json", "javascript", "typescript",
    "c", "cpp", "go", "rust", "java", "kotlin", "ruby", "php", "shell", "html", "css", "sql", "make", "docker",
    "fortran", "xml",
}  # fmt: skip


def analyze(path: str, sha: str, text: str, language: str) -> FileParse:
    if language not in TEXT_INDEXED:  # listed, not searched
        return FileParse(
            sha=sha, chars=len(text), lines=text.count("\n") + (0 if not text or text.endswith("\n") else 1)
        )
    lines = split_lines(text)
    result = FileParse(sha=sha, chars=len(text), lines=len(lines))
    if language == "python":
        symbols, imports, assigns, error = parse_python(path, text)
        result.imports, result.assigns, result.syntax_error = imports, assigns, error
        if error is None:
            result.literals = literals(text)
    else:
        symbols = []
    if not symbols and language in TEXT_INDEXED:
        symbols = text_chunks(path, lines)
    result.symbols = symbols
    children: dict[int, list[Symbol]] = {}
    for sym in symbols:
        if sym.parent >= 0:
            children.setdefault(sym.parent, []).append(sym)
    for i, sym in enumerate(symbols):
        spans = (
            own_spans(sym, children.get(i, []))
            if sym.kind in ("class", "function", "method")
            else ((sym.start_line, sym.end_line),)
        )
        if len(spans) > 1:  # the blank lines between a class's methods are not worth a region
            spans = tuple(sp for sp in spans if any(lines[n - 1].strip() for n in range(sp[0], sp[1] + 1))) or spans[:1]
        sym.spans = spans
        if len(spans) == 1:
            bag = token_string("\n".join(lines[spans[0][0] - 1 : spans[0][1]]))
        else:
            bag = token_string("\n".join(line for start, end in spans for line in lines[start - 1 : end]))
        if sym.parent >= 0:  # a method's region also answers to its class's name
            bag += token_string(symbols[sym.parent].name)
        result.unit_tokens.append(bag)
    return result
