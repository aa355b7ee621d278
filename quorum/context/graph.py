"""Import graph and test links between files (pure).

- `module_names`: dotted module name of each Python file, from its package (`__init__.py`) chain, so
  `src/click/core.py` is `click.core` and `tests/test_basic.py` is `test_basic`;
- `resolve_imports`: the repository files a file imports (absolute and relative imports, `from pkg import mod`);
- `linked_tests`: test files linked to a source file, by import or by name (`test_termui.py` -> `termui.py`).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from .models import ImportRef


def module_names(paths: list[str]) -> dict[str, str]:
    """path -> dotted module name, for every `.py` path."""
    path_set = set(paths)
    out: dict[str, str] = {}
    for path in paths:
        if not path.endswith(".py"):
            continue
        parts = path[:-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
            if not parts:
                continue
            directory = len(parts) - 1  # the package directory itself
        else:
            directory = len(parts) - 1
        # walk up while the containing directory is a package
        start = directory
        while start > 0 and "/".join(parts[:start]) + "/__init__.py" in path_set:
            start -= 1
        out[path] = ".".join(parts[start:])
    return out


def _lookup(name: str, modules: dict[str, str]) -> str | None:
    """The file of a dotted name, or of its longest importable prefix (`pkg.mod.Class` -> pkg/mod.py)."""
    parts = name.split(".")
    while parts:
        hit = modules.get(".".join(parts))
        if hit:
            return hit
        parts.pop()
    return None


def build_graph(
    module_of: dict[str, str], imports: dict[str, list[ImportRef]]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(imports, imported_by) between repository files."""
    modules: dict[str, str] = {}
    for path, name in sorted(module_of.items()):
        modules.setdefault(name, path)
    forward: dict[str, list[str]] = {}
    for path, refs in imports.items():
        forward[path] = resolve_imports(path, module_of.get(path, ""), refs, modules)
    backward: dict[str, list[str]] = {}
    for path, targets in forward.items():
        for target in targets:
            backward.setdefault(target, []).append(path)
    return forward, {k: sorted(v) for k, v in backward.items()}


def resolve_imports(path: str, own: str, refs: list[ImportRef], modules: dict[str, str]) -> list[str]:
    """Repository files imported by `path` (module `own`); `modules`: dotted name -> path."""
    is_package = path.endswith("__init__.py")
    own_parts = own.split(".") if own else []
    found: set[str] = set()
    for ref in refs:
        if ref.level:
            drop = ref.level - (1 if is_package else 0)
            if drop > len(own_parts):
                continue
            base_parts = own_parts[: len(own_parts) - drop] if drop > 0 else list(own_parts)
            base = ".".join(p for p in [*base_parts, ref.module] if p)
        else:
            base = ref.module
        candidates = [f"{base}.{name}" if base else name for name in ref.names] + [base] if ref.names else [base]
        for name in candidates:
            if not name:
                continue
            target = _lookup(name, modules)
            if target and target != path:
                found.add(target)
    return sorted(found)


def tested_stem(path: str) -> str | None:
    """'termui' for tests/test_termui.py or termui_test.py; None for other files."""
    name = path.rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    if stem.startswith("test_"):
        return stem[5:]
    if stem.endswith("_test"):
        return stem[:-5]
    if stem.endswith("_tests"):
        return stem[:-6]
    return None


def linked_tests(path: str, test_paths: list[str], imported_by: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Test files of a source file, with how they are linked ('imports it' / 'named after it')."""
    stem = PurePosixPath(path).stem
    if stem == "__init__":
        stem = PurePosixPath(path).parent.name
    out: dict[str, str] = {}
    for test in test_paths:
        ts = tested_stem(test)
        if ts and (ts == stem or ts == stem.lstrip("_") or ts.startswith(stem.lstrip("_") + "_")):
            out[test] = "named after it"
    tests = set(test_paths)
    for importer in imported_by.get(path, []):
        if importer in tests and importer not in out:
            out[importer] = "imports it"
    return sorted(out.items())
