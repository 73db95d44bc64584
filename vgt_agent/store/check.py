"""`vgt traces check`: is a trace store sound? SQLite's page-level integrity, vgt's schema, vgt's invariants.

Every problem is one line saying what is wrong and where; an empty list means the store is sound.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from vgt_agent.store.locks import lock_timeout_s
from vgt_agent.store.schema import MIGRATIONS, SCHEMA_VERSION, TABLES
from vgt_agent.store.sqlite_lib import sqlite_utils
from vgt_agent.store.trace_store import StoreError, check_file, connect_readonly

MAX_INTEGRITY_LINES = 100  # SQLite stops listing after this many damaged spots


def expected_columns() -> dict[str, list[tuple[str, str]]]:
    """Table -> (column, type) as this vgt's migrations create them, read from a fresh in-memory store."""
    db = sqlite_utils.Database(memory=True)
    for step in MIGRATIONS:
        step(db)
    return {table: _columns(db.conn, table) for table in TABLES if table != "vgt_meta"}


def _columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    return [(row[1], row[2].upper()) for row in conn.execute(f"pragma table_info([{table}])")]


def _schema_problems(conn: sqlite3.Connection) -> list[str]:
    tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
    if "vgt_meta" not in tables:
        return ["no vgt_meta table: not a vgt trace store"]
    row = conn.execute("select value from vgt_meta where key = 'schema_version'").fetchone()
    version = int(row[0]) if row and str(row[0]).isdigit() else None
    if version != SCHEMA_VERSION:
        return [f"schema version {version}, this vgt reads version {SCHEMA_VERSION}"]
    problems = []
    for table, columns in expected_columns().items():
        if table not in tables:
            problems.append(f"table {table} is missing")
        elif (found := _columns(conn, table)) != columns:
            missing = sorted({c for c, _ in columns} - {c for c, _ in found})
            problems.append(f"table {table} has columns {[c for c, _ in found]}"
                            + (f", missing {missing}" if missing else ", not as this vgt made them"))
    return problems


def _invariant_problems(conn: sqlite3.Connection) -> list[str]:
    """Rows that break what vgt writes: rows referring to a missing parent (a grounding without its trace, a
    trace without its run or sample), traces whose groundings disagree with `n_groundings` (stale rows)."""
    orphans: dict[tuple[str, str], int] = {}
    for table, _rowid, parent, _fk in conn.execute("pragma foreign_key_check"):
        orphans[(table, parent)] = orphans.get((table, parent), 0) + 1
    problems = [f"{n} row(s) of {table} refer to a missing {parent} row" for (table, parent), n in orphans.items()]
    stale = conn.execute("""select t.id, t.n_groundings, count(g.idx) from traces t
                            left join groundings g on g.trace_id = t.id
                            group by t.id having count(g.idx) != coalesce(t.n_groundings, 0)""").fetchall()
    if stale:
        tid, expected, found = stale[0]
        problems.append(f"{len(stale)} trace(s) hold a different number of groundings than their n_groundings "
                        f"(e.g. {tid}: n_groundings {expected}, {found} rows)")
    return problems


def check_store(path: str | Path) -> dict[str, Any]:
    """Check the store at `path` without writing to it: {"path", "ok", "problems", "traces"}.

    Raises StoreError only when `path` is not an SQLite file at all (missing, a directory, another format).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise StoreError(f"no trace store at {path}")
    check_file(path)
    problems: list[str] = []
    traces = None
    try:
        conn = connect_readonly(path, lock_timeout_s())
    except sqlite3.DatabaseError as e:
        return {"path": str(path), "ok": False, "problems": [f"damaged: {e}"], "traces": None}
    try:
        for part in (_integrity_problems, _schema_problems, _invariant_problems):
            try:
                problems += part(conn)
            except sqlite3.DatabaseError as e:
                problems.append(f"damaged: {e} (in the {part.__name__.strip('_').split('_')[0]} check)")
        with contextlib.suppress(sqlite3.DatabaseError):
            traces = conn.execute("select count(*) from traces").fetchone()[0]
    finally:
        conn.close()
    return {"path": str(path), "ok": not problems, "problems": problems, "traces": traces}


def _integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """SQLite's integrity check; when damage stops it, the quick check (pages only), which names the pages."""
    try:
        rows = [r[0] for r in conn.execute(f"pragma integrity_check({MAX_INTEGRITY_LINES})")]
    except sqlite3.DatabaseError as e:
        try:
            rows = [r[0] for r in conn.execute(f"pragma quick_check({MAX_INTEGRITY_LINES})")]
        except sqlite3.DatabaseError:
            raise e from None
        rows = [str(e)] + [row for row in rows if row != "ok"]
    return [] if rows == ["ok"] else [f"damaged: {row}" for row in rows]
