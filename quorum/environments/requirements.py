"""What a repository declares it needs to run its tests -> an :class:`EnvironmentSpec` (pure).

The only I/O here is :func:`collect_dependency_files` (reads a handful of small files) and
:func:`discover_pythons` (probes interpreters); :func:`derive_spec` is pure: it takes the files'
text and the interpreters available and returns the spec. Nothing of the repository is executed:
``setup.py`` is parsed with ``ast`` for literal lists.

Where test dependencies come from (the first source that yields something wins, so two sources
with conflicting pins -- e.g. an old ``tests_require`` and a newer ``requirements-dev.txt`` -- are
never mixed):

1. tox: ``tox.ini`` / ``setup.cfg [tox:tox]`` / ``pyproject [tool.tox]`` (``legacy_tox_ini`` or
   tox-4 ``env_run_base``): ``deps`` (following ``-r``/``-c``), ``extras``, ``dependency_groups``;
2. PEP 735 ``[dependency-groups]`` test / tests / testing (with ``{include-group = ...}``);
3. extras test / tests / testing (``[project.optional-dependencies]``, ``setup.cfg
   [options.extras_require]``, ``setup.py extras_require``);
4. requirement files: test-requirements.txt, requirements-test(s).txt, requirements/test*.txt,
   dev-requirements.txt, requirements-dev.txt, requirements/dev.txt (``-r`` followed);
5. ``tests_require`` (setup.cfg / setup.py);
6. a ``dev`` dependency group or extra.

The project's own runtime dependencies (``[project] dependencies``, ``setup.cfg install_requires``
or ``setup.py install_requires``) are always added. A reference to the project itself (``-e .``,
``.[socks]``, ``requests[socks]`` inside requests) is replaced by those dependencies plus the
named extras: **the project itself is never installed** (see ``build.py``: its source is put on
``PYTHONPATH`` at test time). When its dependencies cannot be read statically (dynamic, or a
``setup.py`` that computes them) the spec says ``install_project="build-deps"``: the build then
installs the project from the tree and uninstalls it again, keeping what it pulled in.

Then: the task's ``python_deps`` are added, ``drop`` removes names, and the runner's own tools
(pytest if the repository did not declare it, pytest-timeout) are added.
"""

from __future__ import annotations

import ast
import configparser
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, Field

from quorum.domain.python_ast import parse_module
from quorum.environments.pep import (
    canonical_name,
    parse_version,
    requirement_extras,
    requirement_marker,
    requirement_name,
    version_satisfies,
)

try:  # python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

SPEC_FORMAT = 1  # bump when the way an environment is built changes: every key changes with it

TEST_NAMES = ("test", "tests", "testing")
DEV_NAMES = ("dev",)
TEST_REQUIREMENT_FILES = (
    "test-requirements.txt", "tests-requirements.txt", "requirements-test.txt", "requirements-tests.txt",
    "requirements_test.txt", "requirements_tests.txt", "requirements-testing.txt",
    "requirements/test.txt", "requirements/tests.txt", "requirements/testing.txt",
    "dev-requirements.txt", "requirements-dev.txt", "requirements_dev.txt", "requirements/dev.txt",
)
DEFAULT_TOOL_REQUIREMENTS = ("pytest", "pytest-timeout")
MAX_FILE_BYTES = 1_000_000


class SpecError(ValueError):
    """The repository's declarations (plus overrides) cannot give an environment (e.g. no python)."""


class PythonInterpreter(BaseModel):
    version: str = Field(description="Full version, e.g. '3.12.1'.")
    path: str

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return parse_version(self.version)


class EnvOverrides(BaseModel):
    """What a task or manifest adds to the repository's own declarations."""

    python_deps: list[str] = Field(default_factory=list, description="Extra requirement strings.")
    python: str | None = Field(default=None, description="Interpreter version prefix, e.g. '3.10'.")
    test_command: str | list[str] | None = None
    constraints: list[str] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list, description="Requirement names to leave out.")
    install_project: Literal["none", "build-deps"] | None = None

    def merged(self, other: "EnvOverrides | None") -> "EnvOverrides":
        """``other`` (more specific, e.g. instance over repository) on top of self."""
        if other is None:
            return self
        return EnvOverrides(
            python_deps=[*self.python_deps, *other.python_deps],
            python=other.python or self.python,
            test_command=other.test_command if other.test_command is not None else self.test_command,
            constraints=[*self.constraints, *other.constraints],
            drop=[*self.drop, *other.drop],
            install_project=other.install_project or self.install_project,
        )


class RepoFiles(BaseModel):
    """The dependency-relevant files of a tree (relative posix path -> text) and a few tree facts."""

    files: dict[str, str] = Field(default_factory=dict)
    top_level: list[str] = Field(default_factory=list, description="Names at the root of the tree.")
    src_packages: list[str] = Field(default_factory=list, description="Importable names under src/.")


class EnvironmentSpec(BaseModel):
    """Everything needed to build one environment; ``key`` identifies it in the cache."""

    project_name: str | None = None
    python_version: str
    python_path: str
    requires_python: str = ""
    install_project: Literal["none", "build-deps"] = "none"
    project_extras: list[str] = Field(default_factory=list, description="Extras asked of the project (build-deps).")
    requirements: list[str] = Field(default_factory=list)
    constraints: list[str] = Field(default_factory=list)
    extra_index_url: str | None = None
    # Below: not part of what gets installed (used at test time, or provenance).
    dependency_digests: dict[str, str] = Field(default_factory=dict, description="file -> sha256 of what was read.")
    source_roots: list[str] = Field(default_factory=lambda: [""], description="Put on PYTHONPATH ('' = root).")
    test_command: list[str] | None = None
    declared_test_command: str | None = Field(default=None, description="What tox runs (information only).")
    sources: list[str] = Field(default_factory=list, description="Where each part came from.")
    warnings: list[str] = Field(default_factory=list)

    def key_material(self) -> dict[str, Any]:
        return {
            "format": SPEC_FORMAT,
            "python_version": self.python_version,
            "python_path": self.python_path,
            "install_project": self.install_project,
            "project_name": self.project_name if self.install_project != "none" else None,
            "project_extras": sorted(self.project_extras) if self.install_project != "none" else [],
            "requirements": self.requirements,
            "constraints": self.constraints,
            "extra_index_url": self.extra_index_url,
            "dependency_digests": dict(sorted(self.dependency_digests.items())),
        }

    @property
    def key(self) -> str:
        blob = json.dumps(self.key_material(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def tool_available(self, name: str) -> bool:
        return any(requirement_name(r) == canonical_name(name) for r in self.requirements)


# --------------------------------------------------------------------------------------------
# I/O: collecting files, finding interpreters


def _candidate_paths(root: Path) -> list[str]:
    out = []
    for name in ("pyproject.toml", "setup.cfg", "setup.py", "tox.ini"):
        if (root / name).is_file():
            out.append(name)
    for p in sorted(root.glob("*.txt")):
        if "requirements" in p.name.lower() and p.is_file():
            out.append(p.name)
    for sub in ("requirements", "reqs", "requirements.d"):
        d = root / sub
        if d.is_dir():
            out += [f"{sub}/{p.name}" for p in sorted(d.glob("*.txt")) if p.is_file()]
    return out


def _read_small(path: Path) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


_REF = re.compile(r"(?:^|[\s=])(?:-r|-c|--requirement|--constraint)\s*=?\s*([^\s=]\S*)", re.M)


def collect_dependency_files(root: str | os.PathLike[str]) -> RepoFiles:
    """Read the files :func:`derive_spec` looks at (and those they ``-r``/``-c`` reference).

    References that leave the tree are not followed.
    """
    root = Path(root).resolve()
    files: dict[str, str] = {}
    queue = _candidate_paths(root)
    while queue:
        rel = queue.pop(0)
        if rel in files:
            continue
        text = _read_small(root / rel)
        if text is None:
            continue
        files[rel] = text
        for ref in _REF.findall(text):
            ref = ref.replace("{toxinidir}/", "").replace("{toxinidir}", ".")
            base = PurePosixPath(rel).parent if rel.endswith(".txt") else PurePosixPath(".")
            target = _norm(base / ref)
            if target is not None and target not in files:
                queue.append(target)
    top = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    src_pk: list[str] = []
    if (root / "src").is_dir():
        for p in sorted((root / "src").iterdir()):
            if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.is_file()):
                src_pk.append(p.stem if p.suffix == ".py" else p.name)
    return RepoFiles(files=files, top_level=top, src_packages=src_pk)


def _norm(p: PurePosixPath) -> str | None:
    parts: list[str] = []
    for part in p.parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) if parts and not str(p).startswith("/") else None


DEFAULT_PYTHON_GLOBS = ("/root/.pyenv/versions/*/bin/python", "/usr/local/bin/python3.*", "/usr/bin/python3.*")


def discover_pythons(candidates: list[str] | None = None, min_version: tuple[int, int] = (3, 8)) -> list[PythonInterpreter]:
    """Probe interpreters (paths or globs); one per full version, newest first."""
    import glob

    paths: list[str] = []
    for pattern in candidates or list(DEFAULT_PYTHON_GLOBS):
        paths += sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
    found: dict[str, PythonInterpreter] = {}
    for path in paths:
        if not re.search(r"python3?(\.\d+)?$", path) or not os.access(path, os.X_OK):
            continue
        try:
            out = subprocess.run(
                [path, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                capture_output=True, text=True, timeout=20, env={"PATH": "/usr/bin:/bin"},
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = out.stdout.strip()
        if out.returncode != 0 or not version or parse_version(version)[:2] < min_version:
            continue
        found.setdefault(version, PythonInterpreter(version=version, path=path))
    return sorted(found.values(), key=lambda p: p.version_tuple, reverse=True)


# --------------------------------------------------------------------------------------------
# pure parsing


class _Ctx:
    """Collects what derivation read, its provenance notes and warnings."""

    def __init__(self, files: dict[str, str]):
        self.files = files
        self.used: dict[str, str] = {}
        self.sources: list[str] = []
        self.warnings: list[str] = []
        self.groups_used: set[str] = set()
        self.extras_used: set[str] = set()

    def use(self, rel: str, material: str | None = None) -> None:
        text = material if material is not None else self.files.get(rel, "")
        self.used[rel] = hashlib.sha256(text.encode()).hexdigest()


class _Parsed(BaseModel):
    """Requirement strings plus references to the project itself (its extras)."""

    reqs: list[str] = Field(default_factory=list)
    constraints: list[str] = Field(default_factory=list)
    self_extras: list[str] = Field(default_factory=list)
    self_ref: bool = False

    def extend(self, other: "_Parsed") -> None:
        self.reqs += other.reqs
        self.constraints += other.constraints
        self.self_extras += other.self_extras
        self.self_ref = self.self_ref or other.self_ref


_IGNORED_OPTIONS = (
    "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host", "--pre", "--no-binary",
    "--only-binary", "--prefer-binary", "--require-hashes", "--use-feature", "--no-index", "--hash",
)


def _logical_lines(text: str) -> list[str]:
    out: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        line = buf + line
        buf = ""
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            out.append(line)
    if buf.strip():
        out.append(buf.strip())
    return out


def _self_path_extras(target: str) -> list[str] | None:
    """If ``target`` ('.', '.[a,b]', './', 'file:.', '{toxinidir}[x]') means the project root: its extras."""
    t = target.strip().replace("{toxinidir}", ".")
    if t.startswith("file:"):
        t = t[5:]
    m = re.match(r"^\.(?:/)?(?:\[([^\]]*)\])?$", t)
    if not m:
        return None
    return [canonical_name(e) for e in (m.group(1) or "").split(",") if e.strip()]


def _parse_requirement_lines(lines: list[str], ctx: _Ctx, here: str, project: str | None, depth: int = 0) -> _Parsed:
    """Requirement-file lines (also tox ``deps``). ``here``: directory of the file, for ``-r``."""
    out = _Parsed()
    for line in lines:
        m = re.match(r"^(-r|--requirement|-c|--constraint)\s*=?\s*(\S+)$", line)
        if m:
            ref = m.group(2).replace("{toxinidir}/", "")
            target = _norm(PurePosixPath(here) / ref)
            if target is None or target not in ctx.files:
                ctx.warnings.append(f"{here or '.'}: referenced file {ref!r} not found")
                continue
            if depth > 8:
                ctx.warnings.append(f"{target}: -r nesting too deep")
                continue
            sub = _parse_requirements_file(target, ctx, project, depth + 1)
            if m.group(1) in ("-c", "--constraint"):
                out.constraints += sub.reqs + sub.constraints
            else:
                out.extend(sub)
            continue
        m = re.match(r"^(-e|--editable)\s*=?\s*(\S+)$", line)
        if m:
            extras = _self_path_extras(m.group(2))
            if extras is not None:
                out.self_ref = True
                out.self_extras += extras
            elif "://" in m.group(2) or m.group(2).startswith("git+"):
                ctx.warnings.append(f"editable VCS requirement kept as a plain one: {m.group(2)}")
                out.reqs.append(m.group(2))
            else:
                ctx.warnings.append(f"local editable path ignored: {m.group(2)}")
            continue
        if line.startswith("-"):
            opt = line.split()[0].split("=")[0]
            if opt in _IGNORED_OPTIONS:
                ctx.warnings.append(f"option ignored (the index is the caller's choice): {line}")
            else:
                ctx.warnings.append(f"unknown requirement option ignored: {line}")
            continue
        line = re.sub(r"\s--hash[=\s]\S+", "", line).strip()
        extras = _self_path_extras(line)
        if extras is not None:
            out.self_ref = True
            out.self_extras += extras
            continue
        if line.startswith((".", "/")) or line.startswith("{"):
            ctx.warnings.append(f"local path requirement ignored: {line}")
            continue
        name = requirement_name(line)
        if project and name == project:
            out.self_ref = True
            out.self_extras += requirement_extras(line)
            if requirement_marker(line):
                ctx.warnings.append(f"marker on a reference to the project itself ignored: {line}")
            continue
        out.reqs.append(line)
    return out


def _parse_requirements_file(rel: str, ctx: _Ctx, project: str | None, depth: int = 0) -> _Parsed:
    ctx.use(rel)
    here = str(PurePosixPath(rel).parent)
    here = "" if here == "." else here
    return _parse_requirement_lines(_logical_lines(ctx.files[rel]), ctx, here, project, depth)


def _strings(value: Any) -> list[str]:
    """A setup.cfg-style value (multi-line or ';'-separated) or a list -> list of strings."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value)
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    if len(lines) == 1 and ";" in lines[0] and not re.search(r";\s*(python_|sys_|platform_|os_|implementation_|extra)", lines[0]):
        lines = [p.strip() for p in lines[0].split(";") if p.strip()]
    return lines


def _with_marker(req: str, marker: str) -> str:
    if not marker:
        return req
    if ";" in req:
        base, own = req.split(";", 1)
        return f"{base.strip()} ; ({own.strip()}) and ({marker})"
    return f"{req} ; {marker}"


# ---- setup.py (ast, never executed)


class _SetupPy(BaseModel):
    found_call: bool = False
    name: str | None = None
    install_requires: list[str] | None = None
    extras_require: dict[str, list[str]] | None = None
    tests_require: list[str] | None = None
    python_requires: str | None = None
    classifiers: list[str] = Field(default_factory=list)
    package_dir_root: str | None = None
    unresolved: list[str] = Field(default_factory=list)


class _Unresolvable(Exception):
    pass


def _eval(node: ast.AST, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_eval(e, names) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _Unresolvable("dict unpacking")
        return {_eval(k, names): _eval(v, names) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        raise _Unresolvable(f"name {node.id}")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _eval(node.left, names) + _eval(node.right, names)
    if isinstance(node, ast.JoinedStr):
        raise _Unresolvable("f-string")
    raise _Unresolvable(type(node).__name__)


def parse_setup_py(text: str) -> _SetupPy:
    """Literal keywords of the ``setup(...)`` call; names bound at module level to literals are followed."""
    out = _SetupPy()
    try:
        tree = parse_module(text, "setup.py")
    except SyntaxError:
        out.unresolved.append("setup.py does not parse")
        return out
    names: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            try:
                names[stmt.targets[0].id] = _eval(stmt.value, names)
            except _Unresolvable:
                names.pop(stmt.targets[0].id, None)
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name) and isinstance(stmt.op, ast.Add):
            try:
                names[stmt.target.id] = names[stmt.target.id] + _eval(stmt.value, names)
            except (_Unresolvable, KeyError, TypeError):
                names.pop(stmt.target.id, None)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
        if fname != "setup":
            continue
        out.found_call = True
        for kw in node.keywords:
            if kw.arg is None:
                out.unresolved.append("**kwargs passed to setup()")
                continue
            if kw.arg not in ("name", "install_requires", "extras_require", "tests_require", "python_requires",
                              "classifiers", "package_dir"):
                continue
            try:
                value = _eval(kw.value, names)
            except _Unresolvable as exc:
                out.unresolved.append(f"{kw.arg} ({exc})")
                continue
            if kw.arg == "name" and isinstance(value, str):
                out.name = value
            elif kw.arg == "install_requires":
                out.install_requires = _strings(value)
            elif kw.arg == "tests_require":
                out.tests_require = _strings(value)
            elif kw.arg == "extras_require" and isinstance(value, dict):
                out.extras_require = {str(k): _strings(v) for k, v in value.items()}
            elif kw.arg == "python_requires" and isinstance(value, str):
                out.python_requires = value
            elif kw.arg == "classifiers":
                out.classifiers = _strings(value)
            elif kw.arg == "package_dir" and isinstance(value, dict) and "" in value:
                out.package_dir_root = str(value[""])
        break
    return out


# ---- tox


class _Tox(BaseModel):
    where: str
    deps: list[str] = Field(default_factory=list)
    extras: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    envlist: list[str] = Field(default_factory=list)
    commands: str | None = None


def _ini(text: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=False, default_section="__no_default__")
    cp.optionxform = str  # type: ignore[assignment]
    cp.read_string(text)
    return cp


def _ini_material(cp: configparser.ConfigParser, wanted: list[tuple[str, str | None]]) -> str:
    """The named options (None: the whole section) of an ini file, canonically, for the key."""
    out: dict[str, Any] = {}
    for section, option in wanted:
        if not cp.has_section(section):
            continue
        if option is None:
            out[section] = dict(sorted(cp.items(section)))
        elif cp.has_option(section, option):
            out[f"{section}.{option}"] = cp.get(section, option)
    return json.dumps(out, sort_keys=True)


def _tox_subst(value: str, cp: configparser.ConfigParser) -> str:
    def repl(m: re.Match[str]) -> str:
        sec, key = m.group(1), m.group(2)
        if cp.has_option(sec, key):
            return cp.get(sec, key)
        return ""

    for _ in range(5):
        new = re.sub(r"\{\[([^\]]+)\]([A-Za-z_]+)\}", repl, value)
        if new == value:
            break
        value = new
    return value


def _split_outside_braces(text: str) -> list[str]:
    out, buf, depth = [], "", 0
    for ch in text:
        depth += ch == "{"
        depth -= ch == "}"
        if depth == 0 and (ch == "," or ch.isspace()):
            if buf:
                out.append(buf)
            buf = ""
        else:
            buf += ch
    return out + ([buf] if buf else [])


def _expand_braces(text: str) -> list[str]:
    m = re.search(r"\{([^{}]*)\}", text)
    if not m:
        return [text]
    out = []
    for alt in m.group(1).split(","):
        out += _expand_braces(text[: m.start()] + alt.strip() + text[m.end():])
    return out


def _tox_from_ini(text: str, where: str, main: str, ctx: _Ctx) -> _Tox | None:
    """tox configuration in ini form; ``main`` is ``tox`` (tox.ini) or ``tox:tox`` (setup.cfg)."""
    try:
        cp = _ini(text)
    except configparser.Error as exc:
        ctx.warnings.append(f"{where}: unreadable ({exc.__class__.__name__})")
        return None
    base = "testenv"
    if not cp.has_section(base) and not cp.has_section(main):
        return None
    tox = _Tox(where=where)
    if cp.has_option(main, "envlist"):
        for item in _split_outside_braces(cp.get(main, "envlist")):
            tox.envlist += _expand_braces(item)
    if cp.has_section(base):
        deps = _tox_subst(cp.get(base, "deps", fallback=""), cp)
        for line in _logical_lines(deps):
            fm = re.match(r"^([A-Za-z0-9_.,!{}\-]+):\s+(.*)$", line)
            if fm and not line.startswith(("-", "http")) and "://" not in fm.group(1):
                ctx.warnings.append(f"{where}: factor-conditional dep skipped: {line}")
                continue
            tox.deps.append(line)
        tox.extras = [canonical_name(e) for e in _strings(cp.get(base, "extras", fallback="")) if e]
        tox.groups = [g for g in _strings(cp.get(base, "dependency_groups", fallback="")) if g]
        cmds = cp.get(base, "commands", fallback="").strip()
        tox.commands = cmds or None
    return tox


def _tox_from_pyproject(data: dict[str, Any], ctx: _Ctx) -> _Tox | None:
    tool_tox = (data.get("tool") or {}).get("tox")
    if not isinstance(tool_tox, dict):
        return None
    if isinstance(tool_tox.get("legacy_tox_ini"), str):
        return _tox_from_ini(tool_tox["legacy_tox_ini"], "pyproject.toml [tool.tox] legacy_tox_ini", "tox", ctx)
    base = tool_tox.get("env_run_base") or {}
    tox = _Tox(where="pyproject.toml [tool.tox.env_run_base]")
    tox.envlist = [str(e) for e in tool_tox.get("env_list") or []]
    deps = base.get("deps") or []
    tox.deps = [d for d in deps if isinstance(d, str)]
    tox.extras = [canonical_name(e) for e in base.get("extras") or [] if isinstance(e, str)]
    tox.groups = [g for g in base.get("dependency_groups") or [] if isinstance(g, str)]
    cmds = base.get("commands")
    if cmds:
        first = cmds[0]
        tox.commands = " ".join(x if isinstance(x, str) else "{posargs}" for x in first)
    if not (tox.deps or tox.extras or tox.groups or tox.envlist):
        return None
    return tox


# ---- the project


class _Project(BaseModel):
    name: str | None = None
    deps: list[str] | None = None  # None: unknown (dynamic / not literal)
    extras: dict[str, list[str]] = Field(default_factory=dict)  # canonical extra -> reqs (markers folded in)
    groups: dict[str, list[Any]] = Field(default_factory=dict)
    tests_require: list[str] | None = None
    requires_python: str = ""
    classifiers: list[str] = Field(default_factory=list)
    src_root: str | None = None
    pyproject: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


def _pyproject_material(data: dict[str, Any], groups_used: set[str], extras_used: set[str]) -> str:
    """The parts of pyproject.toml that feed the spec: the key ignores version bumps and linters' config."""
    project = data.get("project") or {}
    tool = data.get("tool") or {}
    tox = tool.get("tox") if isinstance(tool.get("tox"), dict) else {}
    setuptools = tool.get("setuptools") if isinstance(tool.get("setuptools"), dict) else {}
    material = {
        "project": {k: project.get(k) for k in ("name", "dependencies", "requires-python")},
        "optional-dependencies": {k: v for k, v in (project.get("optional-dependencies") or {}).items()
                                  if canonical_name(k) in extras_used},
        "dynamic": sorted(set(project.get("dynamic") or []) & {"dependencies", "optional-dependencies"}),
        "dependency-groups": {k: v for k, v in (data.get("dependency-groups") or {}).items()
                              if canonical_name(k) in groups_used},
        "tool.tox": {"legacy_tox_ini": tox.get("legacy_tox_ini"), "env_run_base": tox.get("env_run_base")},
        "tool.setuptools.dynamic": setuptools.get("dynamic"),
    }
    return json.dumps(material, sort_keys=True, default=str)


def _read_project(ctx: _Ctx, repo: RepoFiles) -> _Project:
    p = _Project()
    files = ctx.files
    if "pyproject.toml" in files:
        try:
            data = tomllib.loads(files["pyproject.toml"])
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"pyproject.toml does not parse: {exc}") from exc
        p.pyproject = data
        ctx.use("pyproject.toml", "")  # material set at the end of derive_spec (which groups were read)
        proj = data.get("project")
        if isinstance(proj, dict):
            p.name = canonical_name(proj["name"]) if isinstance(proj.get("name"), str) else None
            dynamic = proj.get("dynamic") or []
            if "dependencies" in dynamic:
                p.deps = _dynamic_setuptools(data, "dependencies", ctx)
            else:
                p.deps = [str(d) for d in proj.get("dependencies") or []]
            for extra, reqs in (proj.get("optional-dependencies") or {}).items():
                p.extras[canonical_name(extra)] = [str(r) for r in reqs]
            if "optional-dependencies" in dynamic:
                ctx.warnings.append("pyproject: optional-dependencies are dynamic (not read)")
            p.requires_python = str(proj.get("requires-python") or "")
            p.classifiers = [str(c) for c in proj.get("classifiers") or []]
        groups = data.get("dependency-groups")
        if isinstance(groups, dict):
            p.groups = {canonical_name(k): list(v) for k, v in groups.items() if isinstance(v, list)}
        st = (data.get("tool") or {}).get("setuptools") or {}
        where = ((st.get("packages") or {}).get("find") or {}).get("where") if isinstance(st.get("packages"), dict) else None
        if isinstance(where, list) and where:
            p.src_root = str(where[0]).strip("./") or ""
        elif isinstance(st.get("package-dir"), dict) and "" in st["package-dir"]:
            p.src_root = str(st["package-dir"][""]).strip("./")
    if "setup.cfg" in files:
        try:
            cp = _ini(files["setup.cfg"])
        except configparser.Error:
            cp = None
            ctx.warnings.append("setup.cfg: unreadable")
        if cp is not None:
            used = False
            if p.name is None and cp.has_option("metadata", "name"):
                p.name, used = canonical_name(cp.get("metadata", "name")), True
            if p.deps is None and cp.has_option("options", "install_requires"):
                p.deps, used = _strings(cp.get("options", "install_requires")), True
            if cp.has_section("options.extras_require"):
                for extra, value in cp.items("options.extras_require"):
                    name, _, marker = extra.partition(":")
                    p.extras.setdefault(canonical_name(name), [])
                    p.extras[canonical_name(name)] += [_with_marker(r, marker.strip()) for r in _strings(value)]
                used = True
            if cp.has_option("options", "tests_require"):
                p.tests_require, used = _strings(cp.get("options", "tests_require")), True
            if not p.requires_python and cp.has_option("options", "python_requires"):
                p.requires_python, used = cp.get("options", "python_requires").strip(), True
            if not p.classifiers and cp.has_option("metadata", "classifiers"):
                p.classifiers, used = _strings(cp.get("metadata", "classifiers")), True
            if p.src_root is None and cp.has_option("options", "package_dir"):
                m = re.search(r"^\s*=\s*(\S+)", cp.get("options", "package_dir"), re.M)
                if m:
                    p.src_root, used = m.group(1).strip("./"), True
            if used or cp.has_section("tox:tox"):
                ctx.use("setup.cfg", _ini_material(cp, [("options", "install_requires"), ("options", "tests_require"),
                                                        ("options", "python_requires"), ("metadata", "name"),
                                                        ("options.extras_require", None), ("testenv", None)]))
    if "setup.py" in files:
        sp = parse_setup_py(files["setup.py"])
        relevant_unresolved = [u for u in sp.unresolved if not u.startswith(("name", "classifiers", "package_dir"))]
        # fully literal: the parsed values are what matters; otherwise the whole text
        ctx.use("setup.py", None if relevant_unresolved or not sp.found_call else sp.model_dump_json(
            include={"found_call", "install_requires", "extras_require", "tests_require", "python_requires"}))
        if sp.name and p.name is None:
            p.name = canonical_name(sp.name)
        if p.deps is None:
            if sp.install_requires is not None:
                p.deps = sp.install_requires
            elif sp.found_call and not any(u.startswith(("install_requires", "**")) for u in sp.unresolved):
                p.deps = [] if "pyproject.toml" not in files or not p.pyproject.get("project") else p.deps
            if any(u.startswith("install_requires") for u in sp.unresolved):
                p.notes.append("setup.py computes install_requires")
        for extra, reqs in (sp.extras_require or {}).items():
            name, _, marker = extra.partition(":")
            key = canonical_name(name)
            if key and key not in p.extras or marker:
                p.extras.setdefault(key, [])
                p.extras[key] += [_with_marker(r, marker.strip()) for r in reqs]
        if p.tests_require is None and sp.tests_require is not None:
            p.tests_require = sp.tests_require
        if not p.requires_python and sp.python_requires:
            p.requires_python = sp.python_requires
        if not p.classifiers:
            p.classifiers = sp.classifiers
        if p.src_root is None and sp.package_dir_root is not None:
            p.src_root = sp.package_dir_root.strip("./")
        for u in sp.unresolved:
            ctx.warnings.append(f"setup.py: not a literal: {u}")
    if p.src_root is None:
        if repo.src_packages and (p.name is None or any(canonical_name(n) == p.name for n in repo.src_packages)
                                  or not any(canonical_name(t) == p.name for t in repo.top_level)):
            p.src_root = "src"
        else:
            p.src_root = ""
    if p.deps is None and not any(n in files for n in ("pyproject.toml", "setup.cfg", "setup.py")):
        p.deps = []  # not a package at all: nothing to install for it
    return p


def _dynamic_setuptools(data: dict[str, Any], field: str, ctx: _Ctx) -> list[str] | None:
    dyn = (((data.get("tool") or {}).get("setuptools") or {}).get("dynamic") or {}).get(field)
    if isinstance(dyn, dict) and "file" in dyn:
        paths = dyn["file"] if isinstance(dyn["file"], list) else [dyn["file"]]
        out: list[str] = []
        for rel in paths:
            rel = _norm(PurePosixPath(str(rel)))
            if rel is None or rel not in ctx.files:
                ctx.warnings.append(f"dynamic {field}: file {rel} not found")
                return None
            out += _parse_requirements_file(rel, ctx, None).reqs
        return out
    ctx.warnings.append(f"pyproject: {field} are dynamic")
    return None


def _group(p: _Project, name: str, ctx: _Ctx, seen: frozenset[str] = frozenset()) -> list[str]:
    name = canonical_name(name)
    if name in seen:
        ctx.warnings.append(f"dependency group cycle at {name}")
        return []
    out: list[str] = []
    ctx.groups_used.add(name)
    for item in p.groups.get(name, []):
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and "include-group" in item:
            out += _group(p, str(item["include-group"]), ctx, seen | {name})
    return out


def _expand_self(p: _Project, parsed: _Parsed, ctx: _Ctx) -> tuple[list[str], bool]:
    """Replace references to the project by its dependencies and its extras' (recursively)."""
    reqs: list[str] = []
    unknown = False
    todo = list(dict.fromkeys(parsed.self_extras))
    seen: set[str] = set()
    while todo:
        extra = todo.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        ctx.extras_used.add(extra)
        if extra not in p.extras:
            ctx.warnings.append(f"extra {extra!r} of the project is not declared")
            continue
        for r in p.extras[extra]:
            if p.name and requirement_name(r) == p.name:
                todo += requirement_extras(r)
            else:
                reqs.append(r)
    if p.deps is None:
        unknown = True
    return reqs, unknown


def _python_versions_listed(p: _Project, tox: _Tox | None) -> list[tuple[int, int]]:
    listed = []
    for c in p.classifiers:
        m = re.match(r"^Programming Language :: Python :: (\d+)\.(\d+)\s*$", c)
        if m:
            listed.append((int(m.group(1)), int(m.group(2))))
    if not listed and tox is not None:
        for env in tox.envlist:
            m = re.match(r"^py(?:thon)?(\d)\.?(\d+)\b", env)
            if m:
                listed.append((int(m.group(1)), int(m.group(2))))
    return listed


def choose_python(
    available: list[PythonInterpreter], requires_python: str, listed: list[tuple[int, int]], override: str | None,
) -> tuple[PythonInterpreter, str]:
    """Pick an interpreter: the override, else the newest that satisfies ``requires-python`` and is
    not newer than the newest version the project lists (classifiers, tox envs)."""
    if not available:
        raise SpecError("no python interpreter available")
    if override:
        want = parse_version(override)
        for py in sorted(available, key=lambda p: p.version_tuple, reverse=True):
            if py.version_tuple[: len(want)] == want:
                return py, f"python {py.version}: override {override}"
        raise SpecError(f"python {override} requested but not available ({', '.join(p.version for p in available)})")
    ok: list[PythonInterpreter] = []
    for py in available:
        try:
            if version_satisfies(py.version_tuple, requires_python):
                ok.append(py)
        except ValueError:
            ok = list(available)
            break
    if not ok:
        raise SpecError(f"no available python satisfies requires-python {requires_python!r} "
                        f"({', '.join(p.version for p in available)})")
    ok.sort(key=lambda p: p.version_tuple, reverse=True)
    if listed:
        newest = max(listed)
        within = [py for py in ok if py.version_tuple[:2] <= newest]
        if within:
            return within[0], f"python {within[0].version}: newest satisfying {requires_python or 'anything'} and <= {newest[0]}.{newest[1]} (listed)"
        return ok[-1], f"python {ok[-1].version}: oldest satisfying {requires_python!r} (all newer than listed)"
    return ok[0], f"python {ok[0].version}: newest satisfying {requires_python or 'anything'}"


def _dedupe(reqs: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for r in reqs:
        norm = re.sub(r"\s+", " ", r.strip())
        if norm and norm not in seen:
            seen.add(norm)
            out.append(norm)
    return out


def derive_spec(
    repo: RepoFiles | dict[str, str],
    available: list[PythonInterpreter],
    overrides: EnvOverrides | None = None,
    *,
    tool_requirements: tuple[str, ...] | list[str] = DEFAULT_TOOL_REQUIREMENTS,
    extra_index_url: str | None = None,
) -> EnvironmentSpec:
    """The environment a repository's tests need (pure; see the module docstring for the rules)."""
    if isinstance(repo, dict):
        repo = RepoFiles(files=repo)
    overrides = overrides or EnvOverrides()
    ctx = _Ctx(repo.files)
    p = _read_project(ctx, repo)

    tox: _Tox | None = None
    if "tox.ini" in repo.files:
        tox = _tox_from_ini(repo.files["tox.ini"], "tox.ini", "tox", ctx)
        if tox is not None:
            ctx.use("tox.ini", tox.model_dump_json(include={"deps", "extras", "groups"}))
    if tox is None and "setup.cfg" in repo.files and "[tox:tox]" in repo.files["setup.cfg"]:
        tox = _tox_from_ini(repo.files["setup.cfg"], "setup.cfg [tox:tox]", "tox:tox", ctx)
    if tox is None and p.pyproject:
        tox = _tox_from_pyproject(p.pyproject, ctx)

    test = _Parsed()
    chosen = ""
    if tox is not None and (tox.deps or tox.extras or tox.groups):
        test.extend(_parse_requirement_lines(tox.deps, ctx, "", p.name))
        test.self_extras += tox.extras
        test.self_ref = True  # tox installs the package itself unless skip_install
        for g in tox.groups:
            test.extend(_parse_requirement_lines(_group(p, g, ctx), ctx, "", p.name))
        chosen = f"{tox.where}: deps={len(tox.deps)} extras={tox.extras} groups={tox.groups}"
    if not chosen:
        for g in TEST_NAMES:
            if g in p.groups:
                test.extend(_parse_requirement_lines(_group(p, g, ctx), ctx, "", p.name))
                chosen = f"dependency-groups.{g}"
                break
    if not chosen:
        for e in TEST_NAMES:
            if e in p.extras:
                test.self_ref, test.self_extras = True, [e]
                chosen = f"extra [{e}]"
                break
    if not chosen:
        for rel in TEST_REQUIREMENT_FILES:
            if rel in repo.files:
                test.extend(_parse_requirements_file(rel, ctx, p.name))
                chosen = rel
                break
    if not chosen and p.tests_require:
        test.extend(_parse_requirement_lines(p.tests_require, ctx, "", p.name))
        chosen = "tests_require"
    if not chosen:
        for g in DEV_NAMES:
            if g in p.groups:
                test.extend(_parse_requirement_lines(_group(p, g, ctx), ctx, "", p.name))
                chosen = f"dependency-groups.{g}"
                break
            if g in p.extras:
                test.self_ref, test.self_extras = True, [g]
                chosen = f"extra [{g}]"
                break
    if not chosen and "requirements.txt" in repo.files:
        test.extend(_parse_requirements_file("requirements.txt", ctx, p.name))
        chosen = "requirements.txt"
    ctx.sources.append(f"test dependencies: {chosen or 'none declared'}")

    extra_reqs, unknown = _expand_self(p, test, ctx)
    reqs: list[str] = []
    install_project: Literal["none", "build-deps"] = "none"
    if p.deps is None:
        install_project = "build-deps"
        ctx.sources.append("project dependencies: not readable statically -> installed by building the project, "
                           "which is then uninstalled")
    else:
        reqs += p.deps
        ctx.sources.append(f"project dependencies: {len(p.deps)} ({p.name or 'unnamed project'})")
    reqs += extra_reqs
    reqs += test.reqs
    if overrides.install_project:
        install_project = overrides.install_project
    if overrides.python_deps:
        reqs += overrides.python_deps
        ctx.sources.append(f"task/manifest python_deps: {overrides.python_deps}")
    if overrides.drop:
        dropped = {canonical_name(d) for d in overrides.drop}
        reqs = [r for r in reqs if requirement_name(r) not in dropped]
        ctx.sources.append(f"dropped: {sorted(dropped)}")
    have = {requirement_name(r) for r in reqs}
    for tool in tool_requirements:
        if requirement_name(tool) not in have:
            reqs.append(tool)
            ctx.sources.append(f"runner tool: {tool}")

    if p.pyproject:
        ctx.use("pyproject.toml", _pyproject_material(p.pyproject, ctx.groups_used, ctx.extras_used))
    listed = _python_versions_listed(p, tox)
    py, why = choose_python(available, p.requires_python, listed, overrides.python)
    ctx.sources.append(why)

    test_command: list[str] | None = None
    if overrides.test_command is not None:
        import shlex

        tc = overrides.test_command
        test_command = shlex.split(tc) if isinstance(tc, str) else list(tc)
    return EnvironmentSpec(
        project_name=p.name,
        python_version=py.version,
        python_path=py.path,
        requires_python=p.requires_python,
        install_project=install_project,
        project_extras=sorted(set(test.self_extras)),
        requirements=_dedupe(reqs),
        constraints=_dedupe(test.constraints + overrides.constraints),
        extra_index_url=extra_index_url,
        dependency_digests=dict(sorted(ctx.used.items())),
        source_roots=[p.src_root or ""],
        test_command=test_command,
        declared_test_command=tox.commands if tox else None,
        sources=ctx.sources,
        warnings=ctx.warnings + p.notes,
    )


def spec_for_tree(
    root: str | os.PathLike[str], available: list[PythonInterpreter], overrides: EnvOverrides | None = None, **kw: Any,
) -> EnvironmentSpec:
    """:func:`collect_dependency_files` + :func:`derive_spec`."""
    return derive_spec(collect_dependency_files(root), available, overrides, **kw)
