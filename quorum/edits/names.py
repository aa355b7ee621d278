"""File names in diffs: C-style quoting (as git writes it), header names, a/ b/ prefixes."""

from __future__ import annotations

import re

DEV_NULL = "/dev/null"

_C_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
_C_QUOTE = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v", 92: "\\\\", 34: '\\"'}
# A date after the name in a traditional header; matched only at the start of a whitespace run.
_TRADITIONAL_DATE = re.compile(r"(?<!\s)\s+(?=\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2})")
PREFIXES = ("a/", "b/")


def unquote(text: str) -> tuple[str, str] | None:
    """Parse a C-style quoted name at the start of `text`: (name, rest after the closing quote)."""
    if not text.startswith('"'):
        return None
    out = bytearray()
    index = 1
    while index < len(text):
        char = text[index]
        if char == '"':
            return out.decode("utf-8", "surrogateescape"), text[index + 1 :]
        if char == "\\" and index + 1 < len(text):
            nxt = text[index + 1]
            if nxt in _C_ESCAPES:
                out.append(_C_ESCAPES[nxt])
                index += 2
                continue
            octal = re.match(r"[0-7]{3}", text[index + 1 : index + 4])
            if octal:
                out.append(int(octal.group(0), 8) & 0xFF)
                index += 4
                continue
        out.extend(char.encode("utf-8", "surrogateescape"))
        index += 1
    return None  # unterminated quote


def unquote_name(text: str) -> str:
    text = text.rstrip("\r")
    parsed = unquote(text)
    return parsed[0] if parsed else text


def header_name(text: str) -> str:
    """The name in a `--- `/`+++ ` line: quoted, or up to a tab (then a date may follow)."""
    text = text.rstrip("\r")
    parsed = unquote(text)
    if parsed:
        return parsed[0]
    if "\t" in text:
        return text.split("\t", 1)[0]
    dated = _TRADITIONAL_DATE.search(text)
    name = text[: dated.start()] if dated else text
    return name.rstrip(" ") if name.strip() else name


def split_git_header_names(rest: str) -> tuple[str | None, str | None]:
    """The two names after `diff --git `, as written (prefix kept)."""
    rest = rest.rstrip("\r")
    first = unquote(rest)
    if first is not None:
        name_a, tail = first
        tail = tail.lstrip(" ")
        second = unquote(tail)
        return name_a, (second[0] if second else tail or None)
    # Unquoted: names may contain spaces. Prefer the split where both sides name the same file
    # once a leading component is dropped; then the split before " b/"; then the middle space.
    spaces = [i for i, c in enumerate(rest) if c == " "]
    for index in spaces:
        if rest.startswith('"', index + 1):
            second = unquote(rest[index + 1 :])
            return rest[:index], (second[0] if second else rest[index + 1 :])
        left, right = rest[:index], rest[index + 1 :]
        if len(left) == len(right) and _drop_first(left) == _drop_first(right):
            return left, right
    for index in spaces:
        left, right = rest[:index], rest[index + 1 :]
        if left == right:
            return left, right
    if " b/" in rest:
        left, right = rest.split(" b/", 1)
        return left, "b/" + right
    parts = rest.split(" ", 1)
    return parts[0] or None, (parts[1] if len(parts) > 1 else None)


def _drop_first(name: str) -> str:
    return name.split("/", 1)[1] if "/" in name else name


def clean(name: str) -> str:
    """Collapse repeated slashes and a leading './'."""
    name = re.sub("/+", "/", name)
    while name.startswith("./"):
        name = name[2:]
    return name


def strip_prefix(name: str) -> tuple[str, str | None]:
    """(the path to use, another reading of it). `a/x` -> (`x`, `a/x`); `src/x` -> (`src/x`, `x`)."""
    if name == DEV_NULL:
        return name, None
    name = clean(name)
    if name.startswith(PREFIXES):
        return name[2:], name
    return name, (_drop_first(name) if "/" in name else None)


def quote(name: str) -> str:
    """How git writes a name in a diff header: C-quoted when it holds quotes, backslashes, control or non-ASCII."""
    raw = name.encode("utf-8", "surrogateescape")
    if not any(b < 32 or b >= 127 or b in (34, 92) for b in raw):
        return name
    out = []
    for b in raw:
        if b in _C_QUOTE:
            out.append(_C_QUOTE[b])
        elif b < 32 or b >= 127:
            out.append(f"\\{b:03o}")
        else:
            out.append(chr(b))
    return '"' + "".join(out) + '"'


def prefixed(prefix: str, name: str) -> str:
    quoted = quote(name)
    return f'"{prefix}{quoted[1:]}' if quoted.startswith('"') else prefix + name
