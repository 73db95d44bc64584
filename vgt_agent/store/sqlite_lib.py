"""sqlite-utils, imported without its optional pandas and numpy imports.

sqlite-utils imports pandas and numpy (when installed) at import time, only to know the column types of
`pandas.Timestamp` and numpy scalar values when it creates a table from rows. vgt creates its tables from
Python types (`schema.py`) and writes rows into existing tables, so it never uses them, and they are ~0.45 s
of every command that opens a store. So the import below sees whichever of the two is not loaded yet as
absent. It runs once, when the first store module is imported (the command's own thread, before any worker
starts); a library loaded later is unaffected.
"""

from __future__ import annotations

import sys

_OPTIONAL = ("pandas", "numpy")

if "sqlite_utils" in sys.modules:
    import sqlite_utils
else:
    _blocked = [name for name in _OPTIONAL if name not in sys.modules]
    for name in _blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` raises ImportError
    try:
        import sqlite_utils
    finally:
        for name in _blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]

__all__ = ["sqlite_utils"]
