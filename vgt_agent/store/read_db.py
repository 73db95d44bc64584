"""The part of sqlite-utils' `Database` a read-only store uses, over the plain `sqlite3` connection.

Reading commands (`vgt traces list|show|stats|runs`) only run queries; importing sqlite-utils for them cost
~60 ms of a ~0.25 s command. `query` and `count_where` return what sqlite-utils' own do (dict rows, an int);
writes go through sqlite-utils, which a writable store opens with.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any


class ReadOnlyDatabase:
    """`conn`, `execute`, `query`, `close` and `db[table].count_where|count|rows` of a sqlite-utils
    `Database`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> sqlite3.Cursor:
        return self.conn.execute(sql, params or ())

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        cursor = self.execute(sql, params)
        keys = [d[0] for d in cursor.description]
        for row in cursor:
            yield dict(zip(keys, row, strict=True))

    def close(self) -> None:
        self.conn.close()

    def __getitem__(self, table: str) -> _Table:
        return _Table(self, table)


class _Table:
    def __init__(self, db: ReadOnlyDatabase, name: str) -> None:
        self.db, self.name = db, name

    def count_where(self, where: str | None = None, params: Sequence[Any] | dict[str, Any] | None = None) -> int:
        sql = f"select count(*) from [{self.name}]" + (f" where {where}" if where else "")
        return self.db.execute(sql, params).fetchone()[0]

    @property
    def count(self) -> int:
        return self.count_where()

    @property
    def rows(self) -> Iterator[dict[str, Any]]:
        return self.db.query(f"select * from [{self.name}]")
