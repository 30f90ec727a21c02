"""The SQLite buffer of readings not yet accepted by Cosm.

WAL mode with ``synchronous=FULL``: every insert is committed and synced before the
handler returns, so a reading that reached the buffer survives a ``kill -9`` (NORMAL would
be enough for that) and a power cut too (NORMAL may lose the last commits then). The cost,
one fsync per reading, is small at sensor rates. One connection, used only from the
component's thread.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, at REAL NOT NULL,
                                     value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS readings_at ON readings (at, id);
"""


@dataclass(frozen=True)
class Row:
    id: int
    stream: str
    at: float
    value: str


class Store:
    def __init__(self, path: Path) -> None:
        # check_same_thread stays on: only the component's thread may use it.
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def add(self, stream: str, at: float, value: str) -> None:
        self.db.execute("INSERT INTO readings (stream, at, value) VALUES (?, ?, ?)", (stream, at, value))

    def pending(self) -> int:
        count: int = self.db.execute("SELECT COUNT(*) FROM readings").fetchone()[0]
        return count

    def oldest(self, limit: int) -> list[Row]:
        rows = self.db.execute("SELECT id, stream, at, value FROM readings ORDER BY at, id LIMIT ?", (limit,))
        return [Row(*row) for row in rows]

    def delete(self, ids: list[int]) -> None:
        self.db.execute("BEGIN")  # one commit (one fsync) for the whole batch
        try:
            self.db.executemany("DELETE FROM readings WHERE id = ?", [(i,) for i in ids])
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def drop_older(self, cutoff: float) -> int:
        """Delete the rows taken before ``cutoff``; how many."""
        return self.db.execute("DELETE FROM readings WHERE at < ?", (cutoff,)).rowcount

    def close(self) -> None:
        self.db.close()
