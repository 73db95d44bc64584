"""The job graph: every training and eval as a `Job` with its dependencies, the estimated seconds of each, the
critical-path priorities both the estimate and `workers.run_jobs` schedule by, and the estimate itself."""

from __future__ import annotations

from dataclasses import dataclass

from vgt_agent.tiny.table.config import COSTS, GROUNDED, MODES, STAGES, TableConfig
from vgt_agent.world.splits import BENCHMARKS


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


def priorities(todo: list[Job], cfg: TableConfig) -> dict[Job, float]:
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
    prio = priorities(todo, cfg)
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
