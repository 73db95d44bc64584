"""An agent eval of an in-process model split over processes: each runs its share of the benchmarks with its
own copy of the model on one torch thread and writes its traces into the same run of the same store.

Why: a small model's greedy decoding is Python overhead per token more than arithmetic, so two torch threads
on one generation barely beat one, while two processes each generating do twice the work (vgt-tiny's 1,500
eval questions: ~13 min in one process on 2 threads). The traces and metrics are those of `run_eval`
(the same function runs in each process); only the wall time changes.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from vgt_agent.training.eval import Benchmark, EvalSpec, eval_metrics, run_eval

Progress = Callable[[str, int, int], None]  # (benchmark, done, total), as run_eval reports


def shares(benchmarks: Sequence[Benchmark], n: int) -> list[list[Benchmark]]:
    """The benchmarks in n groups of about equal question counts (largest first, each to the lightest group);
    empty groups dropped."""
    groups: list[list[Benchmark]] = [[] for _ in range(max(1, n))]
    for bench in sorted(benchmarks, key=lambda b: -len(b.samples)):
        min(groups, key=lambda g: sum(len(b.samples) for b in g)).append(bench)
    return [g for g in groups if g]


def _run_share(db: str, model_dir: str, model_name: str, spec: EvalSpec, names: list[str], run_id: str,
               queue: Any) -> None:
    """One process's share: its own store connection and model, one torch thread."""
    import torch

    from vgt_agent.backends.transformers_backend import TransformersBackend
    from vgt_agent.store import TraceStore
    from vgt_agent.training.eval import load_benchmarks

    torch.set_num_threads(1)
    backend = TransformersBackend.from_pretrained(model_dir, model_name=model_name)
    with TraceStore.open(Path(db)) as store:
        run_eval(store, backend, spec, load_benchmarks(names, spec.limit), run_id,
                 progress=lambda name, done, total: queue.put((name, done, total)))


def run_eval_in_processes(store: Any, backend: Any, spec: EvalSpec, benchmarks: list[Benchmark], run_id: str,
                          model_dir: Path, workers: int, progress: Progress | None = None) -> dict[str, Any]:
    """`run_eval` with the benchmarks (as `load_benchmarks(spec.benchmarks, spec.limit)` gave them) shared over
    `workers` processes: this one runs the first share with `backend`, the others load `model_dir`. Returns the
    run's metrics over all of them."""
    source = dict(zip((b.name for b in benchmarks), spec.benchmarks, strict=True))
    groups = shares(benchmarks, workers)
    if len(groups) == 1:
        return run_eval(store, backend, spec, benchmarks, run_id, progress=progress)
    import torch

    threads = torch.get_num_threads()
    context = mp.get_context("spawn")  # torch's thread pools do not survive fork
    with context.Manager() as manager, ProcessPoolExecutor(len(groups) - 1, mp_context=context) as pool:
        queue = manager.Queue()
        futures = [pool.submit(_run_share, str(store.path), str(model_dir), backend.model, spec,
                               [source[b.name] for b in group], run_id, queue) for group in groups[1:]]
        stop = threading.Event()
        relay = threading.Thread(target=_relay, args=(queue, progress, stop), daemon=True)
        relay.start()
        torch.set_num_threads(1)
        try:
            run_eval(store, backend, spec, groups[0], run_id, progress=progress)
            for future in futures:
                future.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            torch.set_num_threads(threads)
            stop.set()
            relay.join()
    return eval_metrics(store, run_id, benchmarks, spec.samples, max_groundings=spec.max_groundings)


def _relay(queue: Any, progress: Progress | None, stop: threading.Event) -> None:
    """Pass the other processes' progress to this one's bars until stopped."""
    import queue as queues

    while not stop.is_set() or not queue.empty():
        try:
            name, done, total = queue.get(timeout=0.2)
        except queues.Empty:
            continue
        if progress:
            progress(name, done, total)
