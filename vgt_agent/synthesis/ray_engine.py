"""Samples on Ray actors (`vgt synth --engine ray`): synthesis past one machine, the same run as the local engine.

Each actor builds one pipeline (teacher clients and grounder, with its model loaded once) and runs up to
`threads` samples at once; the driver keeps the batch runner and its one store writer, and commits each
sample's records in one transaction as they stream back. So the store, resume, `vgt traces` and the run's
outcome are exactly the local engine's: only where a sample runs changes.

Why actors, not Ray Data: a sample is a dozen network-bound calls with per-sample error rows, resume and a
dead-server stop; Ray Data batches rows through fixed-size operators and holds results until an operator's
batch is done. Actors give one long-lived pipeline per slot (a SAM3 actor asks for `num_gpus`), bounded
concurrency per actor, and one future per sample for the driver to commit as soon as it is done.

Faults: actors restart (`max_restarts=-1`) and a sample in flight on a dead actor is run again on its
successor (`max_task_retries=-1`); its records reach the driver once, so nothing is lost or duplicated. A
killed driver loses only the samples in flight (never committed); the same command resumes the run.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from vgt_agent.sample import Sample
from vgt_agent.store import TraceRecord
from vgt_agent.synthesis.pipeline import SynthPipeline
from vgt_agent.synthesis.sample_run import run_sample
from vgt_agent.synthesis.workers import WorkerError, WorkerResult

START_TIMEOUT_S = 300.0  # building a pipeline may load a model


@dataclass(frozen=True)
class RaySettings:
    """Where and how the actors run. `address` None starts a local Ray instance (all this machine's CPUs);
    "auto" joins the cluster this machine belongs to; "ray://host:10001" a remote one."""

    actors: int = 2
    threads: int = 16  # samples in flight per actor
    address: str | None = None
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError("--engine ray needs Ray: pip install 'vgt[ray]'") from None
    return ray


class _SampleActor:
    """One actor: a pipeline, and `process` running one sample on it (threads come from `max_concurrency`)."""

    def __init__(self, factory: Callable[[], SynthPipeline]) -> None:
        self.pipeline = factory()

    def pid(self) -> int:
        return os.getpid()

    def process(self, run_id: str, sample: Sample) -> WorkerResult:
        commits: list[tuple[str, list[TraceRecord]]] = []
        outcome = run_sample(self.pipeline, run_id, sample, lambda sid, records: commits.append((sid, records)))
        return outcome, commits


class RaySampleWorkers:
    """`SampleWorkers`' interface on Ray actors: `submit(run_id, sample)` returns a future of the sample's
    `WorkerResult`, whose records the caller commits; a context manager. `factories[i]` builds actor i's
    pipeline (several model servers: one factory per server, spread over the actors)."""

    def __init__(self, factories: Sequence[Callable[[], SynthPipeline]], settings: RaySettings) -> None:
        if not factories:
            raise ValueError("RaySampleWorkers needs at least one pipeline factory")
        self.factories = list(factories)
        self.settings = settings
        self._actors: list[Any] = []
        self._in_flight: list[int] = []
        self._lock = threading.Lock()
        self._started_ray = False
        self._ray: Any = None
        self._order = itertools.count()
        self._stdout_to_stderr: contextlib.AbstractContextManager | None = None

    def start(self) -> RaySampleWorkers:
        """Connect to (or start) Ray, start the actors and wait until each has built its pipeline."""
        ray = self._ray = _import_ray()
        s = self.settings
        if not ray.is_initialized():
            env = {"env_vars": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}}
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "runtime_env": env,
                                      "logging_level": logging.ERROR}
            if s.address is None:
                kwargs["num_cpus"] = max(os.cpu_count() or 1, int(s.actors * s.cpus_per_actor + 0.999))
            try:
                ray.init(address=s.address, **kwargs)
            except Exception as e:  # noqa: BLE001 - Ray raises many kinds for a bad address; one line for each
                raise WorkerError(f"cannot start or reach Ray at {s.address or 'a local instance'}: {e}") from e
            self._started_ray = True
        # Ray's driver prints notices such as "A worker died" on stdout from a thread of its own; while the
        # engine runs they go to stderr, so stdout holds only vgt's results (`--json` stays parseable).
        self._stdout_to_stderr = contextlib.redirect_stdout(sys.stderr)
        self._stdout_to_stderr.__enter__()
        actor_class = ray.remote(_SampleActor).options(
            num_cpus=s.cpus_per_actor, num_gpus=s.gpus_per_actor, max_concurrency=max(1, s.threads),
            max_restarts=-1, max_task_retries=-1)
        self._actors = [actor_class.remote(self.factories[i % len(self.factories)]) for i in range(s.actors)]
        self._in_flight = [0] * len(self._actors)
        try:
            ready = [a.pid.remote() for a in self._actors]
            done, waiting = ray.wait(ready, num_returns=len(ready), timeout=START_TIMEOUT_S)
            if waiting:
                raise WorkerError(f"{len(waiting)} of {len(ready)} Ray actors did not start in {START_TIMEOUT_S:.0f} s "
                                  "(does the cluster have the CPUs/GPUs they ask for?)")
            ray.get(done)
        except WorkerError:
            self.close()
            raise
        except Exception as e:  # noqa: BLE001 - an actor's constructor failed: say why, in one line
            self.close()
            raise WorkerError(f"a Ray synth actor could not start: {_cause(e)}") from None
        return self

    @property
    def pids(self) -> list[int]:
        """Process ids of the actors (on this machine for a local instance)."""
        return list(self._ray.get([a.pid.remote() for a in self._actors]))

    def submit(self, run_id: str, sample: Sample) -> Future[WorkerResult]:
        """Run the sample on the least busy actor; the future's records are not committed yet."""
        with self._lock:
            index = min(range(len(self._actors)), key=lambda i: (self._in_flight[i], next(self._order)))
            self._in_flight[index] += 1
        ref = self._actors[index].process.remote(run_id, sample)
        future: Future[WorkerResult] = Future()

        def resolve(done: Future) -> None:
            with self._lock:
                self._in_flight[index] -= 1
            try:
                future.set_result(done.result())
            except Exception as e:  # noqa: BLE001 - a bug in run_sample or a cancelled actor: end the run
                future.set_exception(WorkerError(f"Ray synth actor failed on a sample: {_cause(e)}"))

        ref.future().add_done_callback(resolve)
        return future

    def close(self) -> None:
        """Stop the actors (the caller waits for its futures first) and a Ray instance this object started."""
        ray = self._ray
        if ray is None:
            return
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self._actors = []
        if self._started_ray:
            with contextlib.suppress(Exception):
                ray.shutdown()
        self._ray = None
        if self._stdout_to_stderr is not None:
            self._stdout_to_stderr.__exit__(None, None, None)
            self._stdout_to_stderr = None

    def __enter__(self) -> RaySampleWorkers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cause(e: BaseException) -> str:
    """The first line of what went wrong inside Ray (its errors wrap the actor's traceback)."""
    cause = getattr(e, "cause", None) or e
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"
