"""The paper's table in miniature: self-grounding (no tool at inference) on the embedded world, one command.

Direct answer, non-grounded thinking, point- and box-grounded thinking, each after SFT, after GRPO
with the answer reward only (`R_base`: answer + 0.1 format + truncation, `w_ground = 0`) and after GRPO
with answer + grounding rewards (`w_ground = 0.5`, the paper's; point and box only: direct answers and
plain thoughts have no groundings to reward, so those cells are "n/a"), evaluated on the six world splits
the way the paper evaluates (mean accuracy over N samples at temperature 1.0, and pass@N).

Stages (each one a run in the work dir's trace store, so `vgt traces runs` / `vgt eval report` show them):
1. data: world-train and the six held-out benchmark splits (`vgt world make`'s code);
2. synth: the world-oracle teacher through `vgt synth --via distill`'s pipeline, once, every variant
   (point / box / plain; direct targets are the gold answers of the same samples);
3. init: one random tiny Gemma3 (tokenizer from the prompts' and the traces' words) that every mode starts from;
4. per mode: SFT -> GRPO (answer) and, for point/box, GRPO (answer + grounding), TRL's trainers as
   `vgt train sft|rl` run them, each from the SFT model;
5. eval: every trained model in its own mode (`vgt eval`'s code) on the six splits;
6. report: `docs/table-in-miniature.md` (report.py's layout, sizes, timings, what comes out) and `.png`.
Trainings and evals run as a small job graph on `workers` spawned processes with one torch thread each (two
on two cores); a re-run with the same work dir skips every stage whose output exists (models with their
`vgt_train.json`, finished eval runs), resumes an interrupted SFT/GRPO from its last checkpoint and an
interrupted eval from its stored generations.

Sizes and time: `full` is sized for 90 minutes on 2 free cores; `config.COSTS` holds the measured seconds
per unit of work and `job_graph.estimate()` schedules the jobs as `run_jobs` does (`vgt repro table` prints the
estimate at the start). The measurements and what a run shows are in docs/table-in-miniature.md.

Modules, each depending only on those before it: `config` (sizes, costs), `job_graph` (the jobs and the estimate),
`stages` (work dir, data, synthesis, init, one job), `workers` (the job graph on worker processes), `report`
(baselines, tables, findings, markdown and PNG); `run` here puts them together.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vgt_agent.tiny.stage_view import bind_console, quiet
from vgt_agent.tiny.table.config import (
    COSTS,
    SIZES,
    STEM,
    ModelConfig,
    TableConfig,
    TableError,
    config_for,
)
from vgt_agent.tiny.table.job_graph import Job, applicable, estimate, jobs
from vgt_agent.tiny.table.report import write_report
from vgt_agent.tiny.table.stages import (
    Paths,
    Report,
    StageLog,
    check_work_dir,
    command,
    eval_done,
    init_model,
    make_data,
    synthesize,
    trained,
)
from vgt_agent.tiny.table.workers import run_jobs
from vgt_agent.world.splits import BENCHMARKS

__all__ = ["BENCHMARKS", "COSTS", "SIZES", "Job", "ModelConfig", "Paths", "TableConfig", "TableError", "applicable",
           "config_for", "estimate", "jobs", "run"]


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description:<16}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)


def run(cfg: TableConfig, work_dir: Path, out_dir: Path, console: Console | None = None) -> dict[str, Any]:
    """data -> synth -> init -> (SFT -> RL, RL + r_ground -> eval) per mode -> report; returns the report.

    TableError before anything is written when the work dir belongs to another configuration; RuntimeError
    (after writing the report of what did finish) when a stage failed; KeyboardInterrupt leaves every
    finished stage in place for the next session."""
    from vgt_agent.store import TraceStore

    console = console or Console()
    view = bind_console(console)  # bound now: job output is redirected while it runs
    paths = Paths(work_dir)
    check_work_dir(cfg, paths)
    started = time.perf_counter()
    paths.work.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(json.dumps(cfg.fingerprint(), indent=2))
    stages = StageLog(paths.stages)
    est = estimate(cfg)
    view.print(f"[bold]vgt repro table[/] --size {cfg.name} → {out_dir} (work dir {work_dir}): estimated "
               f"{est['total (wall)'] / 60:.0f} min on {cfg.workers} worker(s) at the measured speeds; job logs in "
               f"{paths.work / 'logs'}")
    with TraceStore.open(paths.db) as store:
        repro_id = store.start_run("repro", run_id=f"repro-{STEM}-{cfg.name}", name=f"{STEM}/{cfg.name}",
                                   command=command(cfg, "all"), backend="transformers",
                                   config={"table": asdict(cfg), "estimate_s": est})
    info: dict[str, Any] = {"work_dir": str(work_dir)}
    failed: list[str] = []
    status = "failed"
    try:
        with _progress(view) as progress:
            def serial(key: str, fn: Callable[[Report], dict[str, Any]], total: int = 1) -> dict[str, Any]:
                if stages.data.get(key, {}).get("status") == "done":
                    progress.add_task(key, total=1, completed=1, info="[dim]done earlier[/]")
                    return stages.data[key]
                task = progress.add_task(key, total=total, info="")
                t0, cpu = time.perf_counter(), time.process_time()
                result = fn(lambda d, t, i: progress.update(task, completed=d, total=max(1, t), info=i))
                stages.done(key, time.perf_counter() - t0, cpu_seconds=round(time.process_time() - cpu, 1), **result)
                progress.update(task, completed=progress.tasks[task].total,
                                info=f"[green]done[/] {' '.join(f'{k} {v}' for k, v in result.items())}")
                return result

            serial("data", lambda r: {"splits": len(make_data(cfg, paths))})
            kept = serial("synth", lambda r: {"kept": synthesize(cfg, paths, paths.data / "world-train", r)},
                          total=cfg.train_samples)["kept"]
            init = serial("init", lambda r: quiet(paths.log("init"), init_model, cfg, paths))
            info.update(kept=kept, params=init.get("params"), vocab=init.get("vocab"))
            todo, tasks = [], {}
            with TraceStore.open(paths.db) as store:
                for job in jobs():
                    done = eval_done(store, cfg, paths, job) if job.kind == "eval" else trained(paths.model(job))
                    tasks[job.key] = progress.add_task(job.key, total=1, completed=int(done),
                                                       info="[dim]done earlier[/]" if done else "[dim]waiting[/]")
                    if not done:
                        todo.append(job)
            failed = run_jobs(cfg, paths, todo, stages, progress, tasks)
        info.update(wall_seconds=time.perf_counter() - started, work_dir=str(work_dir))
        result = write_report(cfg, paths, out_dir, stages, info)
        status = "done" if not failed else "failed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        seconds = time.perf_counter() - started
        with TraceStore.open(paths.db) as store:
            store.end_run(repro_id, status=status, error=f"failed: {', '.join(failed)}" if failed else None,
                          metrics={"seconds": seconds, "stages": stages.data, "failed": failed})
    report = {"config": asdict(cfg), "work_dir": str(work_dir), "out_dir": str(out_dir), "seconds": seconds,
              "estimate_s": est, "stages": stages.data, "failed": failed, **info, **result}
    paths.report.write_text(json.dumps(report, indent=2, default=str))
    view.print(f"[bold]{result['markdown']}[/] and {result['png']} written; {seconds / 60:.1f} min this session")
    for line in result["findings"]:
        view.print(f"• {line}", markup=False)
    if failed:
        raise RuntimeError(f"{len(failed)} stage(s) failed: {', '.join(failed)} (logs in {paths.work / 'logs'}); "
                           "the report shows what finished; re-run the same command to retry them")
    return report
