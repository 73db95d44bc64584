"""One thread owns the trace store's connection; workers hand it whole samples to commit.

SQLite connections belong to the thread that opened them, and one writer serialises commits without
lock contention between workers. `write_sample` returns only after the sample's transaction committed,
so what the progress bar counts is on disk. A sample that had failed before (status "error") has its
error rows removed first, in their own transaction: a kill in between leaves the sample with no rows,
which resume simply redoes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from vgt_agent.store import TraceRecord, TraceStore

T = TypeVar("T")


class StoreWriter:
    """A writer thread around a `TraceStore`; use as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._queue: queue.Queue[tuple[Callable[[TraceStore], Any], Future] | None] = queue.Queue()
        self._opened: Future[None] = Future()
        self._thread = threading.Thread(target=self._loop, name="synth-writer", daemon=True)
        self._thread.start()
        self._opened.result()  # opening errors surface here, in the caller

    def _loop(self) -> None:
        try:
            store = TraceStore.open(self.path, create=True)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            self._opened.set_exception(e)
            return
        self._opened.set_result(None)
        try:
            while (item := self._queue.get()) is not None:
                fn, future = item
                try:
                    future.set_result(fn(store))
                except BaseException as e:  # noqa: BLE001 - the caller decides what a failed write means
                    future.set_exception(e)
        finally:
            store.close()

    def call(self, fn: Callable[[TraceStore], T]) -> T:
        """Run `fn(store)` on the writer thread and return its result (or raise its exception)."""
        future: Future[T] = Future()
        self._queue.put((fn, future))
        return future.result()

    def write_sample(self, run_id: str, sample_id: str, records: list[TraceRecord]) -> None:
        """Commit one sample's records atomically, replacing an earlier failed attempt."""

        def commit(store: TraceStore) -> None:
            store.delete_error_traces(run_id, sample_id)
            store.put_traces(records)

        self.call(commit)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
