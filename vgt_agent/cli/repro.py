"""`vgt repro tiny`: rebuild the shipped vgt-tiny policy from scratch and print its eval table; `vgt repro table`:
issue 7's self-grounding table in miniature (`vgt_agent/tiny/table/`)."""

from __future__ import annotations

from pathlib import Path

import typer

from vgt_agent.cli.common import console, usage_error, work_failed

app = typer.Typer(help="Reproduce shipped artefacts from scratch.", no_args_is_help=True)


@app.command("tiny")
def tiny(
    out: Path = typer.Option(Path("vgt-tiny-repro"), "--out", help="Where the trained model goes."),
    work_dir: Path = typer.Option(Path("vgt-tiny-work"), "--work-dir", help="World splits and the trace store."),
    train_samples: int = typer.Option(3400, "--train-samples", min=10, help="world-train samples for the teacher."),
    eval_samples: int = typer.Option(100, "--eval-samples", min=1, help="Questions per benchmark split."),
    steps: int = typer.Option(2424, "--steps", min=1, help="Most SFT steps of pass 1 (batch 16)."),
    minutes: float = typer.Option(30.0, "--train-minutes", min=0.1, help="Pass-1 wall-time budget; the schedule "
                                                                          "shrinks to fit it."),
    steps2: int = typer.Option(1554, "--steps2", min=0, help="Pass-2 steps at lr 1e-3 (0: no pass 2)."),
    minutes2: float = typer.Option(15.0, "--train-minutes2", min=0.1, help="Pass-2 wall-time budget."),
    threads: int = typer.Option(None, "--threads", min=1, help="torch threads (default: torch's choice)."),
    reasoning: str = typer.Option("whole", "--reasoning", help="The teacher's spatial decisions: whole (what the "
                                                               "shipped model learned) | digits (digit by digit)."),
    teacher_grounder: str = typer.Option("world", "--teacher-grounder", help="world | gold-shuffled (the same "
                                                                             "masks from the scene graph, faster)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """world make -> world-oracle agent traces -> SFT -> agent-mode eval on the six world benchmarks."""
    from vgt_agent.backends.world_oracle import STEPS

    if reasoning not in STEPS:
        usage_error(f"--reasoning must be one of {', '.join(STEPS)}, got {reasoning!r}")
    if teacher_grounder not in ("world", "gold-shuffled"):
        usage_error(f"--teacher-grounder must be world or gold-shuffled, got {teacher_grounder!r}")
    import torch

    from vgt_agent.tiny.repro import ReproConfig, run
    from vgt_agent.tiny.train import TrainConfig

    if threads:
        torch.set_num_threads(threads)
    finetune = TrainConfig(steps=steps2, lr=1e-3, min_lr=2e-4, warmup=20, seed=seed + 1,
                           time_budget_s=minutes2 * 60) if steps2 else None
    cfg = ReproConfig(work_dir=work_dir, out_dir=out, train_samples=train_samples, eval_samples=eval_samples,
                      train=TrainConfig(steps=steps, time_budget_s=minutes * 60, seed=seed), finetune=finetune,
                      seed=seed, steps=reasoning, teacher_grounder=teacher_grounder)
    run(cfg, console)


@app.command("table")
def table(
    work_dir: Path = typer.Option(Path("vgt-table-work"), "--work-dir", help="World splits, trace store, models "
                                                                             "and logs; a re-run resumes here."),
    out: Path = typer.Option(Path("docs"), "--out", help="Where table-in-miniature.md and .png go (smoke / mid "
                                                         "sizes: table-in-miniature-<size>.*)."),
    size: str = typer.Option("full", "--size", help="smoke (seconds, a test) | mid (a few minutes) | full "
                                                    "(the committed table: <= 90 min on 2 cores)."),
    workers: int = typer.Option(None, "--workers", min=1, help="Jobs in parallel, one torch thread each "
                                                               "(default: the size's; full: 2)."),
) -> None:
    """Issue 7's table in miniature: direct / non-grounded / box / point thinking after SFT, RL and RL +
    grounding reward, evaluated on the six world splits; writes the markdown table and a bar chart."""
    from vgt_agent.tiny.table import SIZES, TableError, config_for, run

    if size not in SIZES:
        usage_error(f"--size must be one of {', '.join(SIZES)}, not {size!r}")
    if out.exists() and not out.is_dir():
        usage_error(f"--out {out} exists and is not a directory")
    try:
        run(config_for(size, workers=workers), work_dir, out, console)
    except TableError as e:
        usage_error(str(e))
    except KeyboardInterrupt:
        work_failed(f"interrupted; re-run the same command to resume from {work_dir}")
    except Exception as e:  # noqa: BLE001 - any failed stage ends the command with one line
        work_failed(f"{type(e).__name__}: {' '.join(str(e).split())[:400]}")
