"""Reproduce vgt-tiny from scratch through vgt's own pipeline, stage by stage as its commands run them.

Each stage calls the function its command calls and is logged in the trace store as that command logs it,
with the equivalent command line (`vgt traces runs` shows how to redo any stage by hand):
1. `vgt world make`: world-train (n samples) and the held-out splits (`EVAL_SPLITS`), under `data/`;
2. `vgt synth --via agent --teacher world-oracle --grounder world|gold-shuffled`:
   the world-oracle plays the policy in the ask graph on every world-train sample; verified correct traces
   are kept;
3. a fresh random vgt-tiny (`models/init`) is warmed up on copying random points, then on drills of every
   question family over random tool replies (`tiny/warmup.py`, its pretraining), into `models/warm`
   (logged as a `warmup` run);
4. `vgt train sft --variant agent`: it learns the kept traces turn by turn (`recipe.SFT_ARGS` in its
   wall-time budget `SFT_MINUTES`);
5. `vgt train rl --variant agent` when `rl.steps` > 0: GRPO over ask-loop rollouts on world-train prompts;
6. `vgt eval --variant agent`: the trained policy through the ask graph + WorldGrounder, greedy, per benchmark split.
The last training stage writes the model to `out_dir`, where the report JSON goes too; the whole run is
one `repro` run in the store.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from vgt_agent.backends.world_oracle import NAME as ORACLE
from vgt_agent.datasets import load_samples
from vgt_agent.graphs.ask import AskLimits
from vgt_agent.store import TraceStore
from vgt_agent.synthesis.graph import SynthSettings
from vgt_agent.synthesis.run import PipelineSpec, build_pipeline, run_config, run_name, run_synth
from vgt_agent.tiny.agent_runs import EVAL_SPLITS, ensure_split
from vgt_agent.tiny.eval_table import markdown, scores, summary, table
from vgt_agent.tiny.recipe import (
    ARCH,
    NAME,
    SFT_ARGS,
    SFT_MINUTES,
    TRAIN_SAMPLES,
    WARMUP_MINUTES,
    build_policy,
    save_policy,
)
from vgt_agent.tiny.stage_view import StageProgress
from vgt_agent.tiny.warmup import WarmupConfig
from vgt_agent.training.progress import LoggedRun, StepLogger

SYNTH_LIMITS = AskLimits(max_turns=8, max_tool_calls=8, max_tokens=1024, temperature=0.0)  # `vgt synth` defaults
EVAL_MAX_TOKENS = 768
RUN_ARGS = {"logging_steps": 10, "save_strategy": "no", "disable_tqdm": True}  # the repro shows its own bars


@dataclass(frozen=True)
class SFTStage:
    """`vgt train sft --variant agent` on the teacher's traces: its TRL arguments (`max_steps` the most) and
    wall-time budget."""

    args: dict[str, Any] = field(default_factory=lambda: dict(SFT_ARGS))
    minutes: float | None = SFT_MINUTES


@dataclass(frozen=True)
class RLStage:
    """`vgt train rl --variant agent` after SFT (`steps` 0: none). A GRPO step of 2 prompts x 2 rollouts takes
    ~2.6 s with the shipped weights (they answer; a random policy writes to the token limit, ~5x longer)."""

    steps: int = 0
    prompts: int = 2  # per step
    generations: int = 4  # rollouts per prompt
    lr: float = 1e-5
    max_tokens: int = EVAL_MAX_TOKENS


@dataclass(frozen=True)
class ReproConfig:
    work_dir: Path
    out_dir: Path
    train_samples: int = TRAIN_SAMPLES
    eval_samples: int = 100
    sft: SFTStage = field(default_factory=SFTStage)
    rl: RLStage = field(default_factory=RLStage)
    warmup: WarmupConfig | None = WarmupConfig(minutes=WARMUP_MINUTES)  # None: SFT from random init
    teacher_grounder: str = "gold-shuffled"  # or "world" (the same masks found in the pixels, ~10x slower)
    seed: int = 0
    workers: int = max(1, os.cpu_count() or 1)  # processes for world make, synth and eval


def run(cfg: ReproConfig, console: Console | None = None) -> dict[str, Any]:
    """The whole pipeline; writes the model and `repro_report.json` to cfg.out_dir and returns the report."""
    started = time.perf_counter()
    work = cfg.work_dir
    (work / "configs").mkdir(parents=True, exist_ok=True)
    stages = StageProgress(console or Console(), work / "logs")
    console = stages.view
    console.print(f"[bold]vgt repro tiny[/] → {cfg.out_dir} (work dir {work}; stage logs in {work / 'logs'})")
    with TraceStore.open(work / "traces.db") as store, \
            LoggedRun(store, "repro", name=NAME, config=_loggable(asdict(cfg))) as repro:
        train_dir = make_data(cfg, stages)
        synth = synthesize(cfg, store, train_dir, stages)
        console.print(f"teacher: kept {synth['run_totals']['kept']}/{cfg.train_samples} correct "
                      f"{ORACLE} agent traces ({synth['run']})")
        with stages.stage("init"):
            model, processor = build_policy(cfg.seed)
            model_dir = save_policy(model, processor, work / "models" / "init")
        params = sum(p.numel() for p in model.parameters())
        console.print(f"policy: {NAME}, {params / 1e6:.2f} M parameters (random init in {model_dir})")
        warm = None
        if cfg.warmup:
            model_dir = work / "models" / "warm"
            warm = warm_up_policy(cfg.warmup, store, model, processor, model_dir, stages)
            exact = " ".join(f"{f} {v:.0%}" for f, v in warm["drill_exact"].items())
            console.print(f"warm-up: {warm['steps']} steps, held-out copying {warm['copy_accuracy']:.0%}, "
                          f"drills right to the token: {exact}")
        sft_out = work / "models" / "sft" if cfg.rl.steps else cfg.out_dir  # the last training stage writes it
        result = train_sft_stage(cfg, store, model_dir, sft_out, synth["run_id"], stages)
        trained = {"args": cfg.sft.args, "max_minutes": cfg.sft.minutes, "result": result}
        model_dir = sft_out
        rl = None
        if cfg.rl.steps:
            rl = reinforce(cfg, store, model_dir, cfg.out_dir, train_dir, stages)
            model_dir = cfg.out_dir
        run_id, label, benches = evaluate(cfg, store, model_dir, stages)
        split_scores = scores(store, run_id, benches)
        console.print(table(split_scores, f"{NAME} ({label}), agent mode (ask graph + WorldGrounder), greedy"))
        size = sum(f.stat().st_size for f in cfg.out_dir.iterdir() if f.is_file())
        report = {
            "model": NAME, "params": params, "size_bytes": size, "arch": ARCH, "train_samples": cfg.train_samples,
            "teacher": {"model": ORACLE, "grounder": cfg.teacher_grounder, "run": synth["run"],
                        "kept": synth["run_totals"]["kept"]},
            "warmup": warm, "sft": trained, "rl": rl, "eval": {"run_id": run_id, "label": label},
            "eval_samples": cfg.eval_samples, "scores": {s.split: s.accuracy for s in split_scores},
            "summary": summary(split_scores), "markdown": markdown(split_scores),
            "stage_seconds": stages.seconds, "seconds": time.perf_counter() - started,
        }
        (cfg.out_dir / "repro_report.json").write_text(json.dumps(report, indent=2, default=str))
        repro.metrics.update({k: v for k, v in report.items() if k not in ("markdown", "arch")})
    console.print(f"done in {report['seconds'] / 60:.1f} min; model in {cfg.out_dir} ({size / 1e6:.1f} MB)")
    return report


def make_data(cfg: ReproConfig, stages: StageProgress) -> Path:
    """`vgt world make`: world-train and the benchmark splits (each made once, reused by later runs)."""
    data = cfg.work_dir / "data"
    with stages.stage("world make") as bar:
        folders = {}
        for split, n in (("world-train", cfg.train_samples), *((b, cfg.eval_samples) for b in EVAL_SPLITS)):
            task = bar(split, n)
            folders[split] = ensure_split(data, split, n, workers=cfg.workers,
                                          progress=lambda done, total, t=task: t(done, total, ""))
            task(n, n, "")  # also when an earlier run made it
    return folders["world-train"]


def synthesize(cfg: ReproConfig, store: TraceStore, train_dir: Path, stages: StageProgress) -> dict[str, Any]:
    """`vgt synth --via agent` with the world-oracle teacher: the run's summary (as `--json` prints it)."""
    teacher = ORACLE
    samples = list(load_samples(str(train_dir), limit=cfg.train_samples))
    spec = PipelineSpec(settings=SynthSettings(via="agent", agent_limits=SYNTH_LIMITS), grounder=cfg.teacher_grounder,
                        sam3_checkpoint=None, teacher=teacher, extract="scene", policy="rule", backend="openai",
                        model=None, base_url=None, max_attempts=3, temperature=1.0,
                        max_tokens=SYNTH_LIMITS.max_tokens)
    name = run_name(samples, str(train_dir), None, "agent", teacher)
    concurrency = 4 * cfg.workers
    command = (f"vgt synth --dataset {train_dir} --limit {cfg.train_samples} --via agent --teacher {teacher} "
               f"--grounder {cfg.teacher_grounder} --workers {cfg.workers} --concurrency {concurrency} "
               f"--db {store.path}")
    with stages.stage("synth") as bar:
        task = bar("teacher traces", len(samples))
        summary_ = run_synth(
            store, spec, build_pipeline(spec), samples, name=name, command=command, backend=ORACLE,
            model=teacher, concurrency=concurrency, workers=cfg.workers,
            config=run_config(spec, teacher, concurrency=concurrency, workers=cfg.workers, limit=cfg.train_samples),
            on_outcome=lambda stats, _: task(stats.processed, stats.selected - stats.skipped, f"kept {stats.kept}"))
    if summary_["status"] != "done":
        raise RuntimeError(f"synth {summary_['status']}: {summary_['message']}")
    return summary_


def warm_up_policy(wcfg: WarmupConfig, store: TraceStore, model: Any, processor: Any, out: Path,
                   stages: StageProgress) -> dict[str, Any]:
    """The warm-up (`tiny/warmup.py`: copying points, then drills) of the fresh policy, saved to `out`."""
    from vgt_agent.tiny.vocab import world_vocabulary
    from vgt_agent.tiny.warmup import warm_up

    words = [w for w in world_vocabulary() if w.isalpha()]
    with stages.stage("warm-up") as bar, \
            LoggedRun(store, "warmup", name=f"{NAME} warm-up", config=asdict(wcfg)) as logged:
        logged.metrics.update(warm_up(model, processor, words, wcfg, report=bar("warm-up", wcfg.max_steps)))
        save_policy(model, processor, out)
    return logged.metrics


def train_sft_stage(cfg: ReproConfig, store: TraceStore, model_dir: Path, out: Path, synth_run: str,
                    stages: StageProgress) -> dict[str, Any]:
    """`vgt train sft --variant agent` from `model_dir` on the synth run's traces: the run's metrics."""
    from vgt_agent.training.sft import SFTJob, train_sft

    sft = cfg.sft
    yaml_args = {k: v for k, v in {**sft.args, **RUN_ARGS}.items() if k != "max_steps"}
    config = cfg.work_dir / "configs" / "sft.yaml"
    config.write_text(yaml.safe_dump(yaml_args, sort_keys=False))
    steps = sft.args["max_steps"]
    budget = f" --max-minutes {sft.minutes:g}" if sft.minutes else ""
    command = (f"vgt train sft --model {model_dir} --variant agent --db {store.path} --run {synth_run} "
               f"--output-dir {out} --config {config} --max-steps {steps} --eval-fraction 0 --seed {cfg.seed}"
               f"{budget}")
    job = SFTJob(model=str(model_dir), variant="agent", output_dir=out, run=synth_run, eval_fraction=0.0,
                 seed=cfg.seed, yaml_args=yaml_args, trl_args={"max_steps": steps}, command=command,
                 max_minutes=sft.minutes)
    with stages.stage("SFT") as bar:
        return train_sft(store, job, logger=StepLogger(bar("SFT", steps)))


def reinforce(cfg: ReproConfig, store: TraceStore, model_dir: Path, out: Path, train_dir: Path,
              stages: StageProgress) -> dict[str, Any]:
    """`vgt train rl --variant agent` on world-train prompts (gold references, the teacher's grounder)."""
    from vgt_agent.training.rl import RLJob, train_rl

    rl = cfg.rl
    grounder = cfg.teacher_grounder
    yaml_args = {k: v for k, v in RUN_ARGS.items() if k != "logging_steps"}
    config = cfg.work_dir / "configs" / "rl.yaml"
    config.write_text(yaml.safe_dump(yaml_args, sort_keys=False))
    trl = {"max_steps": rl.steps, "per_device_train_batch_size": rl.prompts * rl.generations,
           "num_generations": rl.generations, "max_completion_length": rl.max_tokens, "learning_rate": rl.lr,
           "logging_steps": 1}
    command = (f"vgt train rl --model {model_dir} --variant agent --db {store.path} --samples-from {train_dir} "
               f"--limit {rl.steps * rl.prompts} --grounder {grounder} --output-dir {out} --config {config} "
               f"--max-steps {rl.steps} --batch-size {rl.prompts * rl.generations} --num-generations "
               f"{rl.generations} --max-completion-length {rl.max_tokens} --lr {rl.lr:g} --logging-steps 1 "
               f"--seed {cfg.seed}")
    job = RLJob(model=str(model_dir), variant="agent", output_dir=out, samples_from=str(train_dir),
                limit=rl.steps * rl.prompts, seed=cfg.seed, yaml_args=yaml_args, trl_args=trl, command=command,
                grounder=grounder)
    with stages.stage("RL") as bar:
        return train_rl(store, job, logger=StepLogger(bar("GRPO", rl.steps)))


def evaluate(cfg: ReproConfig, store: TraceStore, model_dir: Path,
             stages: StageProgress) -> tuple[str, str, list[Any]]:
    """`vgt eval --variant agent` (one greedy run per question, WorldGrounder), its benchmarks shared over
    `cfg.workers` processes: (run id, label, the benchmarks)."""
    from vgt_agent.backends.transformers_backend import TransformersBackend
    from vgt_agent.training.eval import EvalSpec, default_label, load_benchmarks, run_config
    from vgt_agent.training.eval_processes import run_eval_in_processes
    from vgt_agent.training.model import read_provenance

    names = tuple(str(cfg.work_dir / "data" / split) for split in EVAL_SPLITS)
    n = cfg.eval_samples
    spec = EvalSpec(benchmarks=names, mode="point", samples=1, temperature=0.0, limit=n,
                    max_tokens=EVAL_MAX_TOKENS, agent=True, grounder="world")
    benches = load_benchmarks(names, n)
    provenance = read_provenance(model_dir)
    label, stage = default_label(spec.mode, True, provenance)
    command = (f"vgt eval --benchmark {','.join(names)} --model {model_dir} --variant agent --grounder world "
               f"--samples 1 --temperature 0 --limit {n} --max-tokens {EVAL_MAX_TOKENS} --db {store.path}")
    with stages.stage("eval") as bar:
        backend = TransformersBackend.from_pretrained(model_dir, model_name=NAME)
        with LoggedRun(store, "eval", name=label, command=command, backend=backend.name, model=backend.model,
                       grounder="world", config=run_config(spec, label, stage, provenance)) as run:
            tasks = {b.name: bar(f"eval {b.name}", len(b.samples)) for b in benches}
            run.metrics.update(run_eval_in_processes(
                store, backend, spec, benches, run.id, model_dir, cfg.workers,
                progress=lambda name, done, total: tasks[name](done, total, "")))
    return run.id, label, benches


def _loggable(value: Any) -> Any:
    """The config as JSON values (paths as text)."""
    return json.loads(json.dumps(value, default=str))

