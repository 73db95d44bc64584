"""The trace store: idempotent writes, crash safety, concurrent writers, migrations, export round-trip."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from vgt_agent.store import GroundingRecord, ImageRecord, SampleRecord, StoreError, TraceRecord, TraceStore
from vgt_agent.store.export import to_sft_dataset, write_jsonl
from vgt_agent.store.schema import SCHEMA_VERSION

WRITER = Path(__file__).parent / "store_writer.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}


@pytest.fixture
def image(tmp_path: Path) -> ImageRecord:
    path = tmp_path / "img.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(path)
    return ImageRecord.from_path(path)


def _trace(run: str, image: ImageRecord, key: str = "k", **kw) -> TraceRecord:
    sample = SampleRecord("world-tally", "test", key, "How many red circles are there?", image, "2", "count")
    fields = {"completion": "<think>two</think> \\boxed{2}", "answer": "2", "correct": True,
              "groundings": [GroundingRecord("red circle", "point", [[100, 200], [300, 400]])], **kw}
    return TraceRecord(run, sample, fields.pop("variant", "agent"), **fields)


def test_rewriting_a_trace_replaces_it(tmp_path: Path, image: ImageRecord) -> None:
    store = TraceStore.open(tmp_path / "t.db")
    run = store.start_run("ask", backend="test", model="m", grounder="world")
    store.put_trace(_trace(run, image))
    store.put_trace(_trace(run, image, correct=False))
    rows = list(store.traces())
    assert len(rows) == 1 and rows[0]["correct"] is False
    assert store.db["groundings"].count == 1 and store.db["samples"].count == 1
    assert store.has_trace(run, rows[0]["sample_id"], "agent")
    assert not store.has_trace(run, rows[0]["sample_id"], "box")


def test_filters_and_prefix_lookup(tmp_path: Path, image: ImageRecord) -> None:
    store = TraceStore.open(tmp_path / "t.db")
    run = store.start_run("synth", name="synth-a")
    ids = [store.put_trace(_trace(run, image, key=f"k{i}", variant=v, correct=i % 2 == 0))
           for i, v in enumerate(["point", "box", "plain", "point"])]
    assert len(list(store.traces(variant="point"))) == 2
    assert len(list(store.traces(correct=False))) == 2
    assert len(list(store.traces(kind="point"))) == 4 and not list(store.traces(kind="box"))
    assert len(list(store.traces(run="synth-a", limit=3))) == 3
    row = store.trace(ids[0][:6])
    assert row and row["id"] == ids[0] and row["groundings"][0]["coords"] == [[100, 200], [300, 400]]
    assert store.trace("zzzzzz") is None and store.trace("ab") is None


def test_non_sqlite_file_is_refused_and_untouched(tmp_path: Path) -> None:
    bad = tmp_path / "notes.db"
    bad.write_text("just some text, not a database\n")
    before = bad.read_bytes()
    with pytest.raises(StoreError, match="not an SQLite database"):
        TraceStore.open(bad)
    assert bad.read_bytes() == before


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("create table customers (id int)")
    with pytest.raises(StoreError, match="not a vgt trace store"):
        TraceStore.open(other)
    with sqlite3.connect(other) as conn:
        assert [r[0] for r in conn.execute("select name from sqlite_master")] == ["customers"]


def test_missing_store_is_not_created_by_readers(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no trace store"):
        TraceStore.open(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    TraceStore.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("update vgt_meta set value = ? where key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    with pytest.raises(StoreError, match="newer than this vgt"):
        TraceStore.open(path)


def test_sigkill_mid_batch_leaves_every_committed_trace_whole(tmp_path: Path, image: ImageRecord) -> None:
    db = tmp_path / "crash.db"
    TraceStore.open(db).close()
    proc = subprocess.Popen([sys.executable, str(WRITER), str(db), image.path, "crash-run", "100000", "200"],
                            stdout=subprocess.PIPE, text=True, env=ENV)
    committed = -1
    assert proc.stdout is not None
    deadline = time.time() + 60
    for line in proc.stdout:
        committed = int(line.split()[1])
        if committed >= 25 or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert committed >= 0
    with TraceStore.open(db) as store:
        assert store.integrity_ok()
        traces = list(store.traces(run="crash-run"))
        assert len(traces) >= committed + 1
        for t in traces:  # no half-written trace: each has all its groundings and masks
            full = store.trace(t["id"])
            assert full is not None
            assert len(full["groundings"]) == 200 == len(full["masks"]) == full["n_groundings"]
            assert full["completion"].startswith(f"answer {full['answer']} ")


def test_two_concurrent_writer_processes(tmp_path: Path, image: ImageRecord) -> None:
    db = tmp_path / "conc.db"
    procs = [subprocess.Popen([sys.executable, str(WRITER), str(db), image.path, f"run-{k}", "40", "20"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
             for k in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    with TraceStore.open(db) as store:
        assert store.integrity_ok()
        assert len(list(store.traces(run="run-0"))) == 40 == len(list(store.traces(run="run-1")))
        assert store.db["groundings"].count == 2 * 40 * 20


def test_export_round_trip(tmp_path: Path, image: ImageRecord) -> None:
    store = TraceStore.open(tmp_path / "t.db")
    run = store.start_run("synth")
    store.put_trace(_trace(run, image, key="a", variant="point"))
    store.put_trace(_trace(run, image, key="b", variant="box", status="rejected", reason="wrong answer"))
    out = tmp_path / "out.jsonl"
    with out.open("w") as f:
        assert write_jsonl(store, f) == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["variant"] for r in rows} == {"point", "box"}
    assert rows[0]["groundings"][0]["phrase"] == "red circle"
    ds = to_sft_dataset(store)  # default: status ok only
    assert len(ds) == 1
    ex = ds[0]
    assert ex["images"][0].size == (64, 48)
    assert [m["role"] for m in ex["messages"]] == ["user", "assistant"]
    assert ex["messages"][0]["content"][0]["type"] == "image"
    assert ex["messages"][0]["content"][1]["text"] == "How many red circles are there?"
    assert ex["messages"][1]["content"][0]["text"] == "<think>two</think> \\boxed{2}"


def test_merge_is_idempotent(tmp_path: Path, image: ImageRecord) -> None:
    a, b, merged = (TraceStore.open(tmp_path / n) for n in ("a.db", "b.db", "m.db"))
    a.put_trace(_trace(a.start_run("synth", run_id="shard-0"), image, key="x"))
    b.put_trace(_trace(b.start_run("synth", run_id="shard-1"), image, key="y"))
    for _ in range(2):
        merged.copy_from(a)
        merged.copy_from(b)
    assert merged.db["traces"].count == 2 and merged.db["images"].count == 1 and merged.integrity_ok()


def test_a_second_open_in_the_same_process_keeps_the_first_ones_writes_visible(tmp_path: Path) -> None:
    """Re-checking the file header of a store this process has open would close a descriptor of it, drop the
    process's SQLite locks, and let another process's reader delete the WAL the first store still writes to:
    its later writes went to a deleted file, unseen by other processes and lost if it was killed."""
    db = tmp_path / "t.db"
    first = TraceStore.open(db)
    run = first.start_run("warmup")
    TraceStore.open(db).close()
    reader = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
              "print(c.execute('select status from runs').fetchone()[0]); c.close()")
    assert subprocess.run([sys.executable, "-c", reader, str(db)], capture_output=True, text=True,
                          check=True).stdout.strip() == "running"
    first.end_run(run, metrics={"steps": 3})
    seen = subprocess.run([sys.executable, "-c", reader, str(db)], capture_output=True, text=True, check=True)
    assert seen.stdout.strip() == "done"  # another process sees the write while the first store is open
    first.close()
    first.close()  # closing twice is harmless
    with TraceStore.open(db) as store:
        assert store.run(run)["metrics"] == {"steps": 3}
