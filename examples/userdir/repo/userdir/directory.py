"""Users and the permissions granted to them."""

from __future__ import annotations

from userdir.db import Database


class UnknownUser(LookupError):
    """No user has this id."""


class UserDirectory:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add_user(self, name: str) -> int:
        """Create a user and return its id."""
        rows = self._db.execute("INSERT INTO users (name) VALUES (?) RETURNING id", (name,))
        return int(rows[0][0])

    def user_name(self, user_id: int) -> str:
        rows = self._db.execute("SELECT name FROM users WHERE id = ?", (user_id,))
        if not rows:
            raise UnknownUser(user_id)
        return str(rows[0][0])

    def grant(self, user_id: int, permission: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO grants (user_id, permission) VALUES (?, ?)", (user_id, permission)
        )

    def revoke(self, user_id: int, permission: str) -> None:
        self._db.execute("DELETE FROM grants WHERE user_id = ? AND permission = ?", (user_id, permission))

    def permissions(self, user_id: int) -> set[str]:
        """Every permission granted to the user."""
        rows = self._db.execute("SELECT permission FROM grants WHERE user_id = ?", (user_id,))
        return {str(row[0]) for row in rows}

    def has_permission(self, user_id: int, permission: str) -> bool:
        """Whether the user holds `permission`. Called on every request, before any action."""
        rows = self._db.execute(
            "SELECT 1 FROM grants WHERE user_id = ? AND permission = ?", (user_id, permission)
        )
        return bool(rows)
