"""Samples in worker processes, for runs whose CPU work outgrows one interpreter (`vgt synth --workers N`).

Threads overlap model calls but share one GIL, so a run tops out at one core's worth of per-sample CPU
work (segmentation, alignment, image encoding, JSON). With workers, each process runs its share of the
samples in flight on its own threads, with its own pipeline: clients and grounders do not cross process
boundaries, so a worker builds them from a picklable `factory`. It sends each finished sample's outcome
and records back, and the main process keeps the one store writer and commits each sample in one
transaction as before, so a kill loses only samples in flight and resume is unchanged.

Workers ignore SIGINT (the main process decides when to stop: a terminal's Ctrl-C reaches the whole
process group) and exit when their parent is gone. A worker that fails to start or dies fails every
sample in flight with a `WorkerError`, which ends the run (resume redoes those samples).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from vgt_agent.sample import Sample
from vgt_agent.store import TraceRecord
from vgt_agent.synthesis.pipeline import SynthPipeline
from vgt_agent.synthesis.sample_run import run_sample

# (outcome, [(store sample id, records) in commit order]): what a worker returns for one sample
WorkerResult = tuple[dict[str, Any], list[tuple[str, list[TraceRecord]]]]
START_TIMEOUT_S = 300.0  # building a pipeline may load a model
_POLL_S = 0.5


class WorkerError(RuntimeError):
    """A worker process could not start or died; its samples in flight were not committed."""


class SampleWorkers:
    """`processes` spawned worker processes, each running up to `threads` samples at once; a context manager.

    `submit(run_id, sample)` returns a future of the sample's `WorkerResult`; the caller commits the records.
    """

    def __init__(self, factory: Callable[[], SynthPipeline], *, processes: int, threads: int) -> None:
        self.factory = factory
        self.processes = max(1, processes)
        self.threads = max(1, threads)
        self._ids = itertools.count()
        self._pending: dict[int, Future[WorkerResult]] = {}
        self._lock = threading.Lock()
        self._broken: str | None = None
        self._closing = threading.Event()
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._receiver: threading.Thread | None = None

    def start(self) -> SampleWorkers:
        """Start the processes and wait until each has built its pipeline (WorkerError if one cannot)."""
        ctx = multiprocessing.get_context("spawn")  # no fork: the parent's threads and sockets stay its own
        self._tasks, self._results = ctx.Queue(), ctx.Queue()
        self._procs = [ctx.Process(target=_serve, name=f"vgt-synth-worker-{i}", daemon=True,
                                   args=(self.factory, self.threads, self._tasks, self._results, os.getpid()))
                       for i in range(self.processes)]
        for proc in self._procs:
            proc.start()
        ready, deadline = 0, time.monotonic() + START_TIMEOUT_S
        try:
            while ready < self.processes:
                try:
                    kind, _, payload = self._results.get(timeout=_POLL_S)
                except queue.Empty:
                    if (dead := self._dead()) or time.monotonic() > deadline:
                        raise WorkerError(dead or "synth workers did not start in time") from None
                    continue
                if kind == "failed":
                    raise WorkerError(f"a synth worker could not start: {payload}")
                ready += 1
        except BaseException:
            self.close()
            raise
        self._receiver = threading.Thread(target=self._receive, name="synth-workers", daemon=True)
        self._receiver.start()
        return self

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def submit(self, run_id: str, sample: Sample) -> Future[WorkerResult]:
        """Run the sample under `run_id` in a worker; the future's records are not committed yet."""
        future: Future[WorkerResult] = Future()
        with self._lock:
            if self._broken is not None:
                future.set_exception(WorkerError(self._broken))
                return future
            task = next(self._ids)
            self._pending[task] = future
        self._tasks.put((task, run_id, sample))
        return future

    def _dead(self) -> str | None:
        dead = next((p for p in self._procs if p.exitcode is not None), None)
        if dead is None:
            return None
        return f"synth worker {dead.name} exited (code {dead.exitcode}); its samples in flight are redone on resume"

    def _receive(self) -> None:
        """Resolve futures from the workers' results; fail them all if a worker dies."""
        next_check = time.monotonic() + _POLL_S
        while not self._closing.is_set():
            try:
                kind, task, payload = self._results.get(timeout=_POLL_S)
            except queue.Empty:
                kind = None
            if kind is not None:
                with self._lock:
                    future = self._pending.pop(task, None)
                if future is not None and kind == "done":
                    future.set_result(payload)
                elif future is not None:
                    future.set_exception(WorkerError(f"synth worker failed on a sample: {payload}"))
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + _POLL_S
                if not self._closing.is_set() and (dead := self._dead()):
                    self._fail(dead)

    def _fail(self, message: str) -> None:
        with self._lock:
            self._broken = self._broken or message
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(WorkerError(message))

    def close(self) -> None:
        """Stop the workers once their samples are done (the caller waits for its futures first)."""
        if self._closing.is_set():
            return
        self._closing.set()
        if self._procs:
            for _ in range(self.processes * self.threads):
                self._tasks.put(None)
            for proc in self._procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.terminate()
                    proc.join()
            self._tasks.cancel_join_thread()  # nothing is left to deliver to exited workers
        if self._receiver is not None:
            self._receiver.join()
        self._fail("synth workers were closed")

    def __enter__(self) -> SampleWorkers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _collect(commits: list[tuple[str, list[TraceRecord]]]) -> Callable[[str, list[TraceRecord]], None]:
    """A worker's `commit`: keep the records for the main process to commit."""
    return lambda sid, records: commits.append((sid, records))


def _serve(factory: Callable[[], SynthPipeline], threads: int, tasks: Any, results: Any, parent: int) -> None:
    """A worker process: build the pipeline, then run samples from `tasks` on `threads` threads."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pipeline = factory()
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
        results.put(("failed", None, f"{type(e).__name__}: {e}"))
        return
    results.put(("ready", None, os.getpid()))

    def loop() -> None:
        while True:
            try:
                item = tasks.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:
                    return
                continue
            if item is None:
                return
            task, run_id, sample = item
            commits: list[tuple[str, list[TraceRecord]]] = []
            try:
                outcome = run_sample(pipeline, run_id, sample, _collect(commits))
            except BaseException as e:  # noqa: BLE001 - run_sample only raises on a bug; report it
                results.put(("error", task, f"{type(e).__name__}: {e}"))
                continue
            results.put(("done", task, (outcome, commits)))

    workers = [threading.Thread(target=loop, name=f"synth-{i}") for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    if os.getppid() != parent:
        results.cancel_join_thread()  # nobody reads them: do not block exiting on undelivered results
