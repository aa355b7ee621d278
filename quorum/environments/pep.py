"""Tiny, stdlib-only pieces of PEP 503/508/440 that this package needs (pure).

Only what choosing an interpreter and recognising a project's own name require: requirement
*names* and *extras* (the rest of a requirement string is passed to uv verbatim), and python
version specifiers against release versions (``>=3.8, !=3.0.*, <4``, ``~=3.9``).
"""

from __future__ import annotations

import re

_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[([^\]]*)\])?")


def canonical_name(name: str) -> str:
    """PEP 503 normalisation: ``Foo_Bar.baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def requirement_name(req: str) -> str | None:
    """The canonical project name of a PEP 508 requirement, or None for a URL/path/option line."""
    req = req.strip()
    if not req or req.startswith(("-", ".", "/", "#")) or "://" in req.split(";")[0].split("@")[0]:
        return None
    m = _NAME.match(req)
    return canonical_name(m.group(1)) if m else None


def requirement_extras(req: str) -> list[str]:
    m = _NAME.match(req.strip())
    if not m or not m.group(2):
        return []
    return [canonical_name(e) for e in m.group(2).split(",") if e.strip()]


def requirement_marker(req: str) -> str:
    """The environment marker after ``;`` ('' when none)."""
    if ";" not in req:
        return ""
    return req.split(";", 1)[1].strip()


def _release(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.strip().split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group(0)))
    return tuple(parts)


def _pad(v: tuple[int, ...], n: int) -> tuple[int, ...]:
    return v + (0,) * (n - len(v))


def _cmp(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = max(len(a), len(b))
    a, b = _pad(a, n), _pad(b, n)
    return (a > b) - (a < b)


def _clause_ok(version: tuple[int, ...], op: str, target: str) -> bool:
    wildcard = target.endswith(".*")
    tv = _release(target[:-2] if wildcard else target)
    if op in ("==", "===") and wildcard:
        return version[: len(tv)] == tv
    if op == "!=" and wildcard:
        return version[: len(tv)] != tv
    c = _cmp(version, tv)
    if op in ("==", "==="):
        return c == 0
    if op == "!=":
        return c != 0
    if op == ">=":
        return c >= 0
    if op == "<=":
        return c <= 0
    if op == ">":
        return c > 0
    if op == "<":
        return c < 0
    if op == "~=":
        prefix = tv[:-1] if len(tv) > 1 else tv
        return c >= 0 and version[: len(prefix)] == prefix
    raise ValueError(f"unknown operator {op!r}")


_CLAUSE = re.compile(r"^\s*(~=|===|==|!=|<=|>=|<|>)\s*([0-9][0-9A-Za-z.*+!-]*)\s*$")


def version_satisfies(version: tuple[int, ...], specifier: str) -> bool:
    """Whether a release version satisfies a comma-separated PEP 440 specifier ('' = anything).

    Unparseable clauses raise ValueError (callers decide what that means).
    """
    for clause in specifier.split(","):
        if not clause.strip():
            continue
        m = _CLAUSE.match(clause)
        if not m:
            raise ValueError(f"cannot parse version clause {clause!r}")
        if not _clause_ok(tuple(version), m.group(1), m.group(2)):
            return False
    return True


def parse_version(text: str) -> tuple[int, ...]:
    return _release(text)
