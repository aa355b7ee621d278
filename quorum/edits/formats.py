"""Edit formats: the prompt text describing each, and the re-ask text after a refusal.

Which format a model writes by default (`default_edit_format`, by model family) is a roster rule and
lives in `quorum.domain.edit_format`; it is re-exported here.
"""

from __future__ import annotations

from quorum.domain.edit_format import EditFormat, default_edit_format, resolve_edit_format
from quorum.edits.apply import WHOLE_FILE_MAX_LINES
from quorum.edits.models import ApplyResult

__all__ = ["default_edit_format", "format_instructions", "reask_message", "resolve_edit_format"]

_COMMON = """\
Rules for every edit:
- Paths are relative to the repository root (for example src/pkg/module.py); never absolute, never
  with '..', never inside .git.
- Every edit in your reply is applied, or none is: if one edit cannot be placed, nothing changes and
  you are asked again with the reason.
- An edit is placed by its text, not by line numbers: the unchanged and removed lines you show must be
  copied exactly from the current file and must match exactly one place in it. Show 2-3 unchanged
  lines before and after each change, more when those lines occur more than once in the file.
- You may put each file's edits in its own fenced block; every block is read.
- A line such as `# ... existing code ...` may stand for unchanged lines between two parts you show,
  but only where what you show still matches one place; never use it in added lines.
"""

_UDIFF = """\
Write your changes as a unified diff in a ```diff fenced block, one section per file:

```diff
--- a/src/app.py
+++ b/src/app.py
@@ -10,7 +10,8 @@ def load(path):
     with open(path) as handle:
         data = handle.read()
-    return parse(data)
+    result = parse(data)
+    return validate(result)
 
 
 def save(path, data):
```

- Each file starts with `--- a/PATH` and `+++ b/PATH`; each change with an `@@` line (its numbers
  are not used, `@@ ... @@` is fine).
- Lines start with a space (unchanged), `-` (removed) or `+` (added); keep the file's indentation
  after that first character.
- New file: `--- /dev/null` and `+++ b/PATH`, every line added. Deleted file: `--- a/PATH` and
  `+++ /dev/null`, every line removed.
"""

_SEARCH_REPLACE = """\
Write each change as a SEARCH/REPLACE block: the file path alone on a line, then a fenced block:

src/app.py
```python
<<<<<<< SEARCH
    with open(path) as handle:
        data = handle.read()
    return parse(data)
=======
    with open(path) as handle:
        data = handle.read()
    result = parse(data)
    return validate(result)
>>>>>>> REPLACE
```

- SEARCH holds lines copied exactly from the current file (whole lines, with their indentation) that
  occur in exactly one place; REPLACE holds what they become. Keep SEARCH short but unique.
- Several blocks may follow each other in one fence; each applies to the path above it.
- New file: the new path, then a block with an empty SEARCH part and the whole content in REPLACE.
- To delete lines, leave them out of REPLACE.
"""

_WHOLE_FILE_TEMPLATE = """\
Write each changed file in full: the file path alone on a line, then a fenced block with the
complete new content of that file:

src/app.py
```python
def load(path):
    ...the whole file, every line, including the unchanged ones...
```

- Only for files of at most {limit} lines (and new files). Write every line of the file: no
  `# ... existing code ...` placeholders, nothing left out.
- For a longer file, use a SEARCH/REPLACE block instead:
{search_replace}"""


def format_instructions(fmt: EditFormat | str, *, whole_file_max_lines: int | None = None) -> str:
    """The prompt text that tells the implementer how to write its edits in this format."""
    fmt = EditFormat(fmt)
    if fmt == EditFormat.udiff:
        body = _UDIFF
    elif fmt == EditFormat.search_replace:
        body = _SEARCH_REPLACE
    else:
        limit = whole_file_max_lines or WHOLE_FILE_MAX_LINES
        body = _WHOLE_FILE_TEMPLATE.format(limit=limit, search_replace=_SEARCH_REPLACE)
    return body + "\n" + _COMMON


def reask_message(result: ApplyResult, fmt: EditFormat | str | None = None) -> str:
    """What to tell the implementer when its reply was refused: the applier's reasons, file and hunk named."""
    lines = [
        "Your previous reply could not be applied, so NOTHING was changed in the repository.",
        "The edit checker reported:",
    ]
    # Every problem already names its file and hunk ("hunk #2 of src/x.py (diff #1): ..."); safety
    # refusals are only here, not in the per-edit outcomes.
    lines.extend(f"- {problem}" for problem in (result.problems or [result.reason]) if problem)
    placed = [o for o in result.edits if o.match.value != "none" and not o.reason]
    if placed:
        lines.append(
            "These parts could be placed but were not applied either (all edits apply or none): "
            + ", ".join(o.label for o in placed)
        )
    again = f" in the {EditFormat(fmt).value} format" if fmt else ""
    lines.append(
        f"Send the COMPLETE set of edits again{again}, against the ORIGINAL files (not on top of your previous "
        "reply), fixing the problems above."
    )
    return "\n".join(lines)
