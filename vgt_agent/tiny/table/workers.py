"""Running the job graph: in this process with one worker, else on spawned worker processes with one torch
thread each; every job's output goes to its log file. The functions the pool runs live at module top level,
so a spawned worker imports them by name."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.progress import Progress

from vgt_agent.tiny.stage_view import quiet
from vgt_agent.tiny.table.config import TableConfig
from vgt_agent.tiny.table.job_graph import Job, priorities
from vgt_agent.tiny.table.stages import Paths, Report, StageLog, run_job

_updates: Any = None  # a worker process's queue of progress reports to the parent


def _init_worker(updates: Any) -> None:
    """A spawned worker: one torch thread, Ctrl-C handled by the jobs (their runs are marked interrupted)."""
    import torch

    global _updates
    _updates = updates
    torch.set_num_threads(1)


def _worker(job: Job, cfg: TableConfig, work: str) -> dict[str, Any]:
    """One job in a worker process, the trainers' output going to the job's log file."""
    log = Paths(Path(work)).log(job.key)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        started, cpu = time.perf_counter(), time.process_time()
        result = run_job(job, cfg, Path(work), lambda d, t, i: _updates.put((job.key, d, t, i)))
        return {**result, "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu}


def _inline(job: Job, cfg: TableConfig, work: Path, report: Report) -> dict[str, Any]:
    started, cpu = time.perf_counter(), time.process_time()
    result = quiet(Paths(work).log(job.key), run_job, job, cfg, work, report)
    return {**result, "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu}


@contextlib.contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Spawned workers read these when they import torch: one thread each, so N workers use N cores."""
    keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TOKENIZERS_PARALLELISM")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_jobs(cfg: TableConfig, paths: Paths, todo: list[Job], stages: StageLog, progress: Progress,
             tasks: dict[str, Any]) -> list[str]:
    """Run the job graph on cfg.workers slots, critical path first; returns the keys that failed
    (with the jobs that depend on them)."""
    prio = priorities(todo, cfg)
    finished: set[Job] = set()
    failed: list[str] = []
    pending = sorted(todo, key=lambda j: -prio[j])

    def ready() -> list[Job]:
        blocked = {j for j in pending if any(d.key in failed for d in j.deps)}
        for j in blocked:
            pending.remove(j)
            failed.append(j.key)
            stages.failed(j.key, "not run: a stage it needs failed")
            progress.update(tasks[j.key], info="[red]blocked[/]")
        return [j for j in pending if all(d in finished or d not in todo for d in j.deps)]

    def on_result(job: Job, result: dict[str, Any] | BaseException) -> None:
        if isinstance(result, BaseException):
            failed.append(job.key)
            message = f"{type(result).__name__}: {' '.join(str(result).split())}"
            stages.failed(job.key, message)
            progress.update(tasks[job.key], info=f"[red]failed[/] (see {paths.log(job.key)})")
            return
        finished.add(job)
        stages.done(job.key, result.pop("seconds"), cpu_seconds=round(result.pop("cpu_seconds"), 1),
                    **{k: v for k, v in result.items() if k in ("run_id", "label")})
        progress.update(tasks[job.key], completed=progress.tasks[tasks[job.key]].total,
                        info=f"[green]done[/] in {stages.data[job.key]['seconds'] / 60:.1f} min")

    def report_for(key: str) -> Report:
        def report(done: int, total: int, info: str) -> None:
            progress.update(tasks[key], completed=done, total=max(1, total), info=info)
        return report

    if cfg.workers <= 1:
        while pending:
            batch = ready()
            if not batch:
                break
            job = batch[0]
            pending.remove(job)
            progress.update(tasks[job.key], info="running")
            try:
                result: Any = _inline(job, cfg, paths.work, report_for(job.key))
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - a failed job is reported; independent jobs go on
                result = e
            on_result(job, result)
        return failed

    import multiprocessing
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    with _single_threaded_children():
        updates = ctx.Queue()
        pool = ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(updates,))
        running: dict[Future, Job] = {}
        try:
            while pending or running:
                for job in ready():
                    if len(running) >= cfg.workers:
                        break
                    pending.remove(job)
                    progress.update(tasks[job.key], info="running")
                    running[pool.submit(_worker, job, cfg, str(paths.work))] = job
                if not running:
                    break
                done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                with contextlib.suppress(queue_mod.Empty):
                    while True:
                        key, d, t, info = updates.get_nowait()
                        report_for(key)(d, t, info)
                for future in done:
                    job = running.pop(future)
                    try:
                        on_result(job, future.result())
                    except Exception as e:  # noqa: BLE001 - the job's failure, reported like inline ones
                        on_result(job, e)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return failed
