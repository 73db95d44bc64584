"""Who holds a trace store's write lock, and how long a writer waits for it.

SQLite takes POSIX byte-range locks: in WAL mode the writer holds a write lock on byte 120 of the `-shm` file,
in rollback mode a write lock on the database file's reserved byte and above. Linux lists every such lock
with its owner's pid in /proc/locks, so a writer that cannot get in can say who is writing.
"""

from __future__ import annotations

import os
from pathlib import Path

LOCK_TIMEOUT_ENV = "VGT_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT_S = 10.0
WAL_WRITE_LOCK_BYTE = 120  # sqlite3 os_unix.c: the first shm lock slot, held by the one writer
RESERVED_BYTE = 0x40000001  # rollback journal mode: RESERVED, PENDING is one below it, SHARED above it


def lock_timeout_s(value: float | str | None = None) -> float:
    """Seconds a writer waits for another writer's lock: `value`, else $VGT_LOCK_TIMEOUT, else 10 s."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV) if value is None else value
    if raw is None or raw == "":
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not 0 <= seconds < 1e6:
        raise ValueError(f"lock timeout {raw!r} must be between 0 and 1e6 seconds")
    return seconds


def _device_and_inode(path: Path) -> str | None:
    """`MAJOR:MINOR:INODE` as /proc/locks writes it (hex device numbers), or None if `path` is gone."""
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"


def write_lock_holders(db_path: Path, proc_locks: Path = Path("/proc/locks")) -> list[int]:
    """Pids holding a write lock on the store (its WAL writer byte, or its rollback-mode reserved lock)."""
    shm = _device_and_inode(db_path.with_name(db_path.name + "-shm"))
    main = _device_and_inode(db_path)
    try:
        lines = proc_locks.read_text().splitlines()
    except OSError:
        return []
    pids: list[int] = []
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a waiter, listed under the lock it waits for
            fields.remove("->")
        if len(fields) < 8 or fields[1] not in ("POSIX", "OFDLCK") or fields[3] != "WRITE":
            continue
        pid, where, start, end = fields[4], fields[5], fields[6], fields[7]
        try:
            start_byte, end_byte = int(start), (int(end) if end != "EOF" else 1 << 63)
        except ValueError:
            continue
        holds_wal = where == shm and start_byte <= WAL_WRITE_LOCK_BYTE <= end_byte
        holds_rollback = where == main and end_byte >= RESERVED_BYTE - 1
        if (holds_wal or holds_rollback) and pid.lstrip("-").isdigit() and int(pid) > 0 and int(pid) not in pids:
            pids.append(int(pid))
    return pids


def describe_process(pid: int) -> str:
    """`pid 123 (vgt synth --dataset ...)`, or `pid 123` when its command line cannot be read."""
    if pid == os.getpid():
        return f"pid {pid} (this process, another connection)"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    command = " ".join(" ".join(a.decode("utf-8", "replace").split()) for a in argv if a)
    if len(command) > 120:
        command = command[:117] + "..."
    return f"pid {pid} ({command})" if command else f"pid {pid}"


def lock_holder(db_path: Path) -> str:
    """Who holds the store's write lock, in words: the pid and command line, else "another process"."""
    pids = write_lock_holders(db_path)
    return ", ".join(describe_process(pid) for pid in pids) if pids else "another process"
