"""The SQLite trace store: every run, sample and trace vgt produces, browsable and exportable.

WAL mode, one `BEGIN IMMEDIATE` transaction per written trace (so a killed writer leaves either the whole
trace or nothing), idempotent ids (re-running a sample under the same run replaces, never duplicates), and a
bounded wait for another writer's lock (`VGT_LOCK_TIMEOUT`, then `StoreLocked` naming the holder), so several
writer processes can share one file. Read-only opens work on read-only media; a damaged file reads as
`StoreDamaged`, never as a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgt_agent.store.errors import StoreDamaged, StoreError, StoreLocked
from vgt_agent.store.locks import lock_holder, lock_timeout_s
from vgt_agent.store.records import ImageRecord, SampleRecord, TraceRecord
from vgt_agent.store.schema import MIGRATIONS, SCHEMA_VERSION

if TYPE_CHECKING:
    from vgt_agent.store.sqlite_lib import sqlite_utils
from vgt_agent.store.read_db import ReadOnlyDatabase

SQLITE_MAGIC = b"SQLite format 3\x00"
MERGE_BATCH = 500  # traces per merge transaction: short enough that other writers' waits stay bounded
_OPEN_FILES: Counter[tuple[int, int]] = Counter()  # (device, inode) of the store files this process has open


_DAMAGE_MARKS = ("malformed", "not a database", "corrupt", "disk i/o error")


def is_damage(error: sqlite3.DatabaseError) -> bool:
    """Whether SQLite's error means the file is damaged (rather than busy, read-only or missing)."""
    return any(mark in str(error).lower() for mark in _DAMAGE_MARKS)


def is_lock_wait(error: sqlite3.DatabaseError) -> bool:
    return isinstance(error, sqlite3.OperationalError) and ("locked" in str(error) or "busy" in str(error))


def damaged(path: Path, error: sqlite3.DatabaseError) -> StoreDamaged:
    return StoreDamaged(f"trace store {path} is damaged ({error}); `vgt traces check --db {path}` lists what "
                        "is wrong")


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _file_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def check_file(path: Path) -> None:
    """Refuse anything that is not an SQLite file before SQLite touches it (so it is never modified).

    Never for a file this process already has open as a store: closing any descriptor of a file drops every
    POSIX lock the process holds on it (sqlite.org/howtocorrupt.html, 2.2), and then another process's
    reader, seeing no other connection, checkpoints and deletes the WAL the open store still writes to. In
    `vgt repro tiny` the synth writer's own open did this: for 40 minutes `sqlite3` showed the warm-up, SFT
    and eval runs `running` (their writes went to the deleted file, saved only by the final checkpoint; a
    killed run would have lost them, a second writing process would have corrupted the store)."""
    if _file_key(path) in _OPEN_FILES:
        return
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a trace store")
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as e:
        raise StoreError(f"cannot read trace store {path}: {e.strerror or e}") from e
    if head and head != SQLITE_MAGIC:
        raise StoreError(f"{path} is not a vgt trace store (not an SQLite database)")


def connect_readonly(path: Path, timeout: float) -> sqlite3.Connection:
    """A read-only connection. On read-only media SQLite cannot create the WAL index (`-shm`) a WAL store
    needs, so there the file is opened as immutable, which is exact once no WAL is left to replay."""
    uri = path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=timeout)
    try:
        conn.execute("select count(*) from sqlite_master").fetchone()
        return conn
    except sqlite3.DatabaseError as e:
        conn.close()
        if "unable to open" not in str(e) or os.access(path.parent, os.W_OK):
            raise
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(f"{path} is on read-only storage with unmerged writes in {wal.name}; copy both "
                         "files to writable storage to read it")
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=timeout)


class TraceStore:
    """A vgt trace store at `path`. Use `TraceStore.open(path, create=...)`."""

    def __init__(self, db: sqlite_utils.Database | ReadOnlyDatabase, path: Path, lock_timeout: float | None = None):
        self.db = db
        self.path = path
        self.lock_timeout = lock_timeout_s(lock_timeout)
        self._key: tuple[int, int] | None = _file_key(path)
        _OPEN_FILES[self._key] += 1

    # ---- opening -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, create: bool = True, readonly: bool = False,
             lock_timeout: float | None = None) -> TraceStore:
        """Open (and with `create`, create or migrate) the store; raises StoreError with one clear line.

        `readonly` never changes the store, and opens one on read-only media too (`connect_readonly`). A writer
        waits up to `lock_timeout` seconds (default $VGT_LOCK_TIMEOUT, else 10) for another
        writer's lock, then raises StoreLocked naming who holds it.
        """
        try:
            timeout = lock_timeout_s(lock_timeout)
        except ValueError as e:
            raise StoreError(str(e)) from e
        path = Path(path).expanduser()
        if path.exists():
            check_file(path)
        elif not create:
            raise StoreError(f"no trace store at {path} (pass --db, set VGT_DB, or run a command that writes one)")
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create trace store directory {path.parent}: {e.strerror}") from e
        try:
            conn = connect_readonly(path, timeout) if readonly else sqlite3.connect(str(path), timeout=timeout)
            conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            version = cls._read_version(conn, path)
        except sqlite3.DatabaseError as e:
            if is_damage(e):  # the header was SQLite's (`check_file`): the rest of the file is damaged
                raise damaged(path, e) from e
            raise StoreError(f"{path} is not a usable trace store: {e}") from e
        if version > SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                f"{path} has schema version {version}, newer than this vgt ({SCHEMA_VERSION}); upgrade vgt")
        if version < SCHEMA_VERSION and (readonly or not create):
            conn.close()
            what = "is an SQLite database but not a vgt trace store" if version == 0 else "needs a schema migration"
            raise StoreError(f"{path} {what}")
        if readonly:  # reads need only queries: no sqlite-utils (~60 ms of every `vgt traces` listing)
            return cls(ReadOnlyDatabase(conn), path, timeout)
        from vgt_agent.store.sqlite_lib import sqlite_utils

        # no sqlite-utils plugins: vgt's connections take no third-party SQL functions, and finding the
        # plugins (an entry-point scan of every installed package) is ~25 ms of every command that opens a store
        db = sqlite_utils.Database(conn, execute_plugins=False)
        store = cls(db, path, timeout)
        try:
            with db.ensure_autocommit_on():
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            if version < SCHEMA_VERSION:
                store._migrate()
        except StoreError:
            store.close()
            raise
        except sqlite3.DatabaseError as e:
            store.close()
            if is_lock_wait(e):
                raise store._locked() from e
            raise StoreError(f"cannot write trace store {path}: {e}") from e
        return store

    def _locked(self) -> StoreLocked:
        return StoreLocked(f"trace store {self.path} is locked by another writer: {lock_holder(self.path)}; "
                           f"waited {self.lock_timeout:g} s (--lock-timeout or VGT_LOCK_TIMEOUT to wait longer)")

    @staticmethod
    def _read_version(conn: sqlite3.Connection, path: Path) -> int:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        if "vgt_meta" not in tables:
            if tables:  # someone else's database: never add our tables to it
                raise StoreError(f"{path} is an SQLite database but not a vgt trace store")
            return 0
        row = conn.execute("select value from vgt_meta where key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        """Apply the missing migrations in one immediate transaction (concurrent openers wait, then skip)."""
        with self.transaction():
            version = self._read_version(self.db.conn, self.path)
            for step in MIGRATIONS[version:]:
                step(self.db)
            self.db["vgt_meta"].insert({"key": "schema_version", "value": str(SCHEMA_VERSION)},
                                       pk="key", replace=True)

    def close(self) -> None:
        self.db.close()
        if self._key in _OPEN_FILES:  # once, however often close() is called
            _OPEN_FILES[self._key] -= 1
            if not _OPEN_FILES[self._key]:
                del _OPEN_FILES[self._key]
        self._key = None

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction taken up front (BEGIN IMMEDIATE), so concurrent writers queue, never deadlock."""
        conn = self.db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if is_lock_wait(e):
                raise self._locked() from e
            raise
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # ---- runs ---------------------------------------------------------------------------------------------
    def start_run(self, kind: str, *, run_id: str | None = None, name: str | None = None,
                  command: str | None = None, backend: str | None = None, model: str | None = None,
                  grounder: str | None = None, config: dict[str, Any] | None = None) -> str:
        """Create a run (or reopen one with the same id, for resumable jobs) and return its id."""
        run_id = run_id or f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        with self.transaction():
            existing = self.db["runs"].count_where("id = ?", [run_id])
            row = {"id": run_id, "kind": kind, "name": name or run_id, "command": command, "backend": backend,
                   "model": model, "grounder": grounder, "config": _dumps(config or {}), "status": "running",
                   "error": None, "ended_at": None}
            if existing:
                self.db["runs"].update(run_id, row)
            else:
                self.db["runs"].insert({**row, "started_at": time.time(), "metrics": _dumps({})})
        return run_id

    def end_run(self, run_id: str, *, status: str = "done", error: str | None = None,
                metrics: dict[str, Any] | None = None) -> None:
        """Mark a run done/failed/interrupted, with its metrics."""
        with self.transaction():
            update: dict[str, Any] = {"status": status, "error": error, "ended_at": time.time()}
            if metrics is not None:
                update["metrics"] = _dumps(metrics)
            self.db["runs"].update(run_id, update)

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = list(self.db.query("select * from runs where id = ?", [run_id]))
        return _decode_run(rows[0]) if rows else None

    def runs(self, kind: str | None = None) -> list[dict[str, Any]]:
        where, params = ("where r.kind = ?", [kind]) if kind else ("", [])
        sql = f"""select r.*, count(t.id) as n_traces, sum(t.correct) as n_correct
                  from runs r left join traces t on t.run_id = r.id {where}
                  group by r.id order by r.started_at desc"""
        return [_decode_run(r) for r in self.db.query(sql, params)]

    # ---- writing traces -------------------------------------------------------------------------------
    # The per-trace writes go straight to the connection: sqlite-utils' insert() introspects the table on
    # every call, which was most of the ~3 ms a synthesized sample spent in the store.
    def _write_rows(self, table: str, rows: list[dict[str, Any]], *, replace: bool) -> None:
        if not rows:
            return
        columns = tuple(rows[0])
        sql = _insert_sql(table, columns, replace)
        self.db.conn.executemany(sql, [tuple(r[c] for c in columns) for r in rows])

    def _put_image(self, image: ImageRecord) -> None:
        self._write_rows("images", [asdict(image)], replace=True)

    def _put_sample(self, sample: SampleRecord) -> None:
        self._put_image(sample.image)
        self._write_rows("samples", [
            {"id": sample.id, "dataset": sample.dataset, "split": sample.split, "key": sample.key,
             "image_hash": sample.image.hash, "question": sample.question, "gold_answer": sample.gold_answer,
             "answer_type": sample.answer_type, "choices": _dumps(list(sample.choices)),
             "meta": _dumps(sample.meta)},
        ], replace=True)

    def put_sample(self, sample: SampleRecord) -> str:
        with self.transaction():
            self._put_sample(sample)
        return sample.id

    def put_trace(self, trace: TraceRecord) -> str:
        """Write one trace with its sample, groundings and masks atomically; replaces a trace with the same id
        (`put_trace_rows`' rule)."""
        with self.transaction():
            self._write_trace(trace)
        return trace.id

    def put_traces(self, traces: list[TraceRecord]) -> list[str]:
        """Several traces in one transaction (e.g. every variant of one synthesized sample)."""
        with self.transaction():
            for trace in traces:
                self._write_trace(trace)
        return [t.id for t in traces]

    def _write_trace(self, trace: TraceRecord) -> None:
        tid = trace.id
        self._put_sample(trace.sample)
        row = {"id": tid, "run_id": trace.run_id, "sample_id": trace.sample.id, "variant": trace.variant,
               "attempt": trace.attempt, "parent_id": trace.parent_id, "status": trace.status,
               "reason": trace.reason, "error": trace.error, "messages": _dumps(trace.messages),
               "completion": trace.completion, "answer": trace.answer, "answer_source": trace.answer_source,
               "correct": None if trace.correct is None else int(trace.correct),
               "verified_fraction": trace.verified_fraction, "n_groundings": len(trace.groundings),
               "backend": trace.backend, "model": trace.model, "grounder": trace.grounder,
               "timings": _dumps(trace.timings), "meta": _dumps(trace.meta), "created_at": time.time()}
        groundings = [
            {"trace_id": tid, "idx": i, "phrase": g.phrase, "kind": g.kind, "coords": _dumps(g.coords),
             "source": g.source, "verified": None if g.verified is None else int(g.verified), "score": g.score,
             "span_start": g.span[0] if g.span else None, "span_end": g.span[1] if g.span else None}
            for i, g in enumerate(trace.groundings)]
        masks = [
            {"trace_id": tid, "idx": i, "grounding_idx": m.grounding_idx, "concept": m.concept,
             "rle": _dumps(m.rle), "box": _dumps(m.box), "point": _dumps(m.point), "score": m.score,
             "grounder": m.grounder, "selected": int(m.selected)}
            for i, m in enumerate(trace.masks)]
        self.put_trace_rows(row, groundings, masks)

    def put_trace_rows(self, trace: dict[str, Any], groundings: list[dict[str, Any]],
                       masks: list[dict[str, Any]]) -> str:
        """The one way a trace reaches the store (`put_trace` and merges), inside the caller's transaction.

        The rule: a trace id holds exactly one version of a trace with its own groundings and masks. The same
        content again (every column but `created_at`, and the same children) changes nothing: "identical". A
        new id is inserted: "new". Different content under a stored id replaces the old trace whole, its
        groundings and masks deleted first so none of the old ones survive: "replaced". The later write wins
        because ids name (run, sample, variant, attempt): a re-run of a sample replaces its earlier answer,
        and a merge of stores reads as if their traces had been written into one store in order; merge
        reports how many it replaced, so two shards that answered the same sample differently are seen.
        """
        tid = trace["id"]
        stored = _rows(self.db.conn.execute("select * from traces where id = ?", [tid]))
        if stored:
            same = all(trace.get(c) == v for c, v in stored[0].items() if c != "created_at")
            if same and self._children(tid) == (groundings, masks):
                return "identical"
            for table in ("groundings", "masks"):
                self.db.conn.execute(f"delete from {table} where trace_id = ?", [tid])
        self._write_rows("traces", [trace], replace=True)
        self._write_rows("groundings", groundings, replace=False)
        self._write_rows("masks", masks, replace=False)
        return "replaced" if stored else "new"

    def _children(self, trace_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A stored trace's groundings and masks, by index."""
        groundings, masks = (_rows(self.db.conn.execute(f"select * from {table} where trace_id = ? order by idx",
                                                        [trace_id])) for table in ("groundings", "masks"))
        return groundings, masks

    def has_trace(self, run_id: str, sample_id: str, variant: str | None = None) -> bool:
        """Whether a sample already has a trace under a run: what resumable batch jobs skip."""
        sql, params = "run_id = ? and sample_id = ?", [run_id, sample_id]
        if variant:
            sql, params = sql + " and variant = ?", params + [variant]
        return self.db["traces"].count_where(sql, params) > 0

    def finished_sample_ids(self, run_id: str) -> set[str]:
        """Samples of a run with at least one non-error trace; samples with only error rows get redone."""
        rows = self.db.execute("select distinct sample_id from traces where run_id = ? and status != 'error'",
                               [run_id])
        return {r[0] for r in rows}

    def delete_error_traces(self, run_id: str, sample_id: str) -> None:
        """Drop one sample's error rows in a run (with their groundings and masks), before it is redone."""
        ids = [r[0] for r in self.db.execute(
            "select id from traces where run_id = ? and sample_id = ? and status = 'error'", [run_id, sample_id])]
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with self.transaction():
            for table in ("groundings", "masks", "traces"):
                column = "id" if table == "traces" else "trace_id"
                self.db.execute(f"delete from {table} where {column} in ({marks})", ids)

    # ---- reading --------------------------------------------------------------------------------------
    def traces(self, *, run: str | None = None, dataset: str | None = None, variant: str | None = None,
               kind: str | None = None, correct: bool | None = None, status: str | None = None,
               search: str | None = None, limit: int | None = None, offset: int = 0) -> Iterator[dict[str, Any]]:
        """Traces joined with their sample and image, newest first, filtered as asked.

        `kind` keeps traces with at least one grounding of that kind (point/box); `run` matches a run id or
        its name.
        """
        clauses, params = [], []
        if run:
            clauses.append("(t.run_id = ? or r.name = ?)")
            params += [run, run]
        if dataset:  # a dataset name, or a split name ("world-tally" is stored as dataset world, split world-tally)
            clauses.append("(s.dataset = ? or s.split = ?)")
            params += [dataset, dataset]
        for column, value in (("t.variant", variant), ("t.status", status)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if correct is not None:
            clauses.append("t.correct = ?")
            params.append(int(correct))
        if kind:
            clauses.append("exists (select 1 from groundings g where g.trace_id = t.id and g.kind = ?)")
            params.append(kind)
        if search:  # a plain substring: `%`, `_` and `\\` in it are characters, not LIKE patterns
            clauses.append("(s.question like ? escape '\\' or t.completion like ? escape '\\')")
            params += [f"%{_like_escaped(search)}%"] * 2
        where = ("where " + " and ".join(clauses)) if clauses else ""
        page = f"limit {int(limit)} offset {int(offset)}" if limit is not None else ""
        sql = f"""select t.*, r.name as run_name, r.kind as run_kind, s.dataset, s.split, s.key as sample_key,
                         s.question, s.gold_answer, s.answer_type, s.choices, s.image_hash,
                         i.path as image_path, i.width, i.height
                  from traces t join samples s on s.id = t.sample_id join runs r on r.id = t.run_id
                  join images i on i.hash = s.image_hash {where}
                  order by t.created_at desc, t.id {page}"""
        for row in self.db.query(sql, params):
            yield _decode_trace(row)

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """One trace with its groundings and masks; a unique id prefix (>= 4 characters) is accepted, compared
        character for character (no pattern)."""
        if len(trace_id) < 4:
            return None
        ids = [r[0] for r in self.db.execute("select id from traces where substr(id, 1, ?) = ? limit 2",
                                             [len(trace_id), trace_id])]
        if len(ids) != 1:
            return None
        row = next(self.traces_by_ids(ids))
        row["groundings"] = [
            {**g, "coords": json.loads(g["coords"]), "verified": None if g["verified"] is None else bool(g["verified"])}
            for g in self.db.query("select * from groundings where trace_id = ? order by idx", ids)
        ]
        row["masks"] = [
            {**m, "rle": json.loads(m["rle"]), "box": json.loads(m["box"]), "point": json.loads(m["point"]),
             "selected": bool(m["selected"])}
            for m in self.db.query("select * from masks where trace_id = ? order by idx", ids)
        ]
        return row

    def traces_by_ids(self, ids: list[str]) -> Iterator[dict[str, Any]]:
        marks = ",".join("?" * len(ids))
        sql = f"""select t.*, r.name as run_name, r.kind as run_kind, s.dataset, s.split, s.key as sample_key,
                         s.question, s.gold_answer, s.answer_type, s.choices, s.image_hash,
                         i.path as image_path, i.width, i.height
                  from traces t join samples s on s.id = t.sample_id join runs r on r.id = t.run_id
                  join images i on i.hash = s.image_hash where t.id in ({marks})"""
        for row in self.db.query(sql, ids):
            yield _decode_trace(row)

    def stats(self) -> dict[str, Any]:
        """Counts for `vgt traces stats`: totals, and per run / dataset / variant breakdowns."""
        db = self.db
        totals = {t: db[t].count for t in ("runs", "samples", "images", "traces", "groundings", "masks")}

        def grouped(column: str) -> list[dict[str, Any]]:
            sql = f"""select {column} as key, count(*) as traces, sum(t.correct) as correct,
                             sum(t.correct is not null) as judged, avg(t.n_groundings) as groundings_per_trace,
                             avg(t.verified_fraction) as verified_fraction,
                             sum(t.status = 'ok') as ok, sum(t.status = 'rejected') as rejected,
                             sum(t.status = 'error') as errors
                      from traces t join samples s on s.id = t.sample_id join runs r on r.id = t.run_id
                      group by {column} order by traces desc"""
            out = []
            for r in db.query(sql):
                r["accuracy"] = (r["correct"] or 0) / r["judged"] if r["judged"] else None
                out.append(r)
            return out

        return {"path": str(self.path), "schema_version": SCHEMA_VERSION, "totals": totals,
                "by_run": grouped("r.id"), "by_dataset": grouped("s.dataset"), "by_variant": grouped("t.variant"),
                "size_bytes": os.path.getsize(self.path) if self.path.exists() else 0}

    def integrity_ok(self) -> bool:
        return self.db.execute("pragma integrity_check").fetchone()[0] == "ok"

    def verify(self) -> None:
        """Raise StoreDamaged unless SQLite's quick check (every page read and its structure checked, indexes
        not compared with their tables) finds the file sound."""
        try:
            result = self.db.conn.execute("pragma quick_check(1)").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise damaged(self.path, e) from e
        if result != "ok":
            raise damaged(self.path, sqlite3.DatabaseError(result))

    def copy_from(self, other: TraceStore) -> dict[str, int]:
        """Merge another store's rows into this one; returns counts per table and per outcome.

        Runs, images and samples are upserted by id. Each trace goes through `put_trace_rows`, the rule
        `put_trace` follows: identical content is skipped, a new id inserted, different content under a
        stored id replaced whole (counted as a conflict). Traces are committed `MERGE_BATCH` at a time, each
        with its children, so other writers never wait long and an interrupted merge leaves whole traces only;
        merging again finishes it.
        """
        counts: dict[str, int] = {}
        with self.transaction():
            for table in ("runs", "images", "samples"):
                rows = list(other.db[table].rows)
                self._write_rows(table, rows, replace=True)
                counts[table] = len(rows)
        outcomes = Counter({"new": 0, "identical": 0, "replaced": 0})
        ids = [r[0] for r in other.db.conn.execute("select id from traces order by id")]
        for start in range(0, len(ids), MERGE_BATCH):
            with self.transaction():
                for tid in ids[start:start + MERGE_BATCH]:
                    (trace,) = _rows(other.db.conn.execute("select * from traces where id = ?", [tid]))
                    outcomes[self.put_trace_rows(trace, *other._children(tid))] += 1
        counts.update(traces=len(ids), new=outcomes["new"], identical=outcomes["identical"],
                      conflicts=outcomes["replaced"])
        return counts


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("config", "metrics"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row


def _decode_trace(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("messages", "timings", "meta", "choices"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    if row.get("correct") is not None:
        row["correct"] = bool(row["correct"])
    return row


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    """A cursor's rows as dicts by column name."""
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor]


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...], replace: bool) -> str:
    verb = "insert or replace" if replace else "insert"
    names = ", ".join(f"[{c}]" for c in columns)
    return f"{verb} into [{table}] ({names}) values ({', '.join('?' * len(columns))})"
