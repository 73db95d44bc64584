"""`vgt train sft|rl`: fine-tune a VLM on stored grounded traces, then GRPO with grounding-aware rewards."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer
from rich.table import Table

from vgt_agent.cli.common import command_line, console, interrupted, print_json, usage_error, work_failed
from vgt_agent.cli.coords_option import CoordsOption
from vgt_agent.cli.device_options import DeviceOption, DtypeOption, placement_or_exit
from vgt_agent.cli.options import DbOption, JsonOption, open_store
from vgt_agent.home import default_db_path, vgt_home
from vgt_agent.terminal import safe_text
from vgt_agent.training.model import LoraSpec, ModelError
from vgt_agent.vocabulary import CoordsName, RolloutGrounder, Variant

if TYPE_CHECKING:  # the store and the training data modules load when a training runs, not for `--help`
    from vgt_agent.store import TraceStore

app = typer.Typer(
    rich_markup_mode=None,  # click's plain help, as the root app (cli/main.py)
    help="Train a VLM on stored traces: SFT, then GRPO with grounding rewards.", no_args_is_help=True)

ModelOpt = typer.Option(..., "--model", help="Local directory, Hugging Face id, or 'tiny' (random tiny Gemma3).")
VariantOpt = typer.Option("point", "--variant", help="The form of thought trained: the answer alone, plain "
                                                     "(non-grounded) thinking, thinking grounded with points or "
                                                     "boxes, or the agent (the tool-calling policy: SFT on the "
                                                     "traces of `vgt synth --via agent`; RL on rollouts of the ask "
                                                     "loop).")
OutputOpt = typer.Option(None, "--output-dir", help="Where checkpoints and the final model go. "
                                                     "Default: $VGT_HOME/models/<stage>-<variant>-<time>.")
RunOpt = typer.Option(None, "--run", help="Only traces of this run (id or name).")
DatasetOpt = typer.Option(None, "--dataset", help="Only traces of this dataset (as stored: e.g. tallyqa, or "
                                                   "world for every embedded-world split).")
ConfigOpt = typer.Option(None, "--config", help="YAML of TRL arguments (SFTConfig / GRPOConfig fields).")
EvalFractionOpt = typer.Option(None, "--eval-fraction", min=0.0, max=0.99,
                               help="Share of images held out for evaluation, split by image "
                                    "(default: 0.05 for sft, 0 for rl).")
SeedOpt = typer.Option(0, "--seed")
LoraOpt = typer.Option(False, "--lora/--full", help="LoRA on the language model, or full fine-tune.")
LoraROpt = typer.Option(16, "--lora-r", min=1)
LoraAlphaOpt = typer.Option(32, "--lora-alpha", min=1)
ResumeOpt = typer.Option(False, "--resume", help="Continue from the last checkpoint in --output-dir.")
EpochsOpt = typer.Option(None, "--epochs", min=0.0, help="num_train_epochs")
MaxStepsOpt = typer.Option(None, "--max-steps", min=1, help="max_steps (overrides --epochs)")
LrOpt = typer.Option(None, "--lr", min=0.0, help="learning_rate")
BatchOpt = typer.Option(None, "--batch-size", min=1, help="per_device_train_batch_size")
AccumOpt = typer.Option(None, "--grad-accum", min=1, help="gradient_accumulation_steps")
SaveStepsOpt = typer.Option(None, "--save-steps", min=1, help="checkpoint every N steps")
LogStepsOpt = typer.Option(None, "--logging-steps", min=1)


def _output_dir(output_dir: Path | None, stage: str, variant: str, resume: bool) -> Path:
    if output_dir is None:
        if resume:
            usage_error("--resume needs --output-dir (the directory whose checkpoints to continue)")
        return vgt_home() / "models" / f"{stage}-{variant}-{time.strftime('%Y%m%d-%H%M%S')}"
    if output_dir.exists() and not output_dir.is_dir():
        usage_error(f"--output-dir {output_dir} exists and is not a directory")
    return output_dir


def _writable_store(db: Path | None, *, must_exist: bool) -> TraceStore:
    path = db or default_db_path()
    if must_exist and not path.exists():
        usage_error(f"no trace store at {path} (pass --db or set VGT_DB)")
    return open_store(path, create=True)


def _yaml(config: Path | None) -> dict[str, Any]:
    from vgt_agent.training.config import ConfigError, load_yaml

    try:
        return load_yaml(config)
    except ConfigError as e:
        usage_error(str(e))


def _trl_args(**values: Any) -> dict[str, Any]:
    names = {"epochs": "num_train_epochs", "max_steps": "max_steps", "lr": "learning_rate",
             "batch_size": "per_device_train_batch_size", "grad_accum": "gradient_accumulation_steps",
             "save_steps": "save_steps", "logging_steps": "logging_steps"}
    return {names.get(k, k): v for k, v in values.items() if v is not None}


def _run(train: Any, store: TraceStore, job: Any, *, quiet_stdout: bool) -> dict[str, Any]:
    """Run a job; bad input -> exit 2, a failure during training -> exit 1 (the run is marked failed).

    With `quiet_stdout` (--json) the trainers' log lines go to stderr, so stdout holds only the result.
    """
    from vgt_agent.training.config import ConfigError
    from vgt_agent.training.data import DataError

    try:
        with contextlib.redirect_stdout(sys.stderr) if quiet_stdout else contextlib.nullcontext():
            return train(store, job)
    except (ConfigError, DataError, ModelError) as e:
        usage_error(str(e))
    except KeyboardInterrupt:
        interrupted("the run is marked interrupted, continue with --resume")
    except Exception as e:  # noqa: BLE001 - any training failure ends the command with one line
        work_failed(f"training failed: {type(e).__name__}: {' '.join(str(e).split())[:300]}")
    finally:
        store.close()


def _report(title: str, result: dict[str, Any], json_out: bool) -> None:
    """Print the result once: under `accelerate launch` only the main process reports."""
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    if json_out:
        print_json(result)
        return
    table = Table(title=title, show_header=False)
    for key, value in result.items():
        table.add_row(safe_text(key), safe_text(_fmt(value)))
    console.print(table)


def _fmt(value: Any) -> str:
    """Numbers to 4 digits; {"first", "last"} as "first → last"; other mappings as "key value, ..."."""
    if isinstance(value, dict) and set(value) == {"first", "last"}:
        return f"{_fmt(value['first'])} → {_fmt(value['last'])}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@app.command("sft")
def sft(
    model: str = ModelOpt, variant: Variant = VariantOpt, db: Path = DbOption, run: str = RunOpt,
    dataset: str = DatasetOpt,
    all_traces: bool = typer.Option(False, "--all-traces", help="Also traces whose answer was wrong."),
    output_dir: Path = OutputOpt, config: Path = ConfigOpt, eval_fraction: float = EvalFractionOpt,
    seed: int = SeedOpt, lora: bool = LoraOpt, lora_r: int = LoraROpt, lora_alpha: int = LoraAlphaOpt,
    resume: bool = ResumeOpt, epochs: float = EpochsOpt, max_steps: int = MaxStepsOpt, lr: float = LrOpt,
    batch_size: int = BatchOpt, grad_accum: int = AccumOpt, save_steps: int = SaveStepsOpt,
    logging_steps: int = LogStepsOpt,
    max_length: int = typer.Option(None, "--max-length", min=1, help="Truncate sequences (default: never, "
                                                                     "so image tokens are never cut)."),
    max_minutes: float = typer.Option(None, "--max-minutes", min=0.01, help="Wall-time budget: after 50 steps, "
                                      "fewer steps when the planned ones would not fit (the LR schedule re-fitted "
                                      "to end there)."),
    coords: CoordsName | None = CoordsOption,
    device: str = DeviceOption,
    dtype: str = DtypeOption,
    json_out: bool = JsonOption,
) -> None:
    """Supervised fine-tuning on stored traces of one variant, loss on what the model writes only (the assistant
    turn; for agent traces its own turns, never the tool's replies)."""
    from vgt_agent.training.sft import SFTJob, train_sft

    yaml_args = _yaml(config)
    job = SFTJob(model=model, variant=variant, output_dir=_output_dir(output_dir, "sft", variant, resume), run=run,
                 dataset=dataset, verified_only=not all_traces,
                 eval_fraction=0.05 if eval_fraction is None else eval_fraction, seed=seed,
                 lora=LoraSpec(lora_r, lora_alpha) if lora else None, resume=resume, yaml_args=yaml_args,
                 trl_args=_trl_args(epochs=epochs, max_steps=max_steps, lr=lr, batch_size=batch_size,
                                    grad_accum=grad_accum, save_steps=save_steps, logging_steps=logging_steps,
                                    max_length=max_length),
                 command=command_line(), max_minutes=max_minutes, placement=_placement(device, dtype),
                 coords=_coords(coords))
    result = _run(train_sft, _writable_store(db, must_exist=True), job, quiet_stdout=json_out)
    _report(f"sft · {variant}", result, json_out)


@app.command("rl")
def rl(
    model: str = ModelOpt, variant: Variant = VariantOpt, db: Path = DbOption, run: str = RunOpt,
    dataset: str = DatasetOpt,
    samples_from: str = typer.Option(None, "--samples-from", help="Take prompts straight from a dataset "
                                     "(registry name or world folder; gold masks as references) instead of the store."),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many prompts."),
    output_dir: Path = OutputOpt, config: Path = ConfigOpt, eval_fraction: float = EvalFractionOpt,
    seed: int = SeedOpt, lora: bool = LoraOpt, lora_r: int = LoraROpt, lora_alpha: int = LoraAlphaOpt,
    resume: bool = ResumeOpt, epochs: float = EpochsOpt, max_steps: int = MaxStepsOpt, lr: float = LrOpt,
    batch_size: int = BatchOpt, grad_accum: int = AccumOpt, save_steps: int = SaveStepsOpt,
    logging_steps: int = LogStepsOpt,
    num_generations: int = typer.Option(None, "--num-generations", min=2, help="Rollouts per prompt (G)."),
    max_completion_length: int = typer.Option(None, "--max-completion-length", min=1),
    temperature: float = typer.Option(None, "--temperature", min=0.0),
    beta: float = typer.Option(None, "--beta", min=0.0, help="KL coefficient (TRL default 0: no reference model)."),
    w_answer: float = typer.Option(1.0, "--w-answer", help="Weight of r_ans in R_base."),
    w_think: float = typer.Option(0.1, "--w-think", help="Weight of r_think (format) in R_base."),
    w_gfmt: float = typer.Option(0.1, "--w-gfmt", help="Weight of r_gfmt (valid tags) in R_base."),
    w_trunc: float = typer.Option(1.0, "--w-trunc", help="Weight of r_trunc (-1 if truncated) in R_base."),
    w_ground: float = typer.Option(0.5, "--w-ground", help="Weight of the normalised grounding part (0: logged only)."),
    router: Literal["text", "vlm"] = typer.Option("text", "--router", help="text (phrase + fuzzy match) | vlm"),
    router_model: str = typer.Option(None, "--router-model", help="Model of the VLM router (OpenAI-compatible)."),
    router_base_url: str = typer.Option(None, "--router-base-url", help="Server of the VLM router."),
    max_groundings: int = typer.Option(32, "--max-groundings", min=1, help="Tags counted per rollout."),
    use_vllm: bool = typer.Option(None, "--use-vllm/--no-vllm", help="Generate rollouts with vLLM (GPU)."),
    vllm_mode: Literal["server", "colocate"] | None = typer.Option(None, "--vllm-mode",
                                                                  help="server (trl vllm-serve) | colocate"),
    vllm_server_url: str = typer.Option(None, "--vllm-server-url", help="e.g. http://localhost:8000"),
    grounder: RolloutGrounder = typer.Option("world", "--grounder", help="The tool of --variant agent rollouts: world "
                                 "(segments the pixels, as `vgt ask` does) | gold-shuffled (the sample's reference "
                                 "masks in a shuffled order; `gold` is the same)."),
    coords: CoordsName | None = CoordsOption,
    device: str = DeviceOption,
    dtype: str = DtypeOption,
    json_out: bool = JsonOption,
) -> None:
    """GRPO with R = N(r_ans + 0.1 r_think + 0.1 r_gfmt + r_trunc) + 0.5 N(r_ground), each part logged."""
    from vgt_agent.training.rewards import RewardWeights
    from vgt_agent.training.rl import RLJob, train_rl

    yaml_args = _yaml(config)
    job = RLJob(model=model, variant=variant, output_dir=_output_dir(output_dir, "rl", variant, resume), run=run,
                dataset=dataset, samples_from=samples_from, limit=limit,
                eval_fraction=0.0 if eval_fraction is None else eval_fraction, seed=seed,
                weights=RewardWeights(w_answer, w_think, w_gfmt, w_trunc, w_ground),
                router=_router(router, router_model, router_base_url), router_name=router,
                max_groundings=max_groundings, lora=LoraSpec(lora_r, lora_alpha) if lora else None, resume=resume,
                yaml_args=yaml_args,
                trl_args=_trl_args(epochs=epochs, max_steps=max_steps, lr=lr, batch_size=batch_size,
                                   grad_accum=grad_accum, save_steps=save_steps, logging_steps=logging_steps,
                                   num_generations=num_generations, max_completion_length=max_completion_length,
                                   temperature=temperature, beta=beta, use_vllm=use_vllm, vllm_mode=vllm_mode,
                                   vllm_server_base_url=vllm_server_url),
                command=command_line(), grounder=grounder, placement=_placement(device, dtype),
                coords=_coords(coords))
    result = _run(train_rl, _writable_store(db, must_exist=samples_from is None), job, quiet_stdout=json_out)
    _report(f"rl · {variant}", result, json_out)


def _placement(device: str | None, dtype: str | None) -> Any:
    """An explicit --device/--dtype (or VGT_DEVICE/VGT_DTYPE) resolved; None leaves it to the trainer's default
    (CUDA when there is one, in TRL's precision, else the CPU in float32)."""
    return placement_or_exit(device, dtype) if device or dtype else None


def _router(name: str, model: str | None, base_url: str | None) -> Any:
    """None (the default text router) or a VLM router over an OpenAI-compatible server."""
    if name == "text":
        return None
    from vgt_agent.backends import BackendError, make_backend
    from vgt_agent.reference_routing import VLMRouter

    try:
        return VLMRouter(make_backend("openai", model, **({"base_url": base_url} if base_url else {})))
    except BackendError as e:
        usage_error(f"--router vlm: {e}")


def _coords(coords: str | None) -> str | None:
    """The --coords value, checked (exit 2 with one line for an unknown convention)."""
    return coords
