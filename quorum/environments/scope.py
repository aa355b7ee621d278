"""Which test files cover a change, so they run first (pure, plus two small readers).

A test file covers a changed module when (strongest first):

* it is itself a changed file;
* its name is the module's: ``test_<module>.py``, ``test_<module>_*.py``, ``<module>_test.py``
  (a leading underscore of the module is ignored: ``_termui_impl`` -> ``test_termui_impl.py``);
* it imports the module (``import a.b.mod``, ``from a.b.mod import x``, ``from a.b import mod``,
  relative imports resolved against the test file's package) -- parsed with ``ast``.

Files that import only the module's top-level package (``import click`` when ``click/core.py``
changed) come next: the package may re-export the module, so they are likely but not certain
to cover it. Everything else follows.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, Field

from quorum.domain.python_ast import parse_module

SKIP_DIRS = {".git", ".hg", ".tox", ".nox", ".venv", "venv", "node_modules", "build", "dist", "__pycache__",
             ".mypy_cache", ".pytest_cache", ".eggs"}


class TestOrder(BaseModel):
    __test__ = False  # not a pytest test class
    covering: list[str] = Field(default_factory=list, description="Run these first.")
    rest: list[str] = Field(default_factory=list, description="Then these (likely ones first).")
    reasons: dict[str, str] = Field(default_factory=dict, description="test file -> why it is in covering.")


def module_of(path: str, source_roots: list[str] | None = None) -> str | None:
    """Dotted module name of a .py file: ``src/click/core.py`` -> ``click.core``."""
    p = PurePosixPath(path)
    if p.suffix != ".py":
        return None
    parts = list(p.with_suffix("").parts)
    for root in sorted((r for r in source_roots or [] if r), key=len, reverse=True):
        rparts = list(PurePosixPath(root).parts)
        if parts[: len(rparts)] == rparts:
            parts = parts[len(rparts):]
            break
    else:
        if parts and parts[0] == "src" and len(parts) > 1:
            parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or None


def imports_of(source: str, test_path: str) -> set[str]:
    """Absolute dotted names a file imports (``from a import b`` yields ``a`` and ``a.b``)."""
    try:
        tree = parse_module(source)
    except SyntaxError:
        return set()
    pkg = list(PurePosixPath(test_path).parent.parts)
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out.add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
                mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            else:
                mod = node.module or ""
            if mod:
                out.add(mod)
            for a in node.names:
                if a.name != "*":
                    out.add(f"{mod}.{a.name}" if mod else a.name)
    # every prefix of an imported name is imported too (import a.b.c loads a and a.b)
    for name in list(out):
        parts = name.split(".")
        for i in range(1, len(parts)):
            out.add(".".join(parts[:i]))
    return out


def _name_matches(test_file: str, stem: str) -> bool:
    base = PurePosixPath(test_file).name
    stem = stem.lstrip("_")
    return bool(re.fullmatch(rf"test_{re.escape(stem)}(_.*)?\.py", base) or base == f"{stem}_test.py")


def order_test_files(
    changed_files: list[str], test_files: list[str], sources: dict[str, str] | None = None,
    source_roots: list[str] | None = None,
) -> TestOrder:
    """Order ``test_files`` so those covering ``changed_files`` come first (see module docstring)."""
    sources = sources or {}
    changed = [c.lstrip("./") for c in changed_files]
    modules = {c: module_of(c, source_roots) for c in changed if c.endswith(".py")}
    scores: dict[str, tuple[int, str]] = {}
    for tf in test_files:
        score, why = 0, ""
        if tf in changed:
            score, why = 4, "changed test file"
        imported = imports_of(sources[tf], tf) if tf in sources else set()
        for cf, mod in modules.items():
            if mod is None or cf == tf:
                continue
            stem = mod.rsplit(".", 1)[-1]
            if score < 3 and _name_matches(tf, stem):
                score, why = 3, f"named after {cf}"
            if score < 3 and mod in imported:
                score, why = 3, f"imports {mod}"
            top = mod.split(".", 1)[0]
            if score < 1 and "." in mod and top in imported:
                score, why = 1, f"imports package {top}"
        scores[tf] = (score, why)
    ordered = sorted(test_files, key=lambda f: (-scores[f][0], f))
    covering = [f for f in ordered if scores[f][0] >= 3]
    return TestOrder(covering=covering, rest=[f for f in ordered if scores[f][0] < 3],
                     reasons={f: scores[f][1] for f in ordered if scores[f][1]})


# ---- I/O helpers


def find_test_files(root: str | os.PathLike[str]) -> list[str]:
    root = Path(root)
    out = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for f in sorted(files):
            if f.endswith(".py") and (f.startswith("test_") or f.endswith("_test.py")):
                out.append(Path(directory, f).relative_to(root).as_posix())
    return sorted(out)


def read_sources(root: str | os.PathLike[str], files: list[str], max_bytes: int = 2_000_000) -> dict[str, str]:
    out = {}
    for f in files:
        p = Path(root, f)
        try:
            if p.stat().st_size <= max_bytes:
                out[f] = p.read_text(encoding="utf-8", errors="replace")
        except OSError:
            pass
    return out
