"""A thin wrapper over sqlite3 that counts the statements it runs (the service's metrics use it)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS grants (
    user_id INTEGER NOT NULL REFERENCES users (id),
    permission TEXT NOT NULL,
    PRIMARY KEY (user_id, permission)
);
"""


class Database:
    def __init__(self, path: str = ":memory:") -> None:
        self._conn = sqlite3.connect(path)
        self._conn.executescript(SCHEMA)
        self.queries = 0

    def execute(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one parameterised statement in its own transaction and return all result rows."""
        self.queries += 1
        with self._conn:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def close(self) -> None:
        self._conn.close()
