"""The repository index: built once per tree content and cached (a re-run on an unchanged tree does no work).

Cache (in a directory the caller gives; nothing is written inside the repository):
- `stat-<root>.pkl`: per path (size, mtime_ns, inode, sha1, hashed_at_ns), so a warm run stats the files
  instead of reading them. An entry is trusted only when the file was last modified more than
  `RACY_NS` before it was hashed (git's "racily clean" rule), otherwise the file is hashed again;
- `index-<key>.pkl`: the index, where `key` hashes the index version, the settings and every listed
  path with its content sha1 (or why it was left out). It does not depend on where the tree is, so a
  fresh workspace of the same content loads the same index;
- `parses-<key>.pkl`: per content sha1, the parsed file with its lexical tokens: a rebuild after an
  edit re-parses only the changed files (the BM25 statistics are recomputed over all of them).
"""

from __future__ import annotations

import copy
import gc
import hashlib
import os
import pickle
import threading
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

import bm25s

from . import files as fs
from .analyze import TEXT_INDEXED, analyze
from .graph import build_graph, module_names
from .lexical import build_bm25
from .models import FileEntry, FileParse, Symbol

INDEX_VERSION = "quorum-context-index-4"
RACY_NS = 2_000_000_000
KEEP_INDEXES = 8
PARALLEL_MIN_FILES = 400  # analyse in worker processes when at least this many files are new


@dataclass
class IndexedFile:
    """The cached, packed form of a FileParse (symbols as tuples: fast to unpickle)."""

    sha: str
    chars: int
    lines: int
    symbols: tuple  # Symbol.pack() tuples
    literals: tuple  # (line, string)
    syntax_error: str | None


@dataclass
class RepoIndex:
    root: str
    key: str
    files: dict[str, FileEntry]  # every listed path; `skip` says why a file is not indexed
    indexed: dict[str, IndexedFile]  # the indexed files
    units: list[tuple[str, int]]  # BM25 document order: (path, symbol number); a unit is a symbol's own lines
    unit_bm25: bm25s.BM25
    defs: dict[str, list[tuple[str, int]]]  # definition name -> (path, symbol number)
    params: dict[str, list[tuple[str, int]]]  # parameter name -> (path, symbol number)
    assigns: dict[str, list[tuple[str, int, int]]]  # assigned name -> (path, line, owning symbol number)
    module_of: dict[str, str]  # path -> dotted module
    imports: dict[str, list[str]]  # path -> repository files it imports
    imported_by: dict[str, list[str]]
    stats: dict = field(default_factory=dict)
    _symbols: dict = field(default_factory=dict, repr=False)

    def symbols(self, path: str) -> list[Symbol]:
        """The symbols of an indexed file (definitions, then module chunks / text chunks)."""
        found = self._symbols.get(path)
        if found is None:
            packed = self.indexed.get(path)
            found = [Symbol.unpack(path, t) for t in packed.symbols] if packed else []
            self._symbols[path] = found
        return found

    def symbol(self, path: str, number: int) -> Symbol:
        return self.symbols(path)[number]

    def text(self, path: str) -> str:
        """Current text of a file of the tree (read from disk)."""
        return (Path(self.root) / path).read_text(encoding="utf-8")

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_symbols"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)


# ---------------------------------------------------------------------------------------- tree key


def _root_id(root: str) -> str:
    return hashlib.sha1(os.path.realpath(root).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _atomic_dump(obj: object, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, target)


def _load(path: Path) -> object | None:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError):
        return None


def scan_tree(root: str, cache_dir: Path | None, max_file_bytes: int = fs.MAX_FILE_BYTES):
    """List the tree and content-hash its files (from the stat cache where it can be trusted).

    Returns (rows, fresh, key): `rows` are (path, size, sha1, reason) with reason set for paths that
    are not regular files (symlinks...); `fresh` holds the content of the files that had to be read,
    so that a cold build does not read them twice.
    """
    stat_path = cache_dir / f"stat-{_root_id(root)}.pkl" if cache_dir else None
    cached: dict = (_load(stat_path) if stat_path and stat_path.exists() else None) or {}
    new_cache: dict = {}
    rows: list[tuple[str, int, str, str | None]] = []
    fresh: dict[str, bytes] = {}
    dir_cache: dict[str, bool] = {}
    digest = hashlib.sha1(f"{INDEX_VERSION}\0{max_file_bytes}\0".encode())
    now = time.time_ns()
    for path in fs.list_paths(root):
        st = fs.stat_file(root, path, dir_cache)
        if isinstance(st, str):
            if st != "missing":
                rows.append((path, 0, "", st))
                digest.update(f"{path}\0!{st}\n".encode("utf-8", "surrogateescape"))
            continue
        sig = (st.st_size, st.st_mtime_ns, st.st_ino)
        hit = cached.get(path)
        if hit and hit[:3] == sig and hit[4] - st.st_mtime_ns > RACY_NS:
            sha = hit[3]
            new_cache[path] = hit
        else:
            try:
                data = (Path(root) / path).read_bytes()
            except OSError:
                continue
            sha = hashlib.sha1(data).hexdigest()
            fresh[path] = data
            new_cache[path] = (*sig, sha, now)
        rows.append((path, st.st_size, sha, None))
        digest.update(f"{path}\0{sha}\n".encode("utf-8", "surrogateescape"))
    if stat_path and new_cache != cached:
        _atomic_dump(new_cache, stat_path)
    return rows, fresh, digest.hexdigest()


# ------------------------------------------------------------------------------------------- build


def _analyze_job(job: tuple[str, str, str, str, str | None]) -> tuple:
    """(root, path, sha, language, text or None) -> the packed parse. Workers read the file themselves, so
    only paths travel to them and only tuples travel back."""
    root, path, sha, language, text = job
    if text is None:
        text = (Path(root) / path).read_bytes().decode("utf-8")
    parse = analyze(path, sha, text, language)
    return sha, (pack("", parse), parse.unit_tokens, parse.imports, parse.assigns)


def _start_method() -> str | None:
    """'fork' (cheapest) from a single-threaded process; from a threaded one (a Prefect run: task runner
    threads, its event loop) forking could copy a lock another thread holds, so 'forkserver' (workers forked
    from a fresh server process). None when neither exists here (then the files are analysed in-process)."""
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    if threading.active_count() == 1 and "fork" in methods:
        return "fork"
    return "forkserver" if "forkserver" in methods else None


def _analyze_many(jobs: list[tuple], workers: int) -> list[tuple]:
    if workers > 1 and len(jobs) >= PARALLEL_MIN_FILES:
        import multiprocessing

        method = _start_method()
        if method is not None:
            remote = [(root, path, sha, language, None) for root, path, sha, language, _ in jobs]
            with multiprocessing.get_context(method).Pool(workers, initializer=gc.disable) as pool:
                return pool.map(_analyze_job, remote, chunksize=16)
    return [_analyze_job(job) for job in jobs]


def pack(path: str, parse: FileParse) -> IndexedFile:
    return IndexedFile(parse.sha, parse.chars, parse.lines, tuple(s.pack() for s in parse.symbols),
                       tuple(parse.literals), parse.syntax_error)  # fmt: skip


def build_index(
    repo: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    *,
    max_file_bytes: int = fs.MAX_FILE_BYTES,
    workers: int | None = None,
    memo: MutableMapping[str, RepoIndex] | None = None,
) -> RepoIndex:
    """The index of the tree at `repo`; loaded from `cache_dir` when the tree is unchanged.

    Without `cache_dir` everything is built in memory and nothing is written. With `memo` (a mapping the
    caller keeps, by tree key), an index already in it is returned without unpickling: a copy rooted at
    `repo`, so several workspaces of the same content can each read their own files.
    """
    t0 = time.perf_counter()
    root = os.path.realpath(repo)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"not a directory: {repo}")
    cache = Path(cache_dir) if cache_dir else None
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    gc_was = gc.isenabled()
    gc.disable()  # the index is many small objects: the cyclic collector only slows loading and building
    try:
        rows, fresh, key = scan_tree(root, cache, max_file_bytes)
        if memo is not None and key in memo:
            found = copy.copy(memo[key])
            found.root = root
            found.stats = {**found.stats, "warm": True, "memo": True, "seconds": round(time.perf_counter() - t0, 3)}
            return found
        if cache:
            index_path = cache / f"index-{key[:32]}.pkl"
            if index_path.exists():
                loaded = _load(index_path)
                if isinstance(loaded, RepoIndex) and loaded.key == key:
                    loaded.root = root
                    loaded.stats = {**loaded.stats, "warm": True, "seconds": round(time.perf_counter() - t0, 3)}
                    os.utime(index_path)
                    if memo is not None:
                        memo[key] = loaded
                    return copy.copy(loaded) if memo is not None else loaded
        index = _build(root, cache, rows, fresh, key, max_file_bytes, workers)
    finally:
        if gc_was:
            gc.enable()
    index.stats["seconds"] = round(time.perf_counter() - t0, 3)
    index.stats["warm"] = False
    if memo is not None:
        memo[key] = index
        return copy.copy(index)
    return index


def _build(root, cache, rows, fresh, key, max_file_bytes, workers) -> RepoIndex:
    store: dict[str, tuple[IndexedFile, list[str], list]] = {}  # sha -> (packed, unit tokens, imports)
    if cache:
        previous = sorted(cache.glob("parses-*.pkl"), key=lambda p: p.stat().st_mtime, reverse=True)
        if previous:
            saved = _load(previous[0])
            if isinstance(saved, dict) and saved.get("version") == INDEX_VERSION:
                store = saved["files"]
    entries: dict[str, FileEntry] = {}
    jobs: list[tuple[str, str, str, str, str]] = []
    vendored = fs.vendored_dirs([row[0] for row in rows])
    for path, size, sha, reason in rows:
        entry = FileEntry(path=path, size=size, sha=sha, language=fs.language_of(path), kind=fs.classify(path),
                          skip=reason)  # fmt: skip
        entries[path] = entry
        if reason:
            continue
        reason = fs.skip_reason(path, size, b"", max_file_bytes)  # path and size rules
        if reason is None and vendored and fs.under(path, vendored):
            reason = "vendored"
        if reason is None and sha not in store:
            data = fresh.get(path)
            if data is None:
                try:
                    data = (Path(root) / path).read_bytes()
                except OSError:
                    data = None
            reason = fs.skip_reason(path, size, data, max_file_bytes)
            if reason is None:
                jobs.append((root, path, sha, entry.language, data.decode("utf-8")))
        entry.skip = reason
    n_workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    t_an = time.perf_counter()
    heavy = [job for job in jobs if job[3] in TEXT_INDEXED]
    light = [job for job in jobs if job[3] not in TEXT_INDEXED]
    for sha, stored in _analyze_many(heavy, n_workers) + [_analyze_job(job) for job in light]:
        store[sha] = stored
    t_an = time.perf_counter() - t_an
    indexed: dict[str, IndexedFile] = {}
    vocab: dict[str, int] = {"": 0}
    unit_ids: list[list[int]] = []
    units: list[tuple[str, int]] = []
    imports: dict[str, list] = {}
    defs: dict[str, list[tuple[str, int]]] = {}
    params: dict[str, list[tuple[str, int]]] = {}
    assigns: dict[str, list[tuple[str, int, int]]] = {}
    for path, entry in entries.items():
        if entry.skip:
            continue
        packed, unit_tokens, file_imports, file_assigns = store[entry.sha]
        indexed[path] = packed
        entry.lines = packed.lines
        imports[path] = file_imports
        for i, toks in enumerate(unit_tokens):
            units.append((path, i))
            split = toks.split()
            for t in set(split).difference(vocab):
                vocab[t] = len(vocab)
            unit_ids.append(list(map(vocab.__getitem__, split)) or [0])
        for i, sym in enumerate(packed.symbols):
            if sym[2] in ("class", "function", "method"):
                defs.setdefault(sym[1], []).append((path, i))
                for p in sym[8]:
                    params.setdefault(p, []).append((path, i))
        for name, line, owner in file_assigns:
            assigns.setdefault(name, []).append((path, line, owner))
    t_bm = time.perf_counter()
    unit_bm25 = build_bm25(unit_ids, vocab)
    t_bm = time.perf_counter() - t_bm
    py_paths = [p for p, e in entries.items() if e.language == "python" and not e.skip]
    module_of = module_names(py_paths)
    forward, backward = build_graph(module_of, {p: imports[p] for p in py_paths})
    index = RepoIndex(
        root=root, key=key, files=entries, indexed=indexed, units=units, unit_bm25=unit_bm25,
        defs=defs, params=params, assigns=assigns,
        module_of=module_of, imports=forward, imported_by=backward,
        stats={"files": len(entries), "indexed": len(indexed), "units": len(units), "parsed": len(jobs),
               "analyze_seconds": round(t_an, 3), "bm25_seconds": round(t_bm, 3)},
    )  # fmt: skip
    if cache:
        _atomic_dump(index, cache / f"index-{key[:32]}.pkl")
        used = {e.sha: store[e.sha] for e in entries.values() if not e.skip}
        _atomic_dump({"version": INDEX_VERSION, "files": used}, cache / f"parses-{key[:32]}.pkl")
        _evict(cache)
    return index


def _evict(cache: Path) -> None:
    for prefix in ("index-", "parses-"):
        found = sorted(cache.glob(f"{prefix}*.pkl"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in found[KEEP_INDEXES:]:
            try:
                old.unlink()
            except OSError:
                pass
