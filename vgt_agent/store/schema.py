"""The trace store's schema, as a list of forward migrations.

A store records its version in `vgt_meta`; opening an older store applies the missing migrations in one
transaction, and opening a newer one is refused (an older vgt must not write a layout it doesn't know).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a reading command never creates tables, so it never imports sqlite-utils
    from vgt_agent.store.sqlite_lib import sqlite_utils

SCHEMA_VERSION = 1
TABLES = ("vgt_meta", "runs", "images", "samples", "traces", "groundings", "masks")


def _v1(db: sqlite_utils.Database) -> None:
    """Runs, images, samples, traces and their groundings and masks."""
    db["runs"].create(
        {
            "id": str, "kind": str, "name": str, "command": str, "backend": str, "model": str,
            "grounder": str, "config": str, "status": str, "error": str, "metrics": str,
            "started_at": float, "ended_at": float,
        },
        pk="id", not_null={"kind", "status"}, defaults={"status": "running"},
    )
    db["images"].create({"hash": str, "path": str, "width": int, "height": int}, pk="hash")
    db["samples"].create(
        {
            "id": str, "dataset": str, "split": str, "key": str, "image_hash": str, "question": str,
            "gold_answer": str, "answer_type": str, "choices": str, "meta": str,
        },
        pk="id", foreign_keys=[("image_hash", "images", "hash")],
    )
    db["samples"].create_index(["dataset", "split", "key"], unique=True)
    db["traces"].create(
        {
            "id": str, "run_id": str, "sample_id": str, "variant": str, "attempt": int, "parent_id": str,
            "status": str, "reason": str, "error": str, "messages": str, "completion": str,
            "answer": str, "answer_source": str, "correct": int, "verified_fraction": float,
            "n_groundings": int, "backend": str, "model": str, "grounder": str, "timings": str,
            "meta": str, "created_at": float,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id"), ("sample_id", "samples", "id")],
        not_null={"run_id", "sample_id", "variant", "status"},
    )
    db["traces"].create_index(["run_id", "sample_id", "variant", "attempt"], unique=True)
    db["traces"].create_index(["sample_id"])
    db["groundings"].create(
        {
            "trace_id": str, "idx": int, "phrase": str, "kind": str, "coords": str, "source": str,
            "verified": int, "score": float, "span_start": int, "span_end": int,
        },
        pk=("trace_id", "idx"), foreign_keys=[("trace_id", "traces", "id")],
    )
    db["masks"].create(
        {
            "trace_id": str, "idx": int, "grounding_idx": int, "concept": str, "rle": str, "box": str,
            "point": str, "score": float, "grounder": str, "selected": int,
        },
        pk=("trace_id", "idx"), foreign_keys=[("trace_id", "traces", "id")],
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1]
assert len(MIGRATIONS) == SCHEMA_VERSION
