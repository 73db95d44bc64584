"""Reproduce vgt-tiny from scratch: world data -> world-oracle agent traces -> SFT -> agent-mode eval.

Stages (each logged to the trace store, so `vgt traces` shows what happened):
1. `world make`: the world-train split (n samples) and the six held-out benchmark splits;
2. teacher: the world-oracle backend runs the ask graph on every train sample with the WorldGrounder (or,
   `teacher_grounder="gold-shuffled"`, the sample's gold masks in shuffled order: the same coordinates,
   ~10x faster); only runs that answered correctly are kept (the store holds all of them, with `correct`);
3. SFT: a fresh tiny Gemma3 (tokenizer from the world's vocabulary) learns the kept traces turn by turn;
4. eval: the trained policy through TransformersBackend in the same ask graph, per benchmark split.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vgt_agent.backends.transformers_backend import TransformersBackend
from vgt_agent.backends.world_oracle import WorldOracleBackend
from vgt_agent.graphs.ask import AskLimits
from vgt_agent.store import TraceStore
from vgt_agent.tiny.agent_runs import BENCHMARKS, ShuffledGoldGrounder, ensure_split, run_split
from vgt_agent.tiny.evaluate import evaluate, markdown, summary, table
from vgt_agent.tiny.examples import shared_prefix_len
from vgt_agent.tiny.recipe import ARCH, NAME, build_policy, examples_from_traces, save_policy
from vgt_agent.tiny.train import TrainConfig, train
from vgt_agent.world.storage import load_split


@dataclass(frozen=True)
class ReproConfig:
    work_dir: Path
    out_dir: Path
    train_samples: int = 3400
    eval_samples: int = 100
    train: TrainConfig = TrainConfig(steps=2424, time_budget_s=30 * 60)
    # a second pass at a lower, flatter learning rate: where the shipped model learned to copy coordinates
    finetune: TrainConfig | None = TrainConfig(steps=1554, lr=1e-3, min_lr=2e-4, warmup=20, seed=1,
                                               time_budget_s=15 * 60)
    steps: str = "whole"  # the teacher's decision style (backends/world_oracle.py STEPS)
    teacher_grounder: str = "world"  # or "gold-shuffled" (ShuffledGoldGrounder)
    seed: int = 0
    data_workers: int = max(1, os.cpu_count() or 1)  # processes rendering world-train


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)


def teacher_traces(cfg: ReproConfig, store: TraceStore, console: Console) -> list[dict[str, Any]]:
    """Run the world-oracle through the ask graph on world-train; return the correct runs' chunks."""
    with _progress(console) as progress:
        task = progress.add_task("world-train", total=cfg.train_samples, info="world make")
        split_dir = ensure_split(cfg.work_dir / "data", "world-train", cfg.train_samples, workers=cfg.data_workers,
                                 progress=lambda done, total: progress.update(task, completed=done))
    samples = list(load_split(split_dir))[: cfg.train_samples]
    oracle = WorldOracleBackend(steps=cfg.steps)
    gold = cfg.teacher_grounder == ShuffledGoldGrounder.name
    run_id = store.start_run("synth", name="repro-tiny/teacher/world-oracle", backend=oracle.name,
                             model=oracle.model, grounder=cfg.teacher_grounder,
                             config={"via": "agent", "kind": "point", "steps": cfg.steps})
    kept: list[dict[str, Any]] = []
    with _progress(console) as progress:
        task = progress.add_task("teacher traces", total=len(samples), info="")
        for r in run_split(oracle, samples, grounder_for=ShuffledGoldGrounder if gold else None, store=store,
                           run_id=run_id, limits=AskLimits(6, 4, 768)):
            if r.correct and r.state.get("stop_reason") == "answered":
                kept.append({"question": r.sample.question, "choices": list(r.sample.choices),
                             "image": r.sample.image_path,
                             "chunks": [{"role": c["role"], "content": c["content"]} for c in r.state["chunks"]]})
            progress.update(task, advance=1, info=f"kept {len(kept)}")
    store.end_run(run_id, status="done", metrics={"kept": len(kept), "samples": len(samples)})
    return kept


def run(cfg: ReproConfig, console: Console | None = None) -> dict[str, Any]:
    """The whole pipeline; writes the model to cfg.out_dir and returns the report dict."""
    console = console or Console()
    started = time.perf_counter()
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    store = TraceStore.open(cfg.work_dir / "traces.db")
    console.print(f"[bold]vgt repro tiny[/] → {cfg.out_dir} (work dir {cfg.work_dir})")
    kept = teacher_traces(cfg, store, console)
    console.print(f"teacher: kept {len(kept)}/{cfg.train_samples} correct world-oracle agent traces")

    model, processor = build_policy(cfg.seed)
    params = sum(p.numel() for p in model.parameters())
    examples = examples_from_traces(processor, kept, cfg.seed)
    prefix = shared_prefix_len(examples, processor.tokenizer.convert_tokens_to_ids("<start_of_image>"))
    console.print(f"SFT: {len(examples)} sequences, {params / 1e6:.2f} M parameters, "
                  f"{torch.get_num_threads()} torch threads, shared prefix {prefix} tokens")
    with _progress(console) as progress:
        task = progress.add_task("SFT", total=cfg.train.steps, info="")

        def on_step(step: int, total: int, loss: float, elapsed: float) -> None:
            progress.update(task, completed=step, total=total, info=f"loss {loss:.3f}")

        result = train(model, examples, cfg.train, pad_id=processor.tokenizer.pad_token_id, prefix_len=prefix,
                       on_step=on_step)
        if cfg.finetune is not None:
            task = progress.add_task("SFT pass 2", total=cfg.finetune.steps, info="")
            result2 = train(model, examples, cfg.finetune, pad_id=processor.tokenizer.pad_token_id,
                            prefix_len=prefix, on_step=on_step)
            result = {"pass1": result, "pass2": result2}
    save_policy(model, processor, cfg.out_dir)
    size = sum(f.stat().st_size for f in cfg.out_dir.iterdir() if f.is_file())

    backend = TransformersBackend.from_pretrained(cfg.out_dir, model_name=NAME)
    run_id = store.start_run("eval", name="repro-tiny/eval", backend=backend.name, model=NAME, grounder="world",
                             config={"agent": True, "kind": "point", "n": cfg.eval_samples})
    with _progress(console) as progress:
        tasks = {s: progress.add_task(f"eval {s}", total=cfg.eval_samples, info="") for s in BENCHMARKS}
        hits: dict[str, int] = {}

        def on_done(split: str, r: Any) -> None:
            hits[split] = hits.get(split, 0) + r.correct
            progress.update(tasks[split], advance=1, info=f"correct {hits[split]}")

        scores = evaluate(backend, cfg.work_dir / "data", cfg.eval_samples, store=store, run_id=run_id,
                          on_done=on_done)
    store.end_run(run_id, status="done", metrics=summary(scores))
    store.close()
    console.print(table(scores, f"{NAME} in agent mode (ask graph + WorldGrounder), greedy"))
    report = {
        "model": NAME, "params": params, "size_bytes": size, "arch": ARCH, "train": asdict(cfg.train),
        "finetune": asdict(cfg.finetune) if cfg.finetune else None,
        "train_result": result, "teacher_kept": len(kept), "train_samples": cfg.train_samples,
        "eval_samples": cfg.eval_samples, "scores": {s.split: s.accuracy for s in scores},
        "summary": summary(scores), "markdown": markdown(scores), "seconds": time.perf_counter() - started,
    }
    (cfg.out_dir / "repro_report.json").write_text(json.dumps(report, indent=2, default=str))
    console.print(f"done in {report['seconds'] / 60:.1f} min; model in {cfg.out_dir} ({size / 1e6:.1f} MB)")
    return report
