"""Where a change touches the code, in the lines a reviewer of the changed code sees (pure).

Used to label the defects of a labelled review set: when a real fix is reversed, the re-introduced
bug sits on the lines the reversed change touches. A reviewer reads the code *after* the change,
so lines are numbered in the new file:

* an added (or replaced) line is touched at its new line number;
* lines only removed (a run of ``-`` lines with no ``+`` line next to it) leave no line behind, so
  the two new lines around the gap are touched: the line before it and the line after it (``p - 1``
  and ``p``, where ``p`` is the new line number that follows the removed run; line 1 at the top);
* a deleted file has no new lines and is left out.

Only git-style unified diffs (``diff --git`` / ``---`` / ``+++`` / ``@@``) are read.
"""

from __future__ import annotations

import re

_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def _path(header: str) -> str | None:
    name = header[4:].split("\t", 1)[0].strip()
    if name == "/dev/null":
        return None
    if name.startswith('"') and name.endswith('"'):
        name = name[1:-1]
    return name[2:] if name.startswith(("a/", "b/")) else name


def touched_lines(diff: str) -> dict[str, list[int]]:
    """Path -> sorted new-file line numbers the change touches (see the module docstring)."""
    touched: dict[str, set[int]] = {}
    path: str | None = None
    new_line = 0
    old_left = new_left = 0  # lines of the hunk still to come, from its header
    in_hunk = False
    removed_run = False  # inside a run of '-' lines
    run_has_added = False  # a '+' line came right before or inside the current run

    def close_run() -> None:
        nonlocal removed_run, run_has_added
        if removed_run and not run_has_added and path is not None:
            touched.setdefault(path, set()).update(n for n in (new_line - 1, new_line) if n >= 1)
        removed_run = False
        run_has_added = False

    for line in diff.splitlines():
        if line.startswith("diff --git "):
            close_run()
            path, in_hunk = None, False
            continue
        if not in_hunk and line.startswith("+++ "):
            path = _path(line)
            continue
        if not in_hunk and line.startswith("--- "):
            continue
        match = _HUNK.match(line)
        if match:
            close_run()
            old_left = int(match.group(1) if match.group(1) is not None else 1)
            new_line = int(match.group(2))
            new_left = int(match.group(3) if match.group(3) is not None else 1)
            in_hunk = True
            if new_left == 0:  # '+N,0': nothing is left of this part; the gap is after line N
                new_line += 1
            continue
        if not in_hunk or path is None:
            continue
        if line.startswith("\\"):  # "\ No newline at end of file"
            continue
        if line.startswith("+"):
            touched.setdefault(path, set()).add(new_line)
            new_line += 1
            new_left -= 1
            run_has_added = True
        elif line.startswith("-"):
            removed_run = True
            old_left -= 1
        else:  # context (' ', or an empty line some tools write for an empty context line)
            close_run()
            new_line += 1
            old_left -= 1
            new_left -= 1
        if old_left <= 0 and new_left <= 0:
            close_run()
            in_hunk = False
    close_run()
    return {name: sorted(lines) for name, lines in touched.items() if lines}
