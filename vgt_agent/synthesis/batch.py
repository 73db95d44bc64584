"""The batch runner: many samples through the synthesis graph with bounded concurrency, resumably.

Worker threads run one sample each (model calls are network-bound, so threads overlap them); at most
`concurrency` samples are in flight and samples are submitted lazily. Every sample commits in one
transaction through the `StoreWriter`, so a SIGKILL loses at most the samples in flight and never leaves
one half-written; re-running the same run skips samples that already have a non-error row. A per-sample
failure becomes an "error" row and a count, never the end of the batch; but `max_unreachable` samples in a
row failing to reach the model server (after the backend's own retries) means the server is dead, and the
run stops with that message. SIGINT/SIGTERM stop submitting and let in-flight samples finish; a second
one exits at once (committed samples are safe either way). With `workers` (`vgt synth --workers N`) the
samples run in worker processes instead (`workers.py`), and this process commits their records the same
way, one transaction per sample, through the one writer.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from vgt_agent.sample import Sample
from vgt_agent.store import TraceRecord
from vgt_agent.synthesis.pipeline import SynthPipeline
from vgt_agent.synthesis.sample_run import run_sample, store_sample_id
from vgt_agent.synthesis.workers import SampleWorkers, WorkerError
from vgt_agent.synthesis.writer import StoreWriter

STAGES = ("distill", "verify", "extract", "ground", "align", "agent", "store", "total")


@dataclass
class BatchStats:
    """What the run did this session (the store holds the totals over resumed sessions)."""

    selected: int = 0
    skipped: int = 0  # already done in this run
    processed: int = 0
    kept: int = 0
    rejected: int = 0
    errors: int = 0
    variants: int = 0
    rejected_by: Counter = field(default_factory=Counter)
    candidates_rejected_by: Counter = field(default_factory=Counter)
    errors_by: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    groundings: list[int] = field(default_factory=list)  # per kept grounded trace
    stage_s: Counter = field(default_factory=Counter)  # summed over processed samples
    elapsed_s: float = 0.0
    stopped: str | None = None  # None (finished) | "interrupted" | "dead_server" | "store_failed"
    message: str | None = None

    def add(self, outcome: dict[str, Any]) -> None:
        self.processed += 1
        status = outcome["status"]
        if status == "kept":
            self.kept += 1
        elif status == "rejected":
            self.rejected += 1
            self.rejected_by[outcome.get("reason") or "unknown"] += 1
        else:
            self.errors += 1
            self.errors_by[outcome.get("kind") or "error"] += 1
        self.variants += outcome.get("variants", 0)
        self.candidates_rejected_by.update(outcome.get("candidate_reasons", []))
        self.dropped.update(outcome.get("dropped", {}))
        self.groundings += outcome.get("groundings", [])
        self.stage_s.update(outcome.get("timings", {}))

    def to_dict(self) -> dict[str, Any]:
        per_sample = {k: self.stage_s[f"{k}_s"] / self.processed for k in STAGES
                      if self.processed and f"{k}_s" in self.stage_s}
        return {
            "selected": self.selected, "skipped_done": self.skipped, "processed": self.processed,
            "kept": self.kept, "rejected": self.rejected, "errors": self.errors, "variants": self.variants,
            "rejected_by_reason": dict(self.rejected_by.most_common()),
            "candidates_rejected_by_reason": dict(self.candidates_rejected_by.most_common()),
            "errors_by_kind": dict(self.errors_by.most_common()), "dropped_objects": dict(self.dropped.most_common()),
            "groundings_per_trace": sum(self.groundings) / len(self.groundings) if self.groundings else None,
            "seconds_per_sample_by_stage": per_sample, "elapsed_s": self.elapsed_s,
            "samples_per_s": self.processed / self.elapsed_s if self.elapsed_s else None,
            "stopped": self.stopped, "message": self.message,
        }


class BatchRunner:
    """Runs `samples` through `pipeline` into `writer` under `run_id`: on threads of this process, or with
    `workers`, in worker processes whose records this process commits."""

    def __init__(self, pipeline: SynthPipeline, writer: StoreWriter, run_id: str, samples: Sequence[Sample], *,
                 done: set[str] = frozenset(), concurrency: int = 32, max_unreachable: int = 3,
                 on_outcome: Callable[[BatchStats, dict[str, Any]], None] | None = None,
                 workers: SampleWorkers | None = None) -> None:
        self.pipeline = pipeline
        self.writer = writer
        self.run_id = run_id
        self.samples = samples
        self.done = done
        self.concurrency = max(1, concurrency)
        self.max_unreachable = max(1, max_unreachable)
        self.on_outcome = on_outcome
        self.workers = workers
        self.stats = BatchStats(selected=len(samples))
        self._stop = threading.Event()
        self._signals = 0

    def todo(self) -> list[Sample]:
        return [s for s in self.samples if store_sample_id(s) not in self.done]

    def stop(self) -> None:
        """Finish the samples in flight, start no more."""
        self._stop.set()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals += 1
        if self._signals > 1:
            sys.stderr.write("\nforced stop: committed samples are safe; in-flight ones will be redone on resume\n")
            sys.stderr.flush()
            os._exit(130)
        if self.stats.stopped is None:
            self.stats.stopped = "interrupted"
            self.stats.message = f"stopped by {signal.Signals(signum).name}; finishing the samples in flight"
        self.stop()

    def _commit(self, sid: str, records: list[TraceRecord]) -> None:
        self.writer.write_sample(self.run_id, sid, records)

    def process(self, sample: Sample) -> dict[str, Any]:
        """One sample end to end on this thread; never raises for the sample's own failures."""
        return run_sample(self.pipeline, self.run_id, sample, self._commit)

    def _outcome(self, future: Future) -> dict[str, Any]:
        """A finished sample's outcome; a worker's records are committed here first (one writer)."""
        if self.workers is None:
            return future.result()
        outcome, commits = future.result()
        for sid, records in commits:
            self._commit(sid, records)
        return outcome

    def run(self) -> BatchStats:
        todo = self.todo()
        self.stats.skipped = len(self.samples) - len(todo)
        in_main = threading.current_thread() is threading.main_thread()
        previous = {}
        if in_main:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._on_signal)
        started = time.perf_counter()
        unreachable_streak = 0
        pool = None
        if self.workers is None:
            pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="synth")
        try:
            pending: set[Future] = set()
            queue = iter(todo)
            exhausted = False
            while True:
                while not exhausted and not self._stop.is_set() and len(pending) < self.concurrency:
                    sample = next(queue, None)
                    if sample is None:
                        exhausted = True
                        break
                    pending.add(pool.submit(self.process, sample) if pool else self.workers.submit(self.run_id, sample))
                if not pending:
                    break
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    try:
                        outcome = self._outcome(future)
                    except WorkerError as e:
                        self.stats.stopped, self.stats.message = "worker_failed", str(e)
                        self.stop()
                        continue
                    except Exception as e:  # noqa: BLE001 - only the store itself failing gets here
                        self.stats.stopped, self.stats.message = "store_failed", f"cannot write the trace store: {e}"
                        self.stop()
                        continue
                    self.stats.add(outcome)
                    unreachable_streak = unreachable_streak + 1 if outcome.get("unreachable") else 0
                    if unreachable_streak >= self.max_unreachable and self.stats.stopped != "dead_server":
                        self.stats.stopped = "dead_server"
                        self.stats.message = f"model server unreachable, stopping: {outcome['error']}"
                        self.stop()
                    if self.on_outcome is not None:
                        self.on_outcome(self.stats, outcome)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
            self.stats.elapsed_s = time.perf_counter() - started
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.stats
