"""Where vgt keeps its files: one data directory, overridable by environment.

`VGT_HOME` (default `$XDG_DATA_HOME/vgt`, i.e. `~/.local/share/vgt`) holds the default trace store
`traces.db` and cached world splits; `VGT_DB` overrides the store path alone.
"""

from __future__ import annotations

import os
from pathlib import Path


def vgt_home() -> Path:
    """The data directory (not created here: readers must not create files)."""
    if os.environ.get("VGT_HOME"):
        return Path(os.environ["VGT_HOME"]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "vgt"


def default_db_path() -> Path:
    """The trace store used when no `--db` is given: `$VGT_DB`, else `$VGT_HOME/traces.db`."""
    if os.environ.get("VGT_DB"):
        return Path(os.environ["VGT_DB"]).expanduser()
    return vgt_home() / "traces.db"
