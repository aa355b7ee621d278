"""The lexical index: tokens shared by the index and the query (pure), and BM25 over regions (`bm25s`).

An identifier yields its parts split at `_`, camelCase and digits, lower-cased and lightly stemmed,
plus the whole compound (`prompt_suffix`, `helpformatter`) so that an exact identifier match scores
above a match on its parts. English and Python stop words are dropped.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from functools import lru_cache

import bm25s
import numpy as np

# bm25s sets its own logger to DEBUG at import, so every index build would reach the run's log handlers.
logging.getLogger("bm25s").setLevel(logging.WARNING)

WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

STOP_WORDS = frozenset(
    """
    a an the and or not no nor but if then else elif of to in on at by for from with as is are was were be
    been being it its this that these those there here we you they he she i me my our your their them us
    do does did done doing have has had having will would shall should can could may might must also only
    just so than too very when where which who whom whose what why how all any each both few more most other
    some such own same into onto over under again further once about above below between through during
    before after up down out off until while because per via vs etc eg ie
    def self cls return none true false import class pass raise try except finally lambda yield global
    nonlocal assert del elif async await args kwargs
    """.split()
)

_SUFFIXES = (
    "ations", "ation", "ities", "ity", "ions", "ion", "ings", "ing", "ers", "er", "ed", "es", "ly", "s", "e",
)  # fmt: skip


def stem(word: str) -> str:
    """A light suffix stripper that conflates the forms a task and code use for one idea:
    parse/parsing/parsed/parser -> 'pars', complete/completion/completions -> 'complet',
    validity/valid -> 'valid', entries/entry -> 'entry'."""
    if len(word) > 4 and word.endswith(("ies", "ied")):
        return word[:-3] + "y"
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                return word
            base = word[: -len(suffix)]
            if suffix[0] in "ie" and len(base) > 3 and base[-1] == base[-2] and base[-1] not in "lsz":
                base = base[:-1]  # formatter -> format, running -> run
            return base
    return word


# Words and the abbreviations code uses for them: a task says "regex", code says `_RE`.
_ABBREVIATIONS = {
    "regex": "re regexp", "regexp": "re regex", "expression": "expr", "directory": "dir",
    "configuration": "config cfg conf",
    "config": "configuration cfg", "argument": "arg", "parameter": "param", "attribute": "attr",
    "environment": "env", "variable": "var", "function": "func", "initialize": "init", "initialization": "init",
    "length": "len", "string": "str", "integer": "int", "dictionary": "dict", "boolean": "bool",
    "temporary": "tmp temp", "authentication": "auth", "authorization": "auth", "error": "err",
    "exception": "exc", "object": "obj", "source": "src", "destination": "dst dest", "number": "num",
    "index": "idx", "value": "val", "callback": "cb", "context": "ctx", "command": "cmd", "previous": "prev",
    "current": "cur", "character": "char", "message": "msg", "information": "info", "address": "addr",
    "reference": "ref", "maximum": "max", "minimum": "min", "utility": "util", "utilities": "utils",
    "application": "app", "package": "pkg", "library": "lib", "document": "doc", "documentation": "docs",
    "specification": "spec", "description": "desc", "option": "opt", "execute": "exec", "evaluate": "eval",
    "iterator": "iter", "separator": "sep", "delimiter": "delim", "position": "pos", "response": "resp",
    "request": "req", "sequence": "seq", "buffer": "buf", "password": "passwd pwd", "identifier": "ident",
    "repository": "repo", "certificate": "cert", "protocol": "proto", "statistics": "stats",
    "connection": "conn", "database": "db", "python": "py", "template": "tpl tmpl", "previously": "prev",
    "property": "prop", "properties": "props", "generator": "gen", "default": "dflt", "filename": "fname",
    "pathname": "path",
}  # fmt: skip


def expansions(word: str) -> list[str]:
    """Tokens of the abbreviations (or long forms) of a lower-case word, [] when there are none."""
    found = _ABBREVIATIONS.get(word) or _ABBREVIATIONS.get(stem(word))
    return [stem(t) for t in found.split()] if found else []


@lru_cache(maxsize=200_000)
def expand(identifier: str) -> tuple[str, ...]:
    """Tokens of one identifier (see module doc)."""
    parts = [p.lower() for piece in identifier.split("_") if piece for p in _CAMEL.findall(piece)]
    parts = [p for p in parts if not p.isdigit() and len(p) > 1 and p not in STOP_WORDS]
    out = [stem(p) for p in parts]
    whole = identifier.strip("_").lower()
    if len(parts) > 1 and whole not in STOP_WORDS:
        out.append(whole)
    return tuple(out)


_BYTES_LITERAL = re.compile(r"(?<![\w])[bB][rR]?[\"']|(?<![\w])[rR][bB][\"']")
_JOINED: dict[str, str] = {}  # identifier -> its tokens joined with a trailing space ("" when none)


def token_string(text: str) -> str:
    """Lexical tokens of a text, space-separated, as a bag: grouped by identifier (order is not kept)."""
    joined = _JOINED
    parts = []
    counts = Counter(WORD.findall(text))
    n_bytes = len(_BYTES_LITERAL.findall(text)) if "b" in counts or "rb" in counts or "B" in counts else 0
    if n_bytes:  # a bytes literal (b"...") is a use of `bytes`
        counts["bytes"] += n_bytes
    for raw, n in counts.items():
        expanded = joined.get(raw)
        if expanded is None:
            expanded = " ".join(expand(raw))
            expanded = joined[raw] = expanded + " " if expanded else ""
            if len(joined) > 500_000:
                joined.clear()
        if expanded:
            parts.append(expanded * n)
    return "".join(parts)


def tokens(text: str) -> list[str]:
    """Lexical tokens of a text as a bag (see `token_string`)."""
    return token_string(text).split()


def path_tokens(path: str) -> list[str]:
    """Tokens of a path: `src/click/shell_completion.py` -> src, click, shell, completion, shell_completion, py."""
    return tokens(path.replace("/", " ").replace(".", " ").replace("-", "_"))


def build_bm25(ids: list[list[int]], vocab: dict[str, int]) -> bm25s.BM25:
    """A BM25 model (k1 1.2, b 0.75, Lucene idf) over documents given as token ids of `vocab`
    (id 0 is the empty token, the document of a region without tokens)."""
    model = bm25s.BM25(k1=1.2, b=0.75)
    model.index(bm25s.tokenization.Tokenized(ids=ids or [[0]], vocab=vocab), show_progress=False)
    return model


def bm25_scores(model: bm25s.BM25, query_tokens: list[str]) -> np.ndarray:
    """BM25 score of every document for a bag of query tokens (unknown tokens ignored)."""
    vocab = model.vocab_dict or {}
    ids = [vocab[t] for t in query_tokens if t in vocab and t != ""]
    if not ids:
        return np.zeros(int(model.scores.get("num_docs", 0)), dtype=np.float32)
    return model.get_scores_from_ids(ids)
