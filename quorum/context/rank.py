"""Rank files and regions for a task (pure over a built index; reads the text of a few top files), each
with the reasons it was chosen.

Region (= symbol: function, method, class's own lines, module top-level chunk, text chunk) score:

    W_BM25 * bm25(region) / max bm25(region)                          lexical (task tokens + 0.5 * abbreviations;
                                                                      the category word of an exception the repo
                                                                      does not define left out: BytesWarning -/-> warn)
  + sum over task identifiers naming it   W_* / (1 + ln(#places with that name))
        dotted name `A.b` or module path + name (3.0) > code identifier (1.5) > assignment (0.8)
        > parameter (0.6) > plain word equal to a defined name (0.5)
  + an exception class named in the task counts 0.4x at its definition, and the regions that raise or
    handle it get W_CODE_REF; so do the regions using a name that nothing in the repository defines
    (an outside API such as `urlopen`)
  + W_FRAME for the innermost definition around a traceback frame's line (+ the frame's function by name),
    the innermost frame counting most
  + W_MESSAGE when a string literal in it matches an error message quoted in the task

File score, multiplied by a prior for the file's kind (source 1, build 0.5, test 0.55, example 0.45,
doc 0.35, config 0.3, changelog/ci 0.2):

    best region + W_SECOND * (next two regions) + path named in the task + module named in the task
  + W_GRAPH * the best-ranked file it imports or is imported by

Then, for region order only (files are already ranked), the 20 best source functions pass a share of
their score along the call graph: W_CALLEE to the functions they call, W_CALLER to their callers (same
file or a file linked by an import). Test files linked to a top-ranked source file (by import or by
name) say so in their reasons.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .graph import linked_tests
from .index import RepoIndex
from .lexical import bm25_scores, expand, expansions
from .models import RankedFile, RankedRegion, Symbol
from .query import Query, parse_query

KIND_PRIOR = {
    "source": 1.0, "test": 0.55, "build": 0.5, "example": 0.45, "doc": 0.35, "changelog": 0.2, "config": 0.3, "ci": 0.2,
    "other": 0.3,
}  # fmt: skip


@dataclass(frozen=True)
class Weights:
    bm25: float = 1.0
    second: float = 0.15
    dotted: float = 3.0
    code_def: float = 1.5
    code_param: float = 0.6
    code_assign: float = 0.8
    word_def: float = 0.5
    code_ref: float = 1.0
    exception_def: float = 0.4  # an exception class named in the task: its definition counts this much...
    expansion: float = 0.5  # abbreviations of task words (regex -> re)
    frame: float = 4.0
    frame_function: float = 2.0
    message: float = 2.5
    path: float = 3.0
    module: float = 1.0
    graph: float = 0.1
    callee: float = 0.3  # share of a top region's score given to the functions it calls
    caller: float = 0.15  # ...and to the functions that call it
    propagate_from: int = 20  # how many top regions pass score along the call graph


DEFAULT_WEIGHTS = Weights()


@dataclass
class Ranking:
    query: Query
    files: list[RankedFile]
    regions: list[RankedRegion]
    region_scores: dict[tuple[str, int], float] = field(default_factory=dict)  # (path, symbol) -> score

    def file_rank(self, path: str) -> int | None:
        for i, f in enumerate(self.files):
            if f.path == path:
                return i + 1
        return None


def _specificity(n: int) -> float:
    return 1.0 / (1.0 + math.log(max(n, 1)))


def innermost(symbols: list[Symbol], line: int) -> int | None:
    """Number of the smallest definition (or chunk) whose span holds `line`."""
    best, best_len = None, None
    for i, sym in enumerate(symbols):
        if sym.start_line <= line <= sym.end_line:
            length = sym.end_line - sym.start_line
            if best_len is None or length < best_len or (length == best_len and sym.kind != "module"):
                best, best_len = i, length
    return best


_EXC_SUFFIXES = ("Error", "Exception", "Warning", "Exit", "Interrupt")


def is_exception_name(name: str) -> bool:
    return name[:1].isupper() and name.endswith(_EXC_SUFFIXES)


def is_exception_class(index: RepoIndex, path: str, number: int, _depth: int = 0) -> bool:
    """A class whose bases are (transitively, by name within the repository) an exception."""
    sym = index.symbol(path, number)
    if sym.kind != "class":
        return False
    if is_exception_name(sym.name):
        return True
    _, _, rest = sym.signature.partition("(")
    bases = [b.strip().split("[")[0].rsplit(".", 1)[-1] for b in rest.rstrip(")").split(",") if b.strip()]
    for base in bases:
        if "=" in base:
            continue
        if is_exception_name(base) or base in ("BaseException", "Exception"):
            return True
        if _depth < 6:
            for p, i in index.defs.get(base, []):
                if (p, i) != (path, number) and is_exception_class(index, p, i, _depth + 1):
                    return True
    return False


def generic_suffixes_dropped(q: Query, index: RepoIndex) -> list[str]:
    """The task's BM25 tokens without the category word of an exception or warning the repository does not
    define (`BytesWarning` -> 'byt' and the compound stay, 'warn' goes): every module warns or raises, so
    the suffix matches everywhere and says nothing about where the code is. A category word the task uses
    on its own ('a warning is shown') stays."""
    drop: set[str] = set()
    for name in q.code:
        if is_exception_name(name) and name not in index.defs:
            suffix = next(s for s in _EXC_SUFFIXES if name.endswith(s))
            drop.update(expand(suffix))
    prose = {t for word in q.words for t in expand(word)}
    return [t for t in q.tokens if t not in drop or t in prose]


def references(index: RepoIndex, name: str) -> list[int]:
    """Units whose text holds the identifier `name` (by its whole-identifier token)."""
    toks = expand(name)
    if not toks:
        return []
    scores = bm25_scores(index.unit_bm25, [toks[-1]])
    if not scores.size:
        return []
    # module top-level chunks are mostly imports: an import is not a use
    return [int(u) for u in np.nonzero(scores > 0)[0] if index.symbol(*index.units[u]).kind != "module"]


def match_paths(index: RepoIndex, mentioned: str) -> list[str]:
    """Every repository file a mentioned path may be: all those sharing its longest matching suffix
    (`__init__.py` alone matches every package's; `pkg/__init__.py` fewer). A bare name must match whole."""
    parts = [p for p in mentioned.replace("\\", "/").split("/") if p and p != "."]
    if not parts:
        return []
    best: list[str] = []
    best_n = 0
    for path in index.indexed:
        tail = path.split("/")
        n = 0
        while n < min(len(tail), len(parts)) and tail[-1 - n] == parts[-1 - n]:
            n += 1
        if n and n == best_n:
            best.append(path)
        elif n > best_n:
            best, best_n = [path], n
    return sorted(best)


def match_path(index: RepoIndex, mentioned: str) -> str | None:
    """The repository file a mentioned (possibly absolute or site-packages) path is, by longest suffix."""
    parts = [p for p in mentioned.replace("\\", "/").split("/") if p and p != "."]
    if not parts:
        return None
    best, best_n = None, 0
    for path in index.indexed:
        tail = path.split("/")
        n = 0
        while n < min(len(tail), len(parts)) and tail[-1 - n] == parts[-1 - n]:
            n += 1
        if n > best_n or (n == best_n and n and best is not None and len(path) < len(best)):
            best, best_n = path, n
    return best if best_n else None


def _literal_matches(literal: str, messages_lower: list[str]) -> bool:
    import re

    pieces = [p.strip().lower() for p in re.split(r"\{[^}]*\}|%\(?\w*\)?[sdrfi]|%s", literal)]
    pieces = [p for p in pieces if len(p) >= 10]
    return any(p in m for p in pieces for m in messages_lower) or any(
        len(m) >= 10 and m in literal.lower() for m in messages_lower
    )


_CALLED = re.compile(r"(?:^|[^\w.])(self\.|cls\.|super\(\)\.)?([A-Za-z_]\w*)\s*\(|\.([A-Za-z_]\w*)\s*\(")


def called_names(text: str) -> set[tuple[str, str]]:
    """What a piece of code calls, as (how, name): ('plain', f) for f(...), ('self', f) for self.f(...),
    cls.f(...) and super().f(...), ('attr', f) for obj.f(...)."""
    out = set()
    for prefix, name, attr in _CALLED.findall(text):
        if attr:
            out.add(("attr", attr))
        else:
            out.add(("self" if prefix else "plain", name))
    return out


def _callees(index: RepoIndex, caller: Symbol, how: str, name: str, near: set[str]) -> list[tuple[str, int]]:
    """Definitions a call may reach: `self.f()` a method of the caller's class (or one of the same name
    elsewhere in the file when the class does not define it); `f()` a function or class; `obj.f()` any
    method of that name, when few exist (a common name like `write` says nothing)."""
    hits = [(p, j) for p, j in index.defs.get(name, []) if p in near]
    if how == "self":
        owner = caller.qualname.rsplit(".", 1)[0] if caller.kind == "method" else ""
        own = [(p, j) for p, j in hits if p == caller.path and index.symbol(p, j).qualname == f"{owner}.{name}"]
        return own or [(p, j) for p, j in hits if p == caller.path and index.symbol(p, j).kind == "method"]
    if how == "plain":
        return [(p, j) for p, j in hits if index.symbol(p, j).kind in ("function", "class")]
    return hits if len(hits) <= 3 else []


def _propagate(index: RepoIndex, region: dict, reasons: dict, add, w: Weights) -> None:
    kinds = ("function", "method")
    top = []
    for (path, i), score in sorted(region.items(), key=lambda kv: -kv[1]):
        entry = index.files.get(path)
        if entry is None or entry.kind != "source":
            continue
        sym = index.symbol(path, i)
        if sym.kind in kinds:
            top.append((path, i, score))
        if len(top) >= w.propagate_from:
            break
    texts: dict[str, list[str]] = {}

    def lines_of(path: str) -> list[str]:
        if path not in texts:
            try:
                texts[path] = index.text(path).split("\n")
            except (OSError, UnicodeDecodeError):
                texts[path] = []
        return texts[path]

    for path, i, score in top:
        sym = index.symbol(path, i)
        near = {path, *index.imports.get(path, []), *index.imported_by.get(path, [])}
        if w.callee:
            body = "\n".join(lines_of(path)[sym.start_line - 1 : sym.end_line])
            for how, name in called_names(body):
                if name == sym.name:
                    continue
                hits = _callees(index, sym, how, name, near)
                if not hits:
                    continue
                spec = _specificity(len(hits))
                for p, j in hits:
                    add((p, j), w.callee * score * spec, f"called by `{sym.qualname}`")
        if w.caller and not sym.name.startswith("__") and len(sym.name) > 3:
            call = re.compile(r"(?<![\w])" + re.escape(sym.name) + r"\s*\(")
            refs = []
            for u in references(index, sym.name):
                p, j = index.units[u]
                if p not in near or (p, j) == (path, i):
                    continue
                caller = index.symbol(p, j)
                if caller.kind not in kinds:
                    continue
                if call.search("\n".join(lines_of(p)[caller.start_line - 1 : caller.end_line])):
                    refs.append((p, j))
            if refs and len(refs) <= 30:
                spec = _specificity(len(refs))
                for p, j in refs:
                    add((p, j), w.caller * score * spec, f"calls `{sym.qualname}`")


def rank(
    index: RepoIndex, task: str | Query, weights: Weights = DEFAULT_WEIGHTS, *, max_regions: int = 1000
) -> Ranking:
    """Files (all indexed ones: those without evidence last, score 0) and the best `max_regions` regions."""
    q = task if isinstance(task, Query) else parse_query(task)
    w = weights
    region: dict[tuple[str, int], float] = {}
    reasons: dict[tuple[str, int], list[str]] = {}
    file_bonus: dict[str, float] = {}
    file_reasons: dict[str, list[str]] = {}

    def add(key: tuple[str, int], score: float, reason: str) -> None:
        region[key] = region.get(key, 0.0) + score
        reasons.setdefault(key, []).append(reason)

    def add_file(path: str, score: float, reason: str) -> None:
        file_bonus[path] = file_bonus.get(path, 0.0) + score
        file_reasons.setdefault(path, []).append(reason)

    # ---- lexical
    extra = [t for word in dict.fromkeys(q.words) for t in expansions(word) if t not in q.tokens]
    query_tokens = generic_suffixes_dropped(q, index)
    unit_scores = bm25_scores(index.unit_bm25, query_tokens) if index.units else np.zeros(0)
    if extra and unit_scores.size:
        unit_scores = unit_scores + w.expansion * bm25_scores(index.unit_bm25, extra)
    if unit_scores.size and unit_scores.max() > 0:
        top = float(unit_scores.max())
        for u in np.nonzero(unit_scores > 0.05 * top)[0]:
            s = float(unit_scores[u])
            add(index.units[u], w.bm25 * s / top, f"bm25 region {s:.1f}")

    # ---- identifiers named in the task, matched to definitions
    lower_defs: dict[str, list[str]] | None = None
    seen_names: set[str] = set()
    for name in q.code:
        if name.lower() in seen_names:  # `InvalidUrl` and `InvalidURL` are one lookup
            continue
        seen_names.add(name.lower())
        hits = index.defs.get(name)
        if not hits:
            if lower_defs is None:
                lower_defs = {}
                for key in index.defs:
                    lower_defs.setdefault(key.lower(), []).append(key)
            hits = [h for k in lower_defs.get(name.lower(), []) for h in index.defs[k]]
        exception = is_exception_name(name) or any(is_exception_class(index, p, i) for p, i in (hits or []))
        if hits:
            spec = _specificity(len(hits)) * (w.exception_def if exception else 1.0)
            for path, i in hits:
                add((path, i), w.code_def * spec, f"defines `{index.symbol(path, i).qualname}` named in task")
        if exception or not hits:
            # ...and the code that raises or handles it counts; so does the code that uses an outside API
            defined = set(hits or [])
            refs = [u for u in references(index, name) if index.units[u] not in defined]
            if refs and len(refs) <= 50:
                spec = _specificity(len(refs))
                verb = "raises or handles" if exception else "uses"
                for u in refs:
                    add(index.units[u], w.code_ref * spec, f"{verb} `{name}` named in task")
        phits = index.params.get(name, [])
        if phits:
            spec = _specificity(len(phits))
            for path, i in phits:
                add((path, i), w.code_param * spec, f"parameter `{name}` named in task")
        ahits = index.assigns.get(name, [])
        if ahits:
            spec = _specificity(len(ahits))
            for path, line, owner in ahits:
                target = owner if owner >= 0 else innermost(index.symbols(path), line)
                if target is not None:
                    add((path, target), w.code_assign * spec, f"assigns `{name}` named in task")
    for word in q.words:
        hits = index.defs.get(word, [])
        if hits:
            spec = _specificity(len(hits))
            for path, i in hits:
                add((path, i), w.word_def * spec, f"defines `{word}` (word in task)")
    # dotted names: Class.method, module.name, package.module.Class
    if q.dotted:
        by_module = {m: p for p, m in index.module_of.items()}
        for dotted in q.dotted:
            parts = dotted.split(".")
            for cut in range(1, len(parts)):
                module, rest = ".".join(parts[:cut]), parts[cut:]
                path = by_module.get(module)
                if path:
                    named = [i for i, sym in enumerate(index.symbols(path)) if sym.qualname == ".".join(rest)]
                    factor = w.exception_def if any(is_exception_class(index, path, i) for i in named) else 1.0
                    add_file(path, w.module * factor, f"module `{module}` named in task")
                    for i in named:
                        add((path, i), w.dotted * factor, f"`{dotted}` named in task")
            if len(parts) >= 2:
                tail = ".".join(parts[-2:])
                hits = [(p, i) for p, i in index.defs.get(parts[-1], []) if index.symbol(p, i).qualname.endswith(tail)]
                for path, i in hits:
                    factor = w.exception_def if is_exception_class(index, path, i) else 1.0
                    add((path, i), w.dotted * factor * _specificity(len(hits)), f"defines `{tail}` named in task")
    # ---- paths and traceback frames
    for mentioned in q.paths:
        matches = match_paths(index, mentioned)
        for path in matches:
            add_file(path, w.path * _specificity(len(matches)), f"path `{mentioned}` named in task")
    n_frames = len(q.frames)
    for depth, frame in enumerate(q.frames):
        path = match_path(index, frame.path)
        if not path:
            continue
        symbols = index.symbols(path)
        closeness = 0.5 + 0.5 * (depth + 1) / n_frames  # the innermost frame counts most
        target = innermost(symbols, frame.line) if frame.line else None
        if target is not None:
            add((path, target), w.frame * closeness, f"traceback frame line {frame.line}")
        if frame.function:
            for i, sym in enumerate(symbols):
                if sym.name == frame.function and i != target:
                    add((path, i), w.frame_function * closeness, f"traceback frame in `{frame.function}`")
        add_file(path, 0.5 * w.frame * closeness, f"traceback frame {frame.path}:{frame.line}")
    # ---- error messages against string literals
    if q.messages:
        lowered = [m.lower() for m in q.messages]
        for path, packed in index.indexed.items():
            if not packed.literals:
                continue
            for line, literal in packed.literals:
                if _literal_matches(literal, lowered):
                    target = innermost(index.symbols(path), line)
                    if target is not None:
                        add((path, target), w.message, f"string at line {line} matches the task's message")

    # ---- files (from the regions' own evidence: the call graph below only orders regions)
    per_file: dict[str, list[float]] = {}
    for (path, i), score in region.items():
        per_file.setdefault(path, []).append(score)
    candidates = set(per_file) | set(file_bonus)
    raw: dict[str, float] = {}
    for path in candidates:
        scores = sorted(per_file.get(path, []), reverse=True)
        base = scores[0] if scores else 0.0
        base += w.second * sum(scores[1:3]) + file_bonus.get(path, 0.0)
        raw[path] = base
    prior = {p: KIND_PRIOR.get(index.files[p].kind, 0.3) if p in index.files else 0.3 for p in candidates}
    final = {p: raw[p] * prior[p] for p in candidates}
    if w.graph and final:
        neighbours: dict[str, float] = {}
        for p in candidates:
            linked = index.imports.get(p, []) + index.imported_by.get(p, [])
            best = max((final.get(x, 0.0) for x in linked), default=0.0)
            if best:
                neighbours[p] = best
        for p, best in neighbours.items():
            final[p] += w.graph * best * prior[p]
    order = sorted(final, key=lambda p: (-final[p], p))

    # the file's evidence, as it stood for its score (before the call graph below)
    by_path: dict[str, list[tuple[float, int]]] = {}
    for (path, i), score in region.items():
        by_path.setdefault(path, []).append((score, i))
    evidence = {key: list(why) for key, why in reasons.items()}

    # ---- call graph around the best regions (same file, or files it imports / is imported by)
    if w.callee or w.caller:
        _propagate(index, region, reasons, add, w)
    files: list[RankedFile] = []
    top_sources = [p for p in order[:5] if index.files[p].kind == "source"] if order else []
    test_links: dict[str, str] = {}
    test_paths = [p for p, e in index.files.items() if e.kind == "test" and not e.skip]
    for src in top_sources:
        for test, how in linked_tests(src, test_paths, index.imported_by):
            test_links.setdefault(test, f"test of ranked module {src} ({how})")
    for p in order:
        why: list[str] = []
        for s, i in sorted(by_path.get(p, []), reverse=True)[:2]:
            sym = index.symbol(p, i)
            label = (
                sym.qualname
                if sym.kind not in ("module", "text")
                else f"{sym.qualname} {sym.start_line}-{sym.end_line}"
            )
            why.append(f"region {label} {s:.2f}: " + "; ".join(dict.fromkeys(evidence[(p, i)]))[:200])
        why.extend(file_reasons.get(p, []))
        if p in test_links:
            why.append(test_links[p])
        kind = index.files[p].kind
        if kind != "source":
            why.append(f"{kind} file (x{prior[p]:g})")
        files.append(RankedFile.model_construct(path=p, score=round(float(final[p]), 4), reasons=why))
    ranked = set(order)  # the ranking is complete: files without evidence follow, by path
    files.extend(
        RankedFile.model_construct(path=p, score=0.0, reasons=[]) for p in sorted(index.indexed) if p not in ranked
    )
    regions = []
    ordered_regions = sorted(region.items(), key=lambda kv: (-kv[1] * prior.get(kv[0][0], 0.3), kv[0]))
    for (path, i), score in ordered_regions[:max_regions]:
        sym = index.symbol(path, i)
        regions.append(
            RankedRegion.model_construct(
                path=path,
                qualname=sym.qualname,
                kind=sym.kind,
                start_line=sym.start_line,
                end_line=sym.end_line,
                score=round(float(score) * prior.get(path, 0.3), 4),
                reasons=list(dict.fromkeys(reasons[(path, i)])),
            )
        )
    return Ranking(query=q, files=files, regions=regions, region_scores=region)
