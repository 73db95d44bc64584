"""`vgt train sft`: TRL's SFTTrainer on stored traces, loss on what the policy writes only.

The processor's own chat template renders each conversation (Gemma3 first; TRL swaps in its training
template with `{% generation %}` markers when the model's lacks them), images stay untruncated
(`max_length=None`), and checkpoints land in the output directory so `--resume` continues a killed run.
`agent` traces are not chat rows: `AgentCollator` builds each one's ask-loop sequence with its own labels
(model turns only, never the tool's `<obj>` replies), so TRL neither prepares nor masks that dataset; its
rows get a `length` column when batches are grouped by length, and `SharedPrefixSFTTrainer` runs the
prompt prefix the rows of a batch share once. `max_minutes` fits the steps into a wall-time budget.
The run, its config and its metrics (loss before/after on held-out images, the log history) go to the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgt_agent.devices import Placement, trainer_placement
from vgt_agent.prompts import AGENT, AGENT_TEXT_TOOL, in_convention
from vgt_agent.store import TraceStore
from vgt_agent.training.agent_data import AgentCollator
from vgt_agent.training.config import ConfigError, build_args, loggable
from vgt_agent.training.coords import model_convention
from vgt_agent.training.data import check_variant, sft_dataset, split_by_image
from vgt_agent.training.model import LoraSpec, load_model, parent_provenance, save_final, starting_weights
from vgt_agent.training.progress import LoggedRun, RunLogger
from vgt_agent.training.time_budget import WallTimeBudget

SFT_DEFAULTS: dict[str, Any] = {
    "max_length": None,  # never cut image tokens
    "assistant_only_loss": True,
    "report_to": "none",
    "logging_steps": 10,
    "save_strategy": "steps",
    "save_steps": 500,
    "save_total_limit": 2,
    "learning_rate": 1e-5,
    "num_train_epochs": 1.0,
    "per_device_train_batch_size": 4,
}
LENGTH_SAMPLERS = ("group_by_length", "batch_rebalance")  # transformers' samplers that read a `length` column
AGENT_ARGS: dict[str, Any] = {
    "assistant_only_loss": False,  # the labels come with each sequence (AgentCollator), not from the template
    "remove_unused_columns": False,  # the collator reads the trace rows' own columns
    "dataset_kwargs": {"skip_prepare_dataset": True},  # TRL tokenises nothing: the collator builds the sequence
}


@dataclass
class SFTJob:
    """Everything one `vgt train sft` needs; `trl_args` holds explicit CLI values (None = not given)."""

    model: str
    variant: str
    output_dir: Path
    run: str | None = None
    dataset: str | None = None
    verified_only: bool = True
    eval_fraction: float = 0.05
    seed: int = 0
    lora: LoraSpec | None = None
    resume: bool = False
    yaml_args: dict[str, Any] = field(default_factory=dict)
    trl_args: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    name: str | None = None  # the run's name in the store (default: sft-<variant>)
    max_minutes: float | None = None  # wall-time budget (`time_budget.WallTimeBudget`)
    placement: Placement | None = None  # --device/--dtype as given (None: CUDA when there is one, else CPU)
    coords: str | None = None  # the model's coordinate convention (None: its family's)


def sft_config(job: SFTJob) -> Any:
    """The SFTConfig for a job (ConfigError on a bad one); `agent` fixes `AGENT_ARGS` and never truncates."""
    from trl import SFTConfig

    fixed = AGENT_ARGS if job.variant == AGENT else {}
    for key, value in fixed.items():
        if key in job.yaml_args and job.yaml_args[key] != value:
            raise ConfigError(f"--variant agent trains with {key}={value!r}; remove {key} from the config")
    overrides = {**job.trl_args, **fixed, "output_dir": str(job.output_dir), "seed": job.seed}
    args = build_args(SFTConfig, yaml_args=job.yaml_args, overrides=overrides, defaults=SFT_DEFAULTS,
                      reserved={"output_dir": "--output-dir", "seed": "--seed"}, placement=job.placement)
    if fixed and args.max_length is not None:
        raise ConfigError("--variant agent trains whole traces (a cut one would train a turn without its end); "
                          "drop max_length")
    return args


def with_lengths(ds: Any, collator: AgentCollator) -> Any:
    """The agent rows with their token counts as `length` (what a length-grouped sampler sorts by); building
    them fills the collator's cache, so the first epoch's batches cost no more."""
    if ds is None or "length" in ds.column_names:
        return ds
    return ds.add_column("length", [collator.length(row) for row in ds])


def last_checkpoint(output_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None


def train_sft(store: TraceStore, job: SFTJob, *, logger: RunLogger | None = None) -> dict[str, Any]:
    """Build the data, train, save, and log the run; returns the run's metrics (with `run_id`)."""
    from accelerate import PartialState
    from trl import SFTTrainer

    check_variant(job.variant)
    args = sft_config(job)
    convention = model_convention(job.model, job.coords)
    train_ds, eval_ds = split_by_image(
        sft_dataset(store, job.variant, run=job.run, dataset=job.dataset, verified_only=job.verified_only,
                    seed=job.seed, convention=convention),
        job.eval_fraction, job.seed)
    checkpoint = last_checkpoint(job.output_dir) if job.resume else None
    model, processor = load_model(starting_weights(job.model, checkpoint, job.lora is not None), bf16=bool(args.bf16))
    trainer_cls, collator = SFTTrainer, None
    if job.variant == AGENT:
        from vgt_agent.training.shared_prefix import SharedPrefixSFTTrainer

        collator = AgentCollator(processor, system=in_convention(AGENT_TEXT_TOOL, convention))
        trainer_cls = SharedPrefixSFTTrainer
        if args.train_sampling_strategy in LENGTH_SAMPLERS:
            train_ds, eval_ds = (with_lengths(ds, collator) for ds in (train_ds, eval_ds))
    logger = logger or RunLogger()
    budget = WallTimeBudget(job.max_minutes) if job.max_minutes else None
    config = {"variant": job.variant, "filters": {"run": job.run, "dataset": job.dataset,
                                                  "verified_only": job.verified_only},
              "eval_fraction": job.eval_fraction, "lora": vars(job.lora) if job.lora else None,
              "output_dir": str(job.output_dir.resolve()), "resumed_from": checkpoint, "max_minutes": job.max_minutes,
              "trl": loggable(args), "coords": convention.name, **trainer_placement(args).as_dict()}
    main = PartialState().is_main_process
    with LoggedRun(store, "sft", main=main, name=job.name or f"sft-{job.variant}", command=job.command,
                   model=job.model, backend="transformers", config=config) as run:
        trainer = trainer_cls(model=model, processing_class=processor, args=args, train_dataset=train_ds,
                              eval_dataset=eval_ds, peft_config=job.lora.peft_config() if job.lora else None,
                              data_collator=collator, callbacks=[logger] + ([budget] if budget else []))
        metrics = run.metrics
        metrics.update(train_examples=len(train_ds), eval_examples=len(eval_ds) if eval_ds is not None else 0,
                       output_dir=config["output_dir"])
        if eval_ds is not None and checkpoint is None:
            metrics["eval_loss_before"] = trainer.evaluate()["eval_loss"]
        result = trainer.train(resume_from_checkpoint=checkpoint)
        metrics.update(train_loss=result.training_loss, steps=trainer.state.global_step,
                       first_loss=logger.first("loss"), last_loss=logger.last("loss"),
                       seconds=result.metrics.get("train_runtime"))
        if budget is not None:
            metrics["time_budget"] = budget.report
        if eval_ds is not None:
            metrics["eval_loss_after"] = trainer.evaluate()["eval_loss"]
        metrics["history"] = logger.history
        save_final(trainer, processor, job.output_dir, {
            "stage": "sft", "variant": job.variant, "base_model": job.model, "run_id": run.id,
            "lora": config["lora"], "parent": parent_provenance(job.model)})
    return {"run_id": run.id, **{k: v for k, v in metrics.items() if k != "history"}}
