"""`vgt train rl`: TRL's GRPOTrainer with vgt's rewards (see `rewards.py` for R and how it is normalised).

Prompts come from the samples of stored traces (references: gold masks, else synthesis's stored masks) or
straight from a dataset (`samples_from`, gold masks). Generation is TRL's: `model.generate` by default (the
CPU path, with tiny models in tests), or vLLM through TRL's own options (`use_vllm`, `vllm_mode` server with
`trl vllm-serve`, or colocate), which need the `vllm` package importable in the training environment.
The `agent` variant rolls out the tool-calling loop instead (`agent_rollout.py`, TRL's `rollout_func`), in
process, with TRL's generation settings and the grounder `--grounder` names.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgt_agent.devices import Placement, trainer_placement
from vgt_agent.prompts import AGENT
from vgt_agent.reference_routing import Router
from vgt_agent.sample import Sample
from vgt_agent.store import TraceStore
from vgt_agent.training.agent_prompts import grounder_source
from vgt_agent.training.agent_rollout import AgentRollout, tool_calls
from vgt_agent.training.config import ConfigError, build_args, loggable
from vgt_agent.training.coords import canonical_rewards, model_convention
from vgt_agent.training.data import (
    DataError,
    check_variant,
    rl_dataset,
    rl_rows_from_samples,
    rl_rows_from_store,
    split_by_image,
)
from vgt_agent.training.model import LoraSpec, load_model, parent_provenance, save_final, starting_weights
from vgt_agent.training.progress import LoggedRun, RunLogger
from vgt_agent.training.rewards import RewardWeights, reward_functions, reward_weights
from vgt_agent.training.sft import last_checkpoint

RL_DEFAULTS: dict[str, Any] = {
    "report_to": "none",
    "logging_steps": 10,
    "save_strategy": "steps",
    "save_steps": 200,
    "save_total_limit": 2,
    "learning_rate": 1e-6,
    "temperature": 1.0,
    "num_generations": 8,
    "per_device_train_batch_size": 8,
    "max_completion_length": 1024,
    "multi_objective_aggregation": "normalize_then_sum",  # N(R_base) + w N(r_ground): each part on its own
}


@dataclass
class RLJob:
    """Everything one `vgt train rl` needs; `trl_args` holds explicit CLI values (None = not given)."""

    model: str
    variant: str
    output_dir: Path
    run: str | None = None
    dataset: str | None = None
    samples_from: str | None = None
    limit: int | None = None
    eval_fraction: float = 0.0
    seed: int = 0
    weights: RewardWeights = field(default_factory=RewardWeights)
    router: Router | None = None
    router_name: str = "text"
    max_groundings: int = 32
    lora: LoraSpec | None = None
    resume: bool = False
    yaml_args: dict[str, Any] = field(default_factory=dict)
    trl_args: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    name: str | None = None  # the run's name in the store (default: rl-<variant>)
    grounder: str = "world"  # the tool of `agent` rollouts: world | gold (see agent_prompts.py)
    placement: Placement | None = None  # --device/--dtype as given (None: CUDA when there is one, else CPU)
    coords: str | None = None  # the model's coordinate convention (None: its family's)


def grpo_config(job: RLJob, reward_weights: list[float]) -> Any:
    """The GRPOConfig for a job (ConfigError on a bad one, or vLLM asked for where it cannot run)."""
    from trl import GRPOConfig

    overrides = {**job.trl_args, "output_dir": str(job.output_dir), "seed": job.seed, "reward_weights": reward_weights}
    args = build_args(GRPOConfig, yaml_args=job.yaml_args, overrides=overrides, defaults=RL_DEFAULTS,
                      reserved={"output_dir": "--output-dir", "seed": "--seed",
                                "reward_weights": "--w-answer/--w-think/--w-gfmt/--w-trunc/--w-ground"},
                      placement=job.placement)
    if args.use_vllm and job.variant == AGENT:
        raise ConfigError("--variant agent rolls out the tool loop in process, with the policy being trained; "
                          "train it without --use-vllm")
    if args.use_vllm and importlib.util.find_spec("vllm") is None:
        raise ConfigError("--use-vllm needs the vllm package importable here (TRL's weight sync uses it even in "
                          "server mode): install vgt into vLLM's environment, or train without --use-vllm")
    if args.use_vllm and args.use_cpu:
        raise ConfigError("--use-vllm needs a CUDA GPU; on the CPU train with TRL's own generation")
    return args


def rl_rows(store: TraceStore, job: RLJob) -> tuple[list[dict[str, Any]], list[Sample]]:
    """The RL prompts of a job: from a dataset (gold references) or from the store's traced samples. Also the
    dataset's samples (none from the store), whose scene graphs the gold grounder of agent rollouts uses."""
    variant = job.variant
    samples: list[Sample] = []
    if job.samples_from:
        from vgt_agent.datasets import DatasetUnavailable, load_samples

        try:
            samples = list(load_samples(job.samples_from, limit=job.limit))
            rows = rl_rows_from_samples(samples, variant)
        except (DatasetUnavailable, FileNotFoundError, ValueError) as e:
            raise DataError(str(e)) from e
    else:
        rows = rl_rows_from_store(store, variant, run=job.run, dataset=job.dataset)
        rows = rows[: job.limit] if job.limit is not None else rows
    return rows, samples


def train_rl(store: TraceStore, job: RLJob, *, logger: RunLogger | None = None) -> dict[str, Any]:
    """Build the prompts and rewards, run GRPO, save, and log the run; returns its metrics (with `run_id`)."""
    from accelerate import PartialState
    from trl import GRPOTrainer

    from vgt_agent.backends.transformers_backend import eos_token_ids

    check_variant(job.variant)
    agent = job.variant == AGENT
    rows, samples = rl_rows(store, job)
    convention = model_convention(job.model, job.coords)
    train_ds, eval_ds = split_by_image(rl_dataset(rows, convention), job.eval_fraction, job.seed)
    # agent: the tool-call count is logged beside the rewards (weight 0), like the reward components
    args = grpo_config(job, reward_weights(job.variant, job.weights) + ([0.0] if agent else []))
    rollout = AgentRollout(grounder_source(job.grounder, rows, samples, job.seed)) if agent else None
    if agent and convention.name != "norm1000":
        raise ConfigError(f"agent RL rolls out the ask loop in 0..1000; a {convention.name} model is not supported "
                          "yet (train it with --variant point or box)")
    checkpoint = last_checkpoint(job.output_dir) if job.resume else None
    model, processor = load_model(starting_weights(job.model, checkpoint, job.lora is not None), bf16=bool(args.bf16))
    funcs = canonical_rewards(reward_functions(job.variant, job.weights, eos_token_ids=eos_token_ids(model, processor),
                                               router=job.router, max_groundings=job.max_groundings), convention)
    funcs += [tool_calls] if agent else []
    logger = logger or RunLogger()
    with_refs = sum(1 for payload in train_ds["references"] if json.loads(payload)["objects"])
    config = {"variant": job.variant, "filters": {"run": job.run, "dataset": job.dataset},
              "samples_from": job.samples_from, "limit": job.limit, "reward_weights": job.weights.as_dict(),
              "router": job.router_name, "max_groundings": job.max_groundings,
              "grounder": job.grounder if agent else None,
              "lora": vars(job.lora) if job.lora else None, "output_dir": str(job.output_dir.resolve()),
              "resumed_from": checkpoint, "trl": loggable(args), "coords": convention.name,
              **trainer_placement(args).as_dict()}
    with LoggedRun(store, "rl", main=PartialState().is_main_process, name=job.name or f"rl-{job.variant}",
                   command=job.command, model=job.model, backend="transformers", config=config) as run:
        trainer = GRPOTrainer(model=model, processing_class=processor, reward_funcs=funcs, args=args,
                              train_dataset=train_ds, eval_dataset=eval_ds,
                              peft_config=job.lora.peft_config() if job.lora else None, callbacks=[logger],
                              rollout_func=rollout)
        run.metrics.update(prompts=len(train_ds), prompts_with_references=with_refs,
                           output_dir=config["output_dir"])
        result = trainer.train(resume_from_checkpoint=checkpoint)
        steps = trainer.state.global_step
        run.metrics.update(
            steps=steps, train_loss=result.training_loss,
            seconds_per_step=result.metrics.get("train_runtime", 0.0) / max(1, steps),
            rewards={key.split("/")[1]: {"first": logger.first(key), "last": logger.last(key)}
                     for key in dict.fromkeys(k for h in logger.history for k in h
                                              if k.startswith("rewards/") and k.endswith("/mean"))},
            reward={"first": logger.first("reward"), "last": logger.last("reward")},
            history=logger.history)
        save_final(trainer, processor, job.output_dir, {
            "stage": "rl", "variant": job.variant, "base_model": job.model, "run_id": run.id,
            "reward_weights": job.weights.as_dict(), "router": job.router_name, "lora": config["lora"],
            "grounder": config["grounder"],
            "parent": parent_provenance(job.model)})
    return {"run_id": run.id, **{k: v for k, v in run.metrics.items() if k != "history"}}
