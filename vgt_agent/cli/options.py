"""Options shared by several commands, declared once so every command spells them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vgt_agent.cli.common import usage_error, work_failed
from vgt_agent.home import default_db_path
from vgt_agent.store.errors import StoreDamaged, StoreError, StoreLocked

if TYPE_CHECKING:
    from vgt_agent.store import TraceStore

DbOption = typer.Option(
    None, "--db", envvar="VGT_DB", help="Trace store (SQLite). Default: $VGT_HOME/traces.db (~/.local/share/vgt).",
    show_default=False,
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


def open_store(db: Path | None, *, create: bool) -> TraceStore:
    """Open the store for a command; bad paths end the command with exit 2 and one line, file untouched; a store
    another writer holds past the lock timeout, or a damaged one, is work that could not be done (exit 1)."""
    from vgt_agent.store import TraceStore  # sqlite-utils loads when a command opens a store, not for `--help`

    path = db or default_db_path()
    try:
        return TraceStore.open(path, create=create, readonly=not create)
    except (StoreLocked, StoreDamaged) as e:
        work_failed(str(e))
    except StoreError as e:
        usage_error(str(e))
