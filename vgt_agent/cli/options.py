"""Options shared by several commands, declared once so every command spells them the same way."""

from __future__ import annotations

from pathlib import Path

import typer

from vgt_agent.cli.common import usage_error, work_failed
from vgt_agent.home import default_db_path
from vgt_agent.store import StoreError, TraceStore
from vgt_agent.store.trace_store import StoreDamaged, StoreLocked

DbOption = typer.Option(
    None, "--db", envvar="VGT_DB", help="Trace store (SQLite). Default: $VGT_HOME/traces.db (~/.local/share/vgt).",
    show_default=False,
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


def open_store(db: Path | None, *, create: bool) -> TraceStore:
    """Open the store for a command; bad paths end the command with exit 2 and one line, file untouched; a store
    another writer holds past the lock timeout, or a damaged one, is work that could not be done (exit 1)."""
    path = db or default_db_path()
    try:
        return TraceStore.open(path, create=create, readonly=not create)
    except (StoreLocked, StoreDamaged) as e:
        work_failed(str(e))
    except StoreError as e:
        usage_error(str(e))
