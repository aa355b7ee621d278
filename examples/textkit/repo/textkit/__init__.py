"""textkit: small, dependency-free text utilities."""

from textkit.case import camel_case, snake_case
from textkit.normalize import collapse_whitespace, truncate

__all__ = ["camel_case", "collapse_whitespace", "snake_case", "truncate"]
