"""Many threads' grounding requests served by one model grounder in shared batches.

Synthesis runs samples on many threads; a model grounder (SAM3) on one device does best when it sees several
images at once (one vision-encoder batch) and every phrase of an image in one text-prompted forward. A
`BatchingGrounder` queues each caller's (image, phrases) job; one thread takes what is waiting (up to
`max_images` jobs, after at most `wait_s` for more to arrive) and runs the inner grounder's `ground_batch`
over it. Results are the inner grounder's own, so they equal one-at-a-time calls.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Protocol

from PIL import Image

from vgt_agent.grounders.base import GroundingResult

Job = tuple[Image.Image, Sequence[str]]


class BatchGrounder(Protocol):
    name: str

    def ground_batch(self, jobs: Sequence[Job]) -> list[list[GroundingResult]]: ...


class BatchingGrounder:
    """A thread-safe `Grounder` over a `BatchGrounder`: concurrent callers share its forwards."""

    def __init__(self, inner: BatchGrounder, max_images: int = 8, wait_s: float = 0.005) -> None:
        if max_images < 1:
            raise ValueError(f"max_images must be at least 1, got {max_images}")
        self.inner = inner
        self.name = inner.name
        self.max_images = max_images
        self.wait_s = wait_s
        self.batches: list[int] = []  # jobs per inner call, for benchmarks and tests
        self._queue: queue.Queue[tuple[Job, Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name="vgt-grounder-batches", daemon=True)
        self._thread.start()

    def ground(self, image: Image.Image, concept: str) -> GroundingResult:
        return self.ground_many(image, [concept])[0]

    def ground_many(self, image: Image.Image, concepts: Sequence[str]) -> list[GroundingResult]:
        """Every concept on one image, in order, grounded in a batch with whatever other callers wait."""
        future: Future[list[GroundingResult]] = Future()
        self._queue.put(((image, list(concepts)), future))
        return future.result()

    def close(self) -> None:
        """Stop the serving thread once the queued jobs are done."""
        self._queue.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            waiting = [first]
            stop = False
            while len(waiting) < self.max_images:
                try:
                    item = self._queue.get(timeout=self.wait_s)
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                waiting.append(item)
            self._run(waiting)
            if stop:
                return

    def _run(self, waiting: list[tuple[Job, Future]]) -> None:
        self.batches.append(len(waiting))
        try:
            results = self.inner.ground_batch([job for job, _ in waiting])
        except BaseException as e:  # every caller of the batch gets the error, none waits forever
            for _, future in waiting:
                future.set_exception(e)
            return
        for (_, future), result in zip(waiting, results, strict=True):
            future.set_result(result)
