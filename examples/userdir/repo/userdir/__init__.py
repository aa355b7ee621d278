"""userdir: users and their permissions, stored in SQLite."""

from userdir.db import Database
from userdir.directory import UnknownUser, UserDirectory

__all__ = ["Database", "UnknownUser", "UserDirectory"]
