"""Reading a store that another process is writing, as the crash and signal tests need to."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def committed_samples(db: Path) -> int:
    """Distinct samples with a committed trace, read-only (0 while the file does not exist yet)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("select count(distinct sample_id) from traces").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
