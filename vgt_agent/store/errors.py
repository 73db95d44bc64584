"""The store's errors, in a module of their own so the CLI's entry point can catch them without loading the
store (sqlite-utils, PIL) for commands that never open one."""

from __future__ import annotations


class StoreError(Exception):
    """A store that cannot be used as asked: missing, not SQLite, not vgt's, or too new. One-line message."""


class StoreDamaged(StoreError):
    """The store's file is damaged (SQLite found a malformed page); `vgt traces check` says where."""


class StoreLocked(StoreError):
    """Another writer held the store's write lock for longer than the lock timeout."""
