"""A clean unified diff (git format, a/ b/ prefixes, 3 context lines) of what was applied."""

from __future__ import annotations

import difflib
import re

from quorum.edits.names import prefixed

_LINE = re.compile(r"[^\n]*\n|[^\n]+$")
NO_EOL = "\\ No newline at end of file"


def split_keep(text: str) -> list[str]:
    return _LINE.findall(text)


def _range(start: int, length: int) -> str:
    if length == 0:
        return f"{start},0"
    if length == 1:
        return f"{start + 1}"
    return f"{start + 1},{length}"


def file_diff(
    old_path: str | None,
    new_path: str | None,
    old: str | None,
    new: str | None,
    *,
    old_mode: str = "100644",
    new_mode: str = "100644",
    context: int = 3,
) -> str:
    """The git diff of one file. `old`/`new` None: the file does not exist on that side."""
    a_name = old_path if old_path is not None else new_path
    b_name = new_path if new_path is not None else old_path
    assert a_name is not None and b_name is not None
    out = [f"diff --git {prefixed('a/', a_name)} {prefixed('b/', b_name)}\n"]
    if old is None:
        out.append(f"new file mode {new_mode}\n")
    elif new is None:
        out.append(f"deleted file mode {old_mode}\n")
    else:
        if old_mode != new_mode:
            out.append(f"old mode {old_mode}\nnew mode {new_mode}\n")
        if a_name != b_name:
            out.append(f"rename from {a_name}\nrename to {b_name}\n")
    a_lines = split_keep(old or "")
    b_lines = split_keep(new or "")
    if a_lines == b_lines:
        return "".join(out) if len(out) > 1 else ""
    out.append(f"--- {prefixed('a/', a_name) if old is not None else '/dev/null'}\n")
    out.append(f"+++ {prefixed('b/', b_name) if new is not None else '/dev/null'}\n")
    matcher = difflib.SequenceMatcher(None, a_lines, b_lines, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        i1, i2 = group[0][1], group[-1][2]
        j1, j2 = group[0][3], group[-1][4]
        out.append(f"@@ -{_range(i1, i2 - i1)} +{_range(j1, j2 - j1)} @@\n")
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                out.extend(_line(" ", line) for line in a_lines[a1:a2])
                continue
            out.extend(_line("-", line) for line in a_lines[a1:a2])
            out.extend(_line("+", line) for line in b_lines[b1:b2])
    return "".join(out)


def _line(sign: str, line: str) -> str:
    if line.endswith("\n"):
        return sign + line
    return f"{sign}{line}\n{NO_EOL}\n"
