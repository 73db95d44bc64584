"""The stages: the work dir's layout and stage log, then what each stage does: the data, the synthesis, the
random init model, and one job's training or eval (`run_job`, the same in this process or a worker)."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vgt_agent.tiny.table.config import STEM, TableConfig, TableError
from vgt_agent.tiny.table.job_graph import Job
from vgt_agent.world.splits import BENCHMARKS

Report = Callable[[int, int, str], None]  # (done, total, info) of the running stage


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


def command(cfg: TableConfig, what: str) -> str:
    """What the store records as the command that made a run."""
    return f"vgt repro table --size {cfg.name} ({what})"


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
    from vgt_agent.store import TraceStore
    from vgt_agent.synthesis.batch import BatchRunner, BatchStats
    from vgt_agent.synthesis.extract import SceneExtractor
    from vgt_agent.synthesis.graph import SynthSettings
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
        store.start_run("synth", run_id=run_id, name=synth_run_name(cfg), command=command(cfg, "synth"),
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
    from vgt_agent.backends.tiny_gemma3 import DEFAULT_WORDS
    from vgt_agent.prompts import VARIANT_PROMPTS, format_question
    from vgt_agent.store import TraceStore

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
    from vgt_agent.backends.tiny_gemma3 import build_tiny_gemma3

    model, processor = build_tiny_gemma3(vocabulary(cfg, paths), seed=cfg.seed, **asdict(cfg.model))
    tmp = paths.init.with_name("init.tmp")
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    if paths.init.exists():  # a half-written one from an interrupted session
        shutil.rmtree(paths.init)
    tmp.replace(paths.init)
    return {"params": sum(p.numel() for p in model.parameters()), "vocab": len(processor.tokenizer)}


# --- jobs (run in a worker process, or here with workers=1) ---------------------------------------------


def run_job(job: Job, cfg: TableConfig, work: Path, report: Report) -> dict[str, Any]:
    """One training (resuming from its last checkpoint) or one eval (resuming its stored generations)."""
    from vgt_agent.store import TraceStore
    from vgt_agent.training.eval import MODE_VARIANT
    from vgt_agent.training.progress import StepLogger

    paths = Paths(work)
    variant = MODE_VARIANT[job.mode]
    out = paths.model(job)
    with TraceStore.open(paths.db) as store:
        if job.kind == "eval":
            return _evaluate(job, cfg, paths, store, report)
        common = {"variant": variant, "output_dir": out, "run": synth_run_id(cfg), "seed": cfg.seed, "resume": True,
                  "command": command(cfg, job.key), "name": f"{STEM}/{cfg.name}/{job.model_key}"}
        logging = {"logging_steps": 1, "save_steps": cfg.save_steps, "save_total_limit": 1, "disable_tqdm": True}
        if job.stage == "sft":
            from vgt_agent.training.sft import SFTJob, train_sft

            trl = {"max_steps": cfg.sft_steps, "per_device_train_batch_size": cfg.sft_batch,
                   "per_device_eval_batch_size": cfg.sft_batch, "learning_rate": cfg.sft_lr,
                   "lr_scheduler_type": "cosine", "warmup_steps": min(cfg.sft_warmup, cfg.sft_steps // 4),
                   "weight_decay": 0.01, **logging}
            return train_sft(store, SFTJob(model=str(paths.init), eval_fraction=0.05, trl_args=trl, **common),
                             logger=StepLogger(report))
        from vgt_agent.training.rewards import RewardWeights
        from vgt_agent.training.rl import RLJob, train_rl

        trl = {"max_steps": cfg.rl_steps, "per_device_train_batch_size": cfg.rl_prompts_per_step * cfg.generations,
               "num_generations": cfg.generations, "max_completion_length": cfg.max_tokens[job.mode],
               "learning_rate": cfg.rl_lr, "temperature": cfg.temperature, **logging}
        weights = RewardWeights(grounding=cfg.ground_weight if job.stage == "rlg" else 0.0)
        sft = paths.model(Job("train", "sft", job.mode))
        return train_rl(store, RLJob(model=str(sft), limit=cfg.rl_steps * cfg.rl_prompts_per_step, weights=weights,
                                     trl_args=trl, **common), logger=StepLogger(report))


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
                             command=command(cfg, job.key), backend=backend.name, model=backend.model, config=config)
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
