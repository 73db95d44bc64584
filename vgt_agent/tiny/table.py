"""The paper's table in miniature: self-grounding (no tool at inference) on the embedded world, one command.

Issue 7: direct answer, non-grounded thinking, point- and box-grounded thinking, each after SFT, after GRPO
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

Sizes and time. `full` is sized for 90 minutes on 2 free cores, with a margin. Measured with the `mid` size
(600 samples, 150 SFT steps, 16 GRPO steps, 10 questions x 2 samples) on this 2-core machine while other
jobs kept it at a load of 4-6, so wall times were ~3.5x the jobs' own CPU times; the estimate uses the CPU
times (one single-threaded job = one core), scaled linearly: `COSTS` holds the seconds per unit, `estimate()`
adds them up plus 10 s start-up per job and schedules the jobs on the workers as `run_jobs` does.
  data + synth, 3000 world-train samples (0.08 s each, this process) ......... ~4.3 min
  SFT, 800 steps x batch 16 (s/step: box 1.89, point 1.48, think 0.76, direct 0.5):
      box ~25, point ~20, think ~10, direct ~7 min
  GRPO, 100 steps x 2 prompts x 4 generations (s/step: box, point 2.0, think 1.0, direct 0.3):
      box, point ~3.5 each (x2: answer / answer + grounding), think ~2, direct ~1 min
  eval, 6 splits x 40 questions x 4 samples = 960 generations (s each: box 0.36, point 0.3, think 0.18,
      direct 0.03): box ~6, point ~5, think ~3, direct ~0.6 min, per model
  jobs ~119 core-minutes -> ~60 min on 2 workers (critical path: SFT box -> GRPO -> eval, ~35 min);
  total ~64 min estimated (`vgt repro table` prints it at the start), ~123 min with 1 worker.
The 2 workers need both cores: with another job on one of them, expect about twice the time.
A 1.4 M-parameter Gemma3 (128 px, 64 image tokens) trained for minutes does not learn much: the `mid` run
stayed at the answer prior with grounding scores ~0; the generated markdown says what comes out, with the
numbers.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

MODES = ("direct", "think", "box", "point")  # the paper's (and report.py's) row order
COUNTING = ("world-tally", "world-countqa")
SPATIAL = ("world-vsr", "world-embspatial", "world-spatialmqa", "world-multihop")
BENCHMARKS = COUNTING + SPATIAL
STAGES = ("sft", "rl", "rlg")
STAGE_TITLES = {"sft": "SFT", "rl": "RL, answer reward", "rlg": "RL, answer + grounding reward"}
GROUNDED = ("point", "box")
STEM = "table-in-miniature"

Report = Callable[[int, int, str], None]  # (done, total, info) of the running stage


class TableError(ValueError):
    """The run cannot start as asked (one line, for the CLI's exit 2); nothing has been written."""


@dataclass(frozen=True)
class ModelConfig:
    """The tiny Gemma3 every mode starts from (`build_tiny_gemma3`'s arguments)."""

    image_size: int = 128
    patch_size: int = 16
    mm_tokens_per_image: int = 64
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 32
    intermediate: int = 512
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 2
    vision_intermediate: int = 256
    max_positions: int = 1024
    sliding_window: int = 512


@dataclass(frozen=True)
class TableConfig:
    """Every size of the run; `name` is also the file stem suffix (`full` writes table-in-miniature.*)."""

    name: str = "full"
    train_samples: int = 3000  # world-train samples through synthesis (all kept: the oracle is right)
    sft_steps: int = 800
    sft_batch: int = 16
    sft_lr: float = 2e-3  # from scratch: a tiny model needs a large rate
    sft_warmup: int = 20
    rl_steps: int = 100
    rl_prompts_per_step: int = 2
    generations: int = 4  # GRPO group size
    rl_lr: float = 2e-5
    ground_weight: float = 0.5  # w_ground of "answer + grounding" (the paper's 0.5)
    eval_questions: int = 40  # per split
    eval_samples: int = 4  # generations per question (paper: 4)
    temperature: float = 1.0  # eval and rollouts (paper: 1.0)
    max_tokens: dict[str, int] = field(default_factory=lambda: {"direct": 16, "think": 160, "point": 288,
                                                                 "box": 384})
    model: ModelConfig = ModelConfig()
    save_steps: int = 100  # checkpoints, so an interrupted training resumes
    workers: int = 2  # parallel jobs (processes with one torch thread each); 1 = in this process
    seed: int = 0

    def file_stem(self) -> str:
        return STEM if self.name == "full" else f"{STEM}-{self.name}"

    def fingerprint(self) -> dict[str, Any]:
        """What must not change between sessions in one work dir (`workers` may)."""
        d = asdict(self)
        d.pop("workers")
        return d


SIZES: dict[str, TableConfig] = {
    "smoke": TableConfig(
        name="smoke", train_samples=16, sft_steps=3, sft_batch=4, sft_warmup=1, rl_steps=1, rl_prompts_per_step=1,
        generations=2, eval_questions=2, eval_samples=1,
        max_tokens={"direct": 6, "think": 12, "point": 12, "box": 12}, save_steps=1000, workers=1,
        model=ModelConfig(image_size=32, mm_tokens_per_image=1, hidden=32, layers=1, heads=1, kv_heads=1,
                          intermediate=64, vision_hidden=16, vision_layers=1, vision_heads=1, vision_intermediate=32,
                          max_positions=512, sliding_window=256)),
    "mid": TableConfig(name="mid", train_samples=600, sft_steps=150, rl_steps=16, eval_questions=10, eval_samples=2),
    "full": TableConfig(),
}

# Seconds per unit on one free core (measured; see the module docstring): synthesis per sample, SFT per
# step of 16 sequences, GRPO per step of 8 completions, eval per generation, and a job's start-up.
COSTS: dict[str, Any] = {
    "synth": 0.08, "startup": 10.0,
    "sft": {"direct": 0.5, "think": 0.76, "point": 1.48, "box": 1.89},
    "rl": {"direct": 0.3, "think": 1.0, "point": 2.0, "box": 2.0},
    "eval": {"direct": 0.03, "think": 0.18, "point": 0.3, "box": 0.36},
}


# --- the job graph --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One training or eval of the graph; `key` names it everywhere (stage log, run names, model dir)."""

    kind: str  # train | eval
    stage: str  # sft | rl | rlg
    mode: str

    @property
    def key(self) -> str:
        return f"{'eval/' if self.kind == 'eval' else ''}{self.stage}/{self.mode}"

    @property
    def model_key(self) -> str:
        return f"{self.stage}-{self.mode}"

    @property
    def deps(self) -> tuple[Job, ...]:
        if self.kind == "eval":
            return (Job("train", self.stage, self.mode),)
        return () if self.stage == "sft" else (Job("train", "sft", self.mode),)


def applicable(stage: str, mode: str) -> bool:
    """GRPO with the grounding reward needs groundings: point and box only."""
    return stage != "rlg" or mode in GROUNDED


def jobs() -> list[Job]:
    return [Job(kind, stage, mode) for mode in MODES for stage in STAGES if applicable(stage, mode)
            for kind in ("train", "eval")]


def job_seconds(job: Job, cfg: TableConfig) -> float:
    """The estimated seconds of one job on one free core."""
    if job.kind == "eval":
        per = COSTS["eval"][job.mode]
        return COSTS["startup"] + per * len(BENCHMARKS) * cfg.eval_questions * cfg.eval_samples
    if job.stage == "sft":
        return COSTS["startup"] + COSTS["sft"][job.mode] * cfg.sft_steps * cfg.sft_batch / 16
    completions = cfg.rl_prompts_per_step * cfg.generations
    return COSTS["startup"] + COSTS["rl"][job.mode] * cfg.rl_steps * completions / 8


def _priorities(todo: list[Job], cfg: TableConfig) -> dict[Job, float]:
    """Longest remaining path through the graph, for list scheduling (the critical path goes first)."""
    children: dict[Job, list[Job]] = {j: [] for j in todo}
    for j in todo:
        for d in j.deps:
            if d in children:
                children[d].append(j)
    memo: dict[Job, float] = {}

    def path(j: Job) -> float:
        if j not in memo:
            memo[j] = job_seconds(j, cfg) + max((path(c) for c in children[j]), default=0.0)
        return memo[j]

    return {j: path(j) for j in todo}


def estimate(cfg: TableConfig, workers: int | None = None) -> dict[str, float]:
    """Estimated seconds: the serial stages, every job, and the wall time of the jobs on `workers`."""
    workers = workers or cfg.workers
    out = {"data+synth": 20 + COSTS["synth"] * cfg.train_samples, "init": 5.0}
    todo = jobs()
    out.update({j.key: job_seconds(j, cfg) for j in todo})
    prio = _priorities(todo, cfg)
    finish: dict[Job, float] = {}
    free = [0.0] * max(1, workers)
    remaining = list(todo)
    while remaining:  # the same greedy list scheduling run() does
        slot = min(range(len(free)), key=free.__getitem__)
        ready = [j for j in remaining if all(d in finish for d in j.deps)]
        job = max(ready, key=lambda j: (prio[j], -todo.index(j)))
        start = max([free[slot], *(finish[d] for d in job.deps)])
        finish[job] = free[slot] = start + job_seconds(job, cfg)
        remaining.remove(job)
    out["jobs (wall)"] = max(finish.values())
    out["total (wall)"] = out["jobs (wall)"] + out["data+synth"] + out["init"]
    return out


# --- paths and resumability -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Paths:
    work: Path

    @property
    def db(self) -> Path:
        return self.work / "traces.db"

    @property
    def data(self) -> Path:
        return self.work / "data"

    @property
    def init(self) -> Path:
        return self.work / "models" / "init"

    def model(self, job: Job) -> Path:
        return self.work / "models" / job.model_key

    def log(self, key: str) -> Path:
        return self.work / "logs" / (key.replace("/", "-") + ".log")

    @property
    def stages(self) -> Path:
        return self.work / "stages.json"

    @property
    def config(self) -> Path:
        return self.work / "table_config.json"

    @property
    def report(self) -> Path:
        return self.work / "table_report.json"


def synth_run_id(cfg: TableConfig) -> str:
    from vgt_agent.store.records import short_hash

    return "synth-" + short_hash("synth-run", synth_run_name(cfg))[:12]


def synth_run_name(cfg: TableConfig) -> str:
    return f"{STEM}/{cfg.name}/synth/world-train/distill/world-oracle"


def eval_run_id(cfg: TableConfig, paths: Paths, job: Job) -> str | None:
    """The eval run of a model, named after the training run that made it (a retrained model is evaluated
    anew); None while the model does not exist."""
    from vgt_agent.training.model import read_provenance

    model = paths.model(Job("train", job.stage, job.mode))
    train_run = (read_provenance(model) or {}).get("run_id") if trained(model) else None
    return f"eval-{STEM}-{cfg.name}-{job.model_key}-{train_run[-6:]}" if train_run else None


def model_name(cfg: TableConfig, job: Job) -> str:
    """What the store says produced a generation: the table, its size and the model's stage and mode."""
    return f"{STEM}/{cfg.name}/{job.model_key}"


def trained(path: Path) -> bool:
    """A finished training: save_final writes the provenance record last."""
    return (path / "vgt_train.json").is_file() and (path / "config.json").is_file()


class StageLog:
    """Seconds and outcome of every stage, kept across sessions in `stages.json`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else {}

    def done(self, key: str, seconds: float, **info: Any) -> None:
        self.data[key] = {"status": "done", "seconds": round(seconds, 1), "finished_at": time.time(), **info}
        self.save()

    def failed(self, key: str, error: str) -> None:
        self.data[key] = {**self.data.get(key, {}), "status": "failed", "error": error[:300]}
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


def check_work_dir(cfg: TableConfig, paths: Paths) -> None:
    """TableError when the work dir holds another configuration's run (its outputs would be reused)."""
    if paths.work.exists() and not paths.work.is_dir():
        raise TableError(f"--work-dir {paths.work} exists and is not a directory")
    if paths.config.is_file():
        saved = json.loads(paths.config.read_text())
        if saved != json.loads(json.dumps(cfg.fingerprint())):
            raise TableError(f"{paths.work} holds a run with other sizes ({saved.get('name')!r}); "
                             "use another --work-dir or delete it")


# --- stages run in this process -------------------------------------------------------------------------


def make_data(cfg: TableConfig, paths: Paths) -> dict[str, Path]:
    """The world-train split and the six benchmarks, made when missing or too small."""
    from vgt_agent.world.storage import is_split_dir, make_split, read_rows

    sizes = {"world-train": cfg.train_samples, **{b: cfg.eval_questions for b in BENCHMARKS}}
    out = {}
    for split, n in sizes.items():
        folder = paths.data / split
        if not (is_split_dir(folder) and sum(1 for _ in read_rows(folder)) >= n):
            make_split(folder, split, n=n)
        out[split] = folder
    return out


def synthesize(cfg: TableConfig, paths: Paths, train_dir: Path, report: Report) -> int:
    """`vgt synth --via distill --teacher world-oracle` on world-train: point, box and plain variants; returns
    how many samples were kept (the run resumes, skipping finished samples, like the CLI's)."""
    from vgt_agent.datasets import load_samples
    from vgt_agent.graphs.synth import SynthSettings
    from vgt_agent.store import TraceStore
    from vgt_agent.synthesis.batch import BatchRunner, BatchStats
    from vgt_agent.synthesis.extract import SceneExtractor
    from vgt_agent.synthesis.oracle import WorldOracleTeacher
    from vgt_agent.synthesis.pipeline import GrounderPool, SynthPipeline
    from vgt_agent.synthesis.writer import StoreWriter

    samples = list(load_samples(str(train_dir), limit=cfg.train_samples))
    run_id = synth_run_id(cfg)
    pipeline = SynthPipeline(SynthSettings(via="distill", k=1, keep=1), GrounderPool("world"),
                             teacher=WorldOracleTeacher(), extractor=SceneExtractor(), policy="rule")
    with TraceStore.open(paths.db) as store:
        done = store.finished_sample_ids(run_id)
        if len(done) >= len(samples) and (store.run(run_id) or {}).get("status") == "done":
            return _synth_totals(store, run_id)["kept"]
        store.start_run("synth", run_id=run_id, name=synth_run_name(cfg), command=_command(cfg, "synth"),
                        backend="world-oracle", model=WorldOracleTeacher.model, grounder="world",
                        config={"via": "distill", "k": 1, "keep": 1, "extract": "scene", "policy": "rule",
                                "grounder": "world", "limit": cfg.train_samples, "table": cfg.name})
        with StoreWriter(store.path) as writer:
            runner = BatchRunner(pipeline, writer, run_id, samples, done=done, concurrency=4)
            todo = len(runner.todo())

            def update(stats: BatchStats, outcome: dict[str, Any]) -> None:
                report(stats.processed, todo, f"kept {stats.kept}")

            runner.on_outcome = update
            stats = runner.run()
        status = {None: "done", "interrupted": "interrupted"}.get(stats.stopped, "failed")
        totals = _synth_totals(store, run_id)
        store.end_run(run_id, status=status, error=stats.message if status == "failed" else None,
                      metrics={**stats.to_dict(), "run_totals": totals})
    if status == "interrupted":
        raise KeyboardInterrupt
    if status == "failed":
        raise RuntimeError(f"synthesis failed: {stats.message}")
    if not totals["kept"]:
        raise RuntimeError("synthesis kept no trace")
    return totals["kept"]


def _synth_totals(store: Any, run_id: str) -> dict[str, int]:
    kept = {r[0] for r in store.db.execute(
        "select distinct sample_id from traces where run_id = ? and variant = 'plain' and status = 'ok'", [run_id])}
    samples = {r[0] for r in store.db.execute("select distinct sample_id from traces where run_id = ?", [run_id])}
    return {"samples": len(samples), "kept": len(kept)}


def vocabulary(cfg: TableConfig, paths: Paths) -> tuple[str, ...]:
    """Every word the policy reads or writes as one token: the default words, the four system prompts,
    and the questions, options and thoughts of the synthesised traces (sorted, so the same data gives the
    same token ids)."""
    from vgt_agent.prompts import VARIANT_PROMPTS, format_question
    from vgt_agent.store import TraceStore
    from vgt_agent.tiny.build import DEFAULT_WORDS

    words: list[str] = list(DEFAULT_WORDS)
    for prompt in VARIANT_PROMPTS.values():
        words += re.findall(r"[A-Za-z]+", prompt)
    seen: set[str] = set()
    with TraceStore.open(paths.db, create=False, readonly=True) as store:
        for r in store.traces(run=synth_run_id(cfg), status="ok"):
            text = f"{r['completion'] or ''} {format_question(r['question'], tuple(r['choices'] or ()))}"
            seen.update(re.findall(r"[A-Za-z]+", text))
    words += sorted(seen)
    return tuple(dict.fromkeys(w.lower() for w in words))


def init_model(cfg: TableConfig, paths: Paths) -> dict[str, Any]:
    """The random tiny Gemma3 every mode's SFT starts from."""
    from vgt_agent.tiny.build import build_tiny_gemma3

    model, processor = build_tiny_gemma3(vocabulary(cfg, paths), seed=cfg.seed, **asdict(cfg.model))
    tmp = paths.init.with_name("init.tmp")
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    if paths.init.exists():  # a half-written one from an interrupted session
        shutil.rmtree(paths.init)
    tmp.replace(paths.init)
    return {"params": sum(p.numel() for p in model.parameters()), "vocab": len(processor.tokenizer)}


# --- jobs (run in a worker process, or here with workers=1) ---------------------------------------------


def _command(cfg: TableConfig, what: str) -> str:
    return f"vgt repro table --size {cfg.name} ({what})"


def _step_logger(report: Report) -> Any:
    """TRL callback: the run's log history (as `vgt train` keeps it) plus a progress report per step."""
    from vgt_agent.training.progress import RunLogger

    class StepLogger(RunLogger):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            info = [f"{k} {v:.3f}" for k in ("loss", "reward") if isinstance(v := self.last(k), float)]
            report(state.global_step, state.max_steps, " · ".join(info))

    return StepLogger()


def run_job(job: Job, cfg: TableConfig, work: Path, report: Report) -> dict[str, Any]:
    """One training (resuming from its last checkpoint) or one eval (resuming its stored generations)."""
    from vgt_agent.store import TraceStore
    from vgt_agent.training.eval import MODE_VARIANT

    paths = Paths(work)
    variant = MODE_VARIANT[job.mode]
    out = paths.model(job)
    with TraceStore.open(paths.db) as store:
        if job.kind == "eval":
            return _evaluate(job, cfg, paths, store, report)
        common = {"variant": variant, "output_dir": out, "run": synth_run_id(cfg), "seed": cfg.seed, "resume": True,
                  "command": _command(cfg, job.key), "name": f"{STEM}/{cfg.name}/{job.model_key}"}
        logging = {"logging_steps": 1, "save_steps": cfg.save_steps, "save_total_limit": 1, "disable_tqdm": True}
        if job.stage == "sft":
            from vgt_agent.training.sft import SFTJob, train_sft

            trl = {"max_steps": cfg.sft_steps, "per_device_train_batch_size": cfg.sft_batch,
                   "per_device_eval_batch_size": cfg.sft_batch, "learning_rate": cfg.sft_lr,
                   "lr_scheduler_type": "cosine", "warmup_steps": min(cfg.sft_warmup, cfg.sft_steps // 4),
                   "weight_decay": 0.01, **logging}
            return train_sft(store, SFTJob(model=str(paths.init), eval_fraction=0.05, trl_args=trl, **common),
                             logger=_step_logger(report))
        from vgt_agent.training.rewards import RewardWeights
        from vgt_agent.training.rl import RLJob, train_rl

        trl = {"max_steps": cfg.rl_steps, "per_device_train_batch_size": cfg.rl_prompts_per_step * cfg.generations,
               "num_generations": cfg.generations, "max_completion_length": cfg.max_tokens[job.mode],
               "learning_rate": cfg.rl_lr, "temperature": cfg.temperature, **logging}
        weights = RewardWeights(grounding=cfg.ground_weight if job.stage == "rlg" else 0.0)
        sft = paths.model(Job("train", "sft", job.mode))
        return train_rl(store, RLJob(model=str(sft), limit=cfg.rl_steps * cfg.rl_prompts_per_step, weights=weights,
                                     trl_args=trl, **common), logger=_step_logger(report))


def _evaluate(job: Job, cfg: TableConfig, paths: Paths, store: Any, report: Report) -> dict[str, Any]:
    from vgt_agent.backends.transformers_backend import TransformersBackend
    from vgt_agent.training.eval import EvalSpec, default_label, load_benchmarks, run_eval
    from vgt_agent.training.model import read_provenance

    model_dir = paths.model(Job("train", job.stage, job.mode))
    names = tuple(str(paths.data / b) for b in BENCHMARKS)
    spec = EvalSpec(benchmarks=names, mode=job.mode, samples=cfg.eval_samples, temperature=cfg.temperature,
                    limit=cfg.eval_questions, max_tokens=cfg.max_tokens[job.mode])
    benches = load_benchmarks(names, cfg.eval_questions)
    backend = TransformersBackend.from_pretrained(model_dir, model_name=model_name(cfg, job))
    provenance = read_provenance(model_dir)
    label, stage = default_label(job.mode, False, provenance)
    run_id = eval_run_id(cfg, paths, job)
    config = {"label": label, "stage": stage, "mode": job.mode, "agent": False, "benchmarks": list(BENCHMARKS),
              "samples": spec.samples, "temperature": spec.temperature, "limit": spec.limit,
              "max_tokens": spec.max_tokens, "grounder": None, "provenance": provenance, "table": cfg.name,
              "model_dir": str(model_dir.resolve())}
    run_id = store.start_run("eval", run_id=run_id, name=f"{STEM}/{cfg.name}/eval/{job.model_key}",
                             command=_command(cfg, job.key), backend=backend.name, model=backend.model, config=config)
    total = len(benches) * spec.limit * spec.samples
    done_by: dict[str, int] = {}

    def progress(name: str, done: int, _total: int) -> None:
        done_by[name] = done
        report(sum(done_by.values()), total, name)

    try:
        metrics = run_eval(store, backend, spec, benches, run_id, progress=progress)
    except KeyboardInterrupt:
        store.end_run(run_id, status="interrupted")
        raise
    except Exception as e:
        store.end_run(run_id, status="failed", error=str(e)[:500])
        raise
    store.end_run(run_id, metrics=metrics)
    return {"run_id": run_id, "label": label}


def eval_done(store: Any, cfg: TableConfig, paths: Paths, job: Job) -> bool:
    run_id = eval_run_id(cfg, paths, job)
    run = store.run(run_id) if run_id else None
    return bool(run and run["status"] == "done" and (run.get("metrics") or {}).get("benchmarks"))


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
    result = _quiet(Paths(work).log(job.key), run_job, job, cfg, work, report)
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
    prio = _priorities(todo, cfg)
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


# --- the report -----------------------------------------------------------------------------------------


@dataclass
class Baselines:
    """Per benchmark: uniform chance over the options (None for counts) and the answer prior (the
    world-train majority answer of the question's family, what a blind model can learn)."""

    chance: dict[str, float | None]
    prior: dict[str, float]
    questions: dict[str, int]


def baselines(cfg: TableConfig, paths: Paths) -> Baselines:
    from vgt_agent.world.storage import load_split

    by_family: dict[str, Counter] = {}
    for i, s in enumerate(load_split(paths.data / "world-train")):
        if i >= cfg.train_samples:
            break
        by_family.setdefault(s.meta["family"], Counter())[s.answer] += 1
    majority = {fam: c.most_common(1)[0][0] for fam, c in by_family.items()}
    chance, prior, questions = {}, {}, {}
    for bench in BENCHMARKS:
        samples = list(load_split(paths.data / bench))[: cfg.eval_questions]
        options = [len(s.choices) if s.choices else (2 if s.answer_type == "yes_no" else 0) for s in samples]
        chance[bench] = None if 0 in options else sum(1 / n for n in options) / len(options)
        prior[bench] = sum(majority.get(s.meta["family"]) == s.answer for s in samples) / len(samples)
        questions[bench] = len(samples)
    return Baselines(chance, prior, questions)


def _pct(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass
class Row:
    """One configuration of the table, with what the report, the eval run and the trainings say."""

    mode: str
    stage: str
    label: str
    cells: dict[str, tuple[float, float]]  # benchmark -> (acc, pass@k)
    eval_metrics: dict[str, dict[str, Any]]
    training: dict[str, Any]  # the training run's metrics
    run_id: str  # the eval run

    def avg(self, benches: tuple[str, ...]) -> float | None:
        if not all(b in self.cells for b in benches):
            return None
        return _mean([self.cells[b][0] for b in benches])

    def avg_pass(self, benches: tuple[str, ...]) -> float | None:
        if not all(b in self.cells for b in benches):
            return None
        return _mean([self.cells[b][1] for b in benches])

    def se(self, benches: tuple[str, ...], questions: dict[str, int]) -> float:
        """Standard error of a group average, counting questions (not their correlated samples) as the unit."""
        terms = []
        for b in benches:
            if b in self.cells:
                n = max(1, questions[b])
                p = (self.cells[b][0] * n + 1) / (n + 2)  # Laplace: 0% or 100% of a few questions is not certain
                terms.append(p * (1 - p) / n)
        return math.sqrt(sum(terms)) / max(1, len(terms))

    def diag(self, key: str) -> float | None:
        return _mean([m[key] for m in self.eval_metrics.values() if m.get(key) is not None])


def collect_rows(cfg: TableConfig, paths: Paths, store: Any) -> tuple[list[Row], Any]:
    """Every configuration that has a finished eval run, in the report's order, and report.py's Report."""
    from vgt_agent.training.model import read_provenance
    from vgt_agent.training.report import build_report

    runs = {j: store.run(eval_run_id(cfg, paths, j)) for j in jobs()
            if j.kind == "eval" and eval_done(store, cfg, paths, j)}
    if not runs:
        return [], None
    report = build_report(store, [r["id"] for r in runs.values()])
    rows = []
    for job, run in runs.items():
        label = run["config"]["label"]
        cells = {key: (c.acc, c.pass_k) for (row, key), c in report.cells.items() if row == label}
        provenance = read_provenance(paths.model(Job("train", job.stage, job.mode))) or {}
        training = (store.run(provenance["run_id"]) or {}).get("metrics", {}) if provenance.get("run_id") else {}
        rows.append(Row(job.mode, job.stage, label, cells, run["metrics"]["benchmarks"], training, run["id"]))
    order = {label: i for i, label in enumerate(report.rows)}
    rows.sort(key=lambda r: order.get(r.label, 99))
    return rows, report


def row_label(mode: str, stage: str) -> str:
    """The label `vgt eval` gives a model of this mode and stage (`training.eval.default_label`)."""
    from vgt_agent.training.eval import MODE_LABELS

    return f"{MODE_LABELS[mode]} · " + {"sft": "SFT", "rl": "RL", "rlg": "RL + r_ground"}[stage]


def results_table(rows: list[Row], base: Baselines, k: int) -> str:
    """Markdown in report.py's layout: configurations x (counting, spatial) splits, Acc / pass@k, averages."""
    head = ["configuration", *COUNTING, "**counting avg**", *SPATIAL, "**spatial avg**"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]

    def best(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return max(present) if present else None

    columns: list[tuple[str, Callable[[Row], tuple[float | None, float | None]]]] = []
    for group in (COUNTING, SPATIAL):
        for b in group:
            columns.append((b, lambda r, b=b: r.cells.get(b, (None, None))))
        columns.append(("avg", lambda r, g=group: (r.avg(g), r.avg_pass(g))))
    tops = [best([f(r)[0] for r in rows]) for _, f in columns]

    def ref_row(name: str, per: dict[str, float | None]) -> str:
        cells = []
        for group in (COUNTING, SPATIAL):
            cells += [_pct(per[b]) for b in group]
            vals = [per[b] for b in group]
            cells.append("–" if None in vals else f"*{_pct(_mean(vals))}*")  # type: ignore[arg-type]
        return f"| *{name}* | " + " | ".join(cells) + " |"

    lines.append(ref_row("chance (uniform over the options)", base.chance))  # type: ignore[arg-type]
    lines.append(ref_row("prior (train majority answer per question type)", base.prior))  # type: ignore[arg-type]
    by = {(r.mode, r.stage): r for r in rows}
    for mode in MODES:
        for stage in STAGES:
            r = by.get((mode, stage))
            if r is None:
                text = "n/a" if not applicable(stage, mode) else "not run"
                lines.append(f"| {row_label(mode, stage)} | " + " | ".join([text] * len(columns)) + " |")
                continue
            cells = []
            for (_, f), top in zip(columns, tops, strict=True):
                acc, pk = f(r)
                text = "–" if acc is None else f"{_pct(acc)} / {_pct(pk)}"
                cells.append(f"**{text}**" if acc is not None and top is not None and acc == top and acc > 0 else text)
            lines.append(f"| {r.label} | " + " | ".join(cells) + " |")
    note = (f"Cells: accuracy over {_n(k, 'sample')} / pass@{k}, in percent; the best accuracy of each column in "
            "bold; *n/a*: GRPO with the grounding reward needs groundings, which direct answers and plain thoughts "
            "do not have; *not run*: the stage failed or has not run yet (see the time table). Reference rows "
            "(italic) are not models: *chance* answers uniformly among the options "
            "(none for counts), *prior* always gives the most frequent training answer of the question's type.")
    return "\n".join(lines) + "\n\n" + note


def diagnostics_table(rows: list[Row]) -> str:
    lines = ["| configuration | grounding score | boxed answer | truncated | completion tokens | "
             "training: loss or reward, first → last |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        t = r.training
        if r.stage == "sft":
            before, after = t.get("eval_loss_before"), t.get("eval_loss_after")
            train = (f"held-out loss {before:.3f} → {after:.3f}" if before is not None and after is not None
                     else f"loss {t.get('first_loss')} → {t.get('last_loss')}")
        else:
            reward = t.get("reward") or {}
            answer = (t.get("rewards") or {}).get("answer_reward") or {}
            ground = (t.get("rewards") or {}).get("grounding_reward") or {}
            train = f"R {_num(reward.get('first'))} → {_num(reward.get('last'))}, r_ans {_num(answer.get('first'))}" \
                    f" → {_num(answer.get('last'))}"
            if ground:
                train += f", r_ground {_num(ground.get('first'))} → {_num(ground.get('last'))}"
        g = r.diag("grounding") if r.mode in GROUNDED else None
        tokens = r.diag("mean_completion_tokens")
        lines.append(f"| {r.label} | {'–' if g is None else f'{g:.3f}'} | {_pct(r.diag('boxed_rate'))}% | "
                     f"{_pct(r.diag('truncated_rate'))}% | {'–' if tokens is None else f'{tokens:.0f}'} | {train} |")
    return "\n".join(lines) + "\n\nGrounding score: the reward's own scorer against the gold masks (points: F1 of " \
        "points inside the masks; boxes: IoU of the box unions), mean over the splits. Boxed answer / truncated: " \
        "share of generations with a `\\boxed{}` answer / cut at the token limit. Training numbers: SFT's loss on " \
        "held-out training images before and after; GRPO's mean reward R and its parts over the first and last " \
        "logged steps (one step: a few groups, so noisy)."


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _num(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, int | float) else "–"


def findings(rows: list[Row], base: Baselines, cfg: TableConfig) -> list[str]:
    """What comes out, in sentences computed from the numbers (2 standard errors as the bar for a difference)."""
    if not rows:
        return ["No configuration finished its evaluation."]
    q = base.questions
    groups = {"counting": COUNTING, "spatial": SPATIAL}
    by = {(r.mode, r.stage): r for r in rows}
    out = []

    def gap(a: Row, b: Row | None, g: tuple[str, ...]) -> tuple[float, float] | None:
        """(difference of group averages a - b, 2 SE of that difference)."""
        if b is None or a.avg(g) is None or b.avg(g) is None:
            return None
        return a.avg(g) - b.avg(g), 2 * math.hypot(a.se(g, q), b.se(g, q))  # type: ignore[operator]

    def pts(d: float) -> str:
        return f"{100 * d:+.1f}"

    noise = {name: 2 * _mean([r.se(g, q) for r in rows if r.avg(g) is not None] or [0.0]) for name, g in groups.items()}
    out.append(f"**Noise first.** {cfg.eval_questions} questions per split × {_n(cfg.eval_samples, 'sample')}: two "
               f"standard errors of a group average are about ±{100 * noise['counting']:.1f} points (counting) and "
               f"±{100 * noise['spatial']:.1f} (spatial); a difference of two rows needs about 1.4× that. Smaller "
               "differences below are called *within noise*, not findings.")
    for name, g in groups.items():
        ranked = sorted((r for r in rows if r.avg(g) is not None), key=lambda r: -r.avg(g))  # type: ignore[operator]
        if ranked:
            top = ranked[0]
            out.append(f"**Best on {name}:** {top.label} with {_pct(top.avg(g))}% (pass@{cfg.eval_samples} "
                       f"{_pct(top.avg_pass(g))}%); worst: {ranked[-1].label} with {_pct(ranked[-1].avg(g))}%.")
    base_row = by.get(("direct", "sft"))
    if base_row is not None:
        for name, g in groups.items():
            above, below = [], []
            for r in rows:
                if r is base_row or (d := gap(r, base_row, g)) is None:
                    continue
                if d[0] > d[1]:
                    above.append(f"{r.label} ({pts(d[0])})")
                elif -d[0] > d[1]:
                    below.append(f"{r.label} ({pts(d[0])})")
            out.append(f"**Against the direct-answer baseline on {name}** (Direct answer · SFT, "
                       f"{_pct(base_row.avg(g))}%): " + (f"clearly better: {', '.join(above)}; " if above else
                                                         "no configuration is clearly better; ")
                       + (f"clearly worse: {', '.join(below)}." if below else "none is clearly worse.")
                       + " The rest are within noise.")
    for name, g in groups.items():
        prior = _mean([base.prior[b] for b in g])
        chance_vals = [base.chance[b] for b in g]
        chance = None if None in chance_vals else _mean(chance_vals)  # type: ignore[arg-type]
        floor = max(v for v in (prior, chance) if v is not None)  # type: ignore[type-var]
        beat = [f"{r.label} ({_pct(r.avg(g))}%)" for r in rows
                if r.avg(g) is not None and r.avg(g) - floor > 2 * r.se(g, q)]  # type: ignore[operator]
        ref = f"prior {_pct(prior)}%" + (f", chance {_pct(chance)}%" if chance is not None else "")
        out.append(f"**Against chance and the answer prior on {name}** ({ref}): "
                   + (f"above both by more than 2 SE: {', '.join(beat)}." if beat else
                      "no configuration is above them by more than 2 SE: at this scale the models do not use the "
                      "image beyond what the question type predicts."))
    rl_lines = []
    for mode in MODES:
        sft, rl = by.get((mode, "sft")), by.get((mode, "rl"))
        if sft is None or rl is None:
            continue
        parts = []
        for name, g in groups.items():
            if (d := gap(rl, sft, g)) is not None:
                parts.append(f"{name} {pts(d[0])}" + ("" if abs(d[0]) > d[1] else " (within noise)"))
        t0, t1 = sft.diag("mean_completion_tokens"), rl.diag("mean_completion_tokens")
        length = f", completions {t0:.0f} → {t1:.0f} tokens" if t0 is not None and t1 is not None else ""
        rl_lines.append(f"{sft.label.split(' · ')[0]}: {', '.join(parts)}{length}")
    if rl_lines:
        out.append("**GRPO with the answer reward, against SFT** (points of accuracy): " + "; ".join(rl_lines)
                   + f". ({cfg.rl_steps} steps of {cfg.rl_prompts_per_step} prompts × {cfg.generations} generations; "
                   "the paper sees non-grounded thinking shrink and degrade under RL, grounded thinking stay stable.)")
    g_lines = []
    for mode in GROUNDED:
        rl, rlg = by.get((mode, "rl")), by.get((mode, "rlg"))
        if rl is None or rlg is None:
            continue
        parts = []
        for name, g in groups.items():
            if (d := gap(rlg, rl, g)) is not None:
                parts.append(f"{name} {pts(d[0])}" + ("" if abs(d[0]) > d[1] else " (within noise)"))
        s0, s1 = rl.diag("grounding"), rlg.diag("grounding")
        score = f", grounding score {s0:.3f} → {s1:.3f}" if s0 is not None and s1 is not None else ""
        g_lines.append(f"{mode}: {', '.join(parts)}{score}")
    if g_lines:
        out.append("**Adding the grounding reward** (RL + r_ground against RL): " + "; ".join(g_lines)
                   + ". (The paper: +1 to +2.8 points for boxes, nothing for points.)")
    for stage in ("sft", "rl"):
        think = by.get(("think", stage))
        parts = []
        for mode in GROUNDED:
            r = by.get((mode, stage))
            if r is None or think is None:
                continue
            for name, g in groups.items():
                if (d := gap(r, think, g)) is not None:
                    parts.append(f"{mode} {name} {pts(d[0])}" + ("" if abs(d[0]) > d[1] else " (within noise)"))
        if parts:
            out.append(f"**Grounded against non-grounded thinking after {STAGE_TITLES[stage].split(',')[0]}:** "
                       + ", ".join(parts) + ".")
    pb = [(stage, by.get(("point", stage)), by.get(("box", stage))) for stage in STAGES]
    pb_parts = [f"{STAGE_TITLES[s].split(',')[0] if s != 'rlg' else 'RL + r_ground'} {pts(d[0])}"
                + ("" if abs(d[0]) > d[1] else " (within noise)")
                for s, p, b in pb if p is not None and (d := gap(p, b, COUNTING)) is not None]
    if pb_parts:
        out.append("**Points against boxes on counting** (point minus box): " + ", ".join(pb_parts)
                   + ". (The paper: points win on counting.)")
    grounded = [r for r in rows if r.mode in GROUNDED and r.diag("grounding") is not None]
    if grounded:
        best = max(grounded, key=lambda r: r.diag("grounding"))  # type: ignore[arg-type,return-value]
        score = best.diag("grounding")
        verdict = ("the coordinates the models write rarely land on the objects, so their grounded thoughts carry "
                   "little visual evidence at this scale" if score < 0.2 else
                   "the models do localise a good share of the objects they name")  # type: ignore[operator]
        out.append(f"**Grounding quality:** the best mean grounding score is {score:.3f} ({best.label}; points: "
                   f"F1, boxes: IoU): {verdict}.")
    return out


def write_markdown(path: Path, cfg: TableConfig, rows: list[Row], report: Any, base: Baselines,
                   stages: StageLog, info: dict[str, Any], png: Path) -> None:
    m = cfg.model
    sizes = [
        ("world-train samples through synthesis", f"{cfg.train_samples} ({info.get('kept', '?')} kept, each as "
                                                  "point, box and plain thought; direct targets = gold answers)"),
        ("model", f"random tiny Gemma3, {info.get('params', 0) / 1e6:.2f} M parameters: {m.image_size} px images, "
                  f"patch {m.patch_size}, {m.mm_tokens_per_image} image tokens, text {m.layers} layers × {m.hidden}, "
                  f"vision {m.vision_layers} layers × {m.vision_hidden}, vocabulary {info.get('vocab', '?')}"),
        ("SFT", f"{cfg.sft_steps} steps × batch {cfg.sft_batch}, lr {cfg.sft_lr:g} cosine, from the same random init "
                "per mode (TRL SFTTrainer, assistant-only loss)"),
        ("GRPO", f"{cfg.rl_steps} steps × {cfg.rl_prompts_per_step} prompts × {cfg.generations} generations, "
                 f"lr {cfg.rl_lr:g}, temperature {cfg.temperature:g}, from the SFT model; answer reward only = "
                 f"R_base (answer + 0.1 think format + 0.1 tag format + truncation), w_ground 0; answer + grounding "
                 f"= R_base + {cfg.ground_weight:g} N(r_ground)"),
        ("eval", f"{cfg.eval_questions} questions per split × {_n(cfg.eval_samples, 'sample')} at temperature "
                 f"{cfg.temperature:g}; at most {', '.join(f'{k} {v}' for k, v in cfg.max_tokens.items())} tokens"),
    ]
    timing = ["| stage | wall minutes | CPU minutes | |", "|---|---:|---:|---|"]
    order = ["data", "synth", "init"] + [j.key for j in jobs()] + ["report"]
    for key in order:
        s = stages.data.get(key)
        if s:
            cpu = s.get("cpu_seconds")
            timing.append(f"| {key} | {s.get('seconds', 0) / 60:.1f} | {'–' if cpu is None else f'{cpu / 60:.1f}'} "
                          f"| {s['status']}{': ' + s['error'] if s.get('error') else ''} |")
    db = Path(info.get("work_dir", "vgt-table-work")) / "traces.db"
    job_minutes = sum(stages.data.get(j.key, {}).get("seconds", 0) for j in jobs()) / 60
    wall = info.get("wall_seconds")
    text = [
        "# The table in miniature",
        "",
        "Self-grounding on the embedded world (issue 7): the model grounds by itself, no tool at inference. "
        "Direct answer, non-grounded thinking, box- and point-grounded thinking, each after SFT on the "
        "world-oracle's synthesised traces, after GRPO with the answer reward only, and after GRPO with answer + "
        "grounding rewards, evaluated on the six world splits as the paper evaluates its benchmarks. "
        "Generated by one command:",
        "",
        "```bash",
        f"vgt repro table --size {cfg.name} --work-dir {info.get('work_dir', 'vgt-table-work')} --out {path.parent}/",
        "```",
        "",
        "## Sizes",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in sizes],
        "",
        f"## Results (Acc / pass@{cfg.eval_samples}, %)",
        "",
        results_table(rows, base, cfg.eval_samples),
        "",
        f"![accuracy per split and configuration]({png.name})",
        "",
        "## Diagnostics",
        "",
        diagnostics_table(rows),
        "",
        "## What comes out",
        "",
        *[f"- {line}" for line in findings(rows, base, cfg)],
        "",
        "## Time",
        "",
        f"Wall time of the last session {'–' if wall is None else f'{wall / 60:.1f}'} min, {cfg.workers} "
        f"worker(s) with one torch thread each; the jobs add up to {job_minutes:.1f} worker-minutes. A stage "
        "done in an earlier session keeps that session's time; CPU minutes are the job's own process time "
        "(wall minutes above them mean the job waited for a core).",
        "",
        *timing,
        "",
        "## Runs",
        "",
        f"Every stage is a run in the work dir's store (`vgt traces runs --db {db}`); the "
        f"table again: `vgt eval report --db {db} {' '.join(r.run_id for r in rows)}`.",
        "",
    ]
    path.write_text("\n".join(text), encoding="utf-8")


def write_report(cfg: TableConfig, paths: Paths, out_dir: Path, stages: StageLog, info: dict[str, Any]
                 ) -> dict[str, Any]:
    """The markdown, the PNG and the JSON from the store's eval runs."""
    from vgt_agent.store import TraceStore
    from vgt_agent.training.report import bar_chart, report_json

    base = baselines(cfg, paths)
    with TraceStore.open(paths.db, create=False, readonly=True) as store:
        rows, report = collect_rows(cfg, paths, store)
    if report is None:
        raise RuntimeError("no evaluation finished: nothing to report")
    out_dir.mkdir(parents=True, exist_ok=True)
    md, png = out_dir / f"{cfg.file_stem()}.md", out_dir / f"{cfg.file_stem()}.png"
    bar_chart(report, png)
    write_markdown(md, cfg, rows, report, base, stages, info, png)
    result = {"markdown": str(md), "png": str(png), "table": report_json(report),
              "baselines": asdict(base), "findings": findings(rows, base, cfg),
              "rows": [{"label": r.label, "mode": r.mode, "stage": r.stage,
                        "counting": r.avg(COUNTING), "spatial": r.avg(SPATIAL),
                        "grounding": r.diag("grounding"), "completion_tokens": r.diag("mean_completion_tokens")}
                       for r in rows]}
    return result


# --- the whole run --------------------------------------------------------------------------------------


def _quiet(log: Path, fn: Callable[..., Any], *args: Any) -> Any:
    """Run fn with Python's stdout/stderr (transformers' bars and warnings) going to a log file."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        return fn(*args)


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
    view = Console(file=console.file, width=console.width, force_terminal=console.is_terminal,
                   no_color=console.no_color)  # bound now: job output is redirected while it runs
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
                                   command=_command(cfg, "all"), backend="transformers",
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
            init = serial("init", lambda r: _quiet(paths.log("init"), init_model, cfg, paths))
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


def config_for(size: str, **overrides: Any) -> TableConfig:
    """A named size, with fields replaced (e.g. workers); KeyError for an unknown size."""
    return replace(SIZES[size], **{k: v for k, v in overrides.items() if v is not None})
