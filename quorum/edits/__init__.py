"""Edits that real cheap models write: parse every edit of a reply (unified diff, SEARCH/REPLACE,
whole file), place each by its content, refuse what is ambiguous, apply all or nothing.

The one applier of the pipeline (implement's dry run, the round's apply step) and of
`quorum apply-reply`. It needs no git: it works on any directory. The safety rules (paths,
symlinks, `.git`, submodules, binary, size) hold for every format (`safety.py`). See docs/edits.md.

Public API (stable names):
- `apply_reply(repo, reply, *, dry_run=False) -> ApplyResult` (`quorum.domain.models.PatchResult`)
- `parse_reply(reply) -> ParsedReply`
- `default_edit_format(model) -> EditFormat`, `resolve_edit_format(model, configured)`
- `format_instructions(fmt) -> str` (prompt text), `reask_message(result, fmt) -> str`
"""

from quorum.edits.apply import WHOLE_FILE_MAX_LINES, apply_reply
from quorum.edits.formats import default_edit_format, format_instructions, reask_message, resolve_edit_format
from quorum.edits.models import ApplyResult, Edit, EditFormat, EditOutcome, MatchKind, ParsedReply
from quorum.edits.parse import parse_reply
from quorum.edits.safety import MAX_PATCH_BYTES

__all__ = [
    "MAX_PATCH_BYTES",
    "WHOLE_FILE_MAX_LINES",
    "ApplyResult",
    "Edit",
    "EditFormat",
    "EditOutcome",
    "MatchKind",
    "ParsedReply",
    "apply_reply",
    "default_edit_format",
    "format_instructions",
    "parse_reply",
    "reask_message",
    "resolve_edit_format",
]
