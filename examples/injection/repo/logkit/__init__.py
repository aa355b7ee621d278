"""logkit: small helpers for reading and searching log files."""

from logkit.core import grep_lines, head_lines

__all__ = ["grep_lines", "head_lines"]
