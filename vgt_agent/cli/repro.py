"""`vgt repro tiny`: rebuild the shipped vgt-tiny policy from scratch and print its eval table; `vgt repro table`:
the paper's self-grounding table in miniature (`vgt_agent/tiny/table/`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from vgt_agent.cli.common import console, interrupted, usage_error, work_failed
from vgt_agent.tiny.recipe import SFT_ARGS, SFT_MINUTES, TRAIN_SAMPLES, WARMUP_MINUTES
from vgt_agent.tiny.warmup import WarmupConfig
from vgt_agent.vocabulary import TableSize

app = typer.Typer(
    rich_markup_mode=None,  # click's plain help, as the root app (cli/main.py)
    help="Reproduce shipped artefacts from scratch.", no_args_is_help=True)


@app.command("tiny")
def tiny(
    out: Path = typer.Option(Path("vgt-tiny-repro"), "--out", help="Where the trained model goes."),
    work_dir: Path = typer.Option(Path("vgt-tiny-work"), "--work-dir", help="World splits, the trace store, "
                                                                           "intermediate models and configs."),
    train_samples: int = typer.Option(TRAIN_SAMPLES, "--train-samples", min=10,
                                      help="world-train samples for the teacher."),
    eval_samples: int = typer.Option(100, "--eval-samples", min=1, help="Questions per benchmark split."),
    warmup_steps: int = typer.Option(WarmupConfig.max_steps, "--warmup-steps", min=0, help="Most steps of the "
                                     "warm-up before SFT (tiny/warmup.py: copying points, then drills of every "
                                     "question family; it stops once they are learned; 0: SFT from random init)."),
    warmup_minutes: float = typer.Option(WARMUP_MINUTES, "--warmup-minutes", min=0.01, help="The warm-up's "
                                         "wall-time budget: it stops at the first step past it."),
    steps: int = typer.Option(SFT_ARGS["max_steps"], "--steps", min=1, help="Most SFT steps (batch 16)."),
    minutes: float = typer.Option(SFT_MINUTES, "--train-minutes", min=0.01, help="SFT's wall-time budget; the "
                                  "steps (and the cosine schedule) shrink to fit it after 50 measured steps."),
    rl_steps: int = typer.Option(0, "--rl-steps", min=0, help="GRPO steps after SFT (`vgt train rl --variant "
                                                              "agent`; 0: none)."),
    rl_prompts: int = typer.Option(2, "--rl-prompts", min=1, help="World-train prompts per GRPO step."),
    rl_generations: int = typer.Option(4, "--rl-generations", min=2, help="Rollouts per prompt."),
    rl_lr: float = typer.Option(1e-5, "--rl-lr", min=0.0, help="GRPO learning rate."),
    threads: int = typer.Option(None, "--threads", min=1, help="torch threads (default: torch's choice)."),
    workers: int = typer.Option(None, "--workers", min=1, help="Processes for world make, synth and eval (default: "
                                                               "the CPU count)."),
    teacher_grounder: Literal["gold-shuffled", "world"] = typer.Option(
        "gold-shuffled", "--teacher-grounder", help="gold-shuffled (the world grounder's masks from the scene graph, "
                                                    "~10x faster) | world."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """world make -> vgt synth (world-oracle agent traces) -> warm-up -> vgt train sft -> vgt train rl (with
    --rl-steps) -> vgt eval --variant agent on the world benchmark splits; each stage logged in the trace store as its
    command logs it."""
    if out.exists() and not out.is_dir():
        usage_error(f"--out {out} exists and is not a directory")
    import torch

    from vgt_agent.tiny.repro import ReproConfig, RLStage, SFTStage, run

    if threads:
        torch.set_num_threads(threads)
    cfg = ReproConfig(work_dir=work_dir, out_dir=out, train_samples=train_samples, eval_samples=eval_samples,
                      sft=SFTStage({**SFT_ARGS, "max_steps": steps}, minutes),
                      rl=RLStage(rl_steps, rl_prompts, rl_generations, rl_lr), seed=seed,
                      teacher_grounder=teacher_grounder,
                      warmup=(WarmupConfig(max_steps=warmup_steps, minutes=warmup_minutes, seed=seed)
                              if warmup_steps else None),
                      **({"workers": workers} if workers else {}))
    try:
        run(cfg, console)
    except KeyboardInterrupt:
        interrupted(f"a re-run reuses {work_dir}'s world splits and finished teacher traces")
    except Exception as e:  # noqa: BLE001 - any failed stage ends the command with one line
        work_failed(f"{type(e).__name__}: {' '.join(str(e).split())[:400]}")


@app.command("table")
def table(
    work_dir: Path = typer.Option(Path("vgt-table-work"), "--work-dir", help="World splits, trace store, models "
                                                                             "and logs; a re-run resumes here."),
    out: Path = typer.Option(Path("docs"), "--out", help="Where table-in-miniature.md and .png go (smoke / mid "
                                                         "sizes: table-in-miniature-<size>.*)."),
    size: TableSize = typer.Option("full", "--size", help="smoke (seconds, a test) | mid (a few minutes) | full "
                                                    "(the committed table: <= 90 min on 2 cores)."),
    jobs: int = typer.Option(None, "--jobs", min=1, help="Jobs in parallel, one torch thread each (default: the "
                                                         "size's; full: 2)."),
) -> None:
    """The paper's table in miniature: direct / non-grounded / box / point thinking after SFT, RL and RL +
    grounding reward, evaluated on the six world splits; writes the markdown table and a bar chart."""
    from vgt_agent.tiny.table import TableError, config_for, run

    if out.exists() and not out.is_dir():
        usage_error(f"--out {out} exists and is not a directory")
    try:
        run(config_for(size, workers=jobs), work_dir, out, console)
    except TableError as e:
        usage_error(str(e))
    except KeyboardInterrupt:
        interrupted(f"re-run the same command to resume from {work_dir}")
    except Exception as e:  # noqa: BLE001 - any failed stage ends the command with one line
        work_failed(f"{type(e).__name__}: {' '.join(str(e).split())[:400]}")
