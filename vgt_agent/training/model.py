"""Loading the policy to train, LoRA, and saving the result so `vgt ask` / `vgt eval` load it directly.

`--model` is a local directory, a Hugging Face id (cache, or the Hub when reachable), or `tiny`: a random
tiny Gemma3 built in code, for CPU smoke runs and tests. Every trained model directory also gets
`vgt_train.json` (stage, variant, reward weights, run id, parent): how `vgt eval` labels its table rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TINY = "tiny"
PROVENANCE = "vgt_train.json"
# The language model's projections (`language_model`: Gemma3, Qwen-VL; `text_model`: Idefics3/SmolVLM); the vision
# tower stays frozen under LoRA.
LORA_TARGETS = r".*(language_model|text_model).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


class ModelError(ValueError):
    """The model cannot be loaded as given (one line, for the CLI's exit 2)."""


@dataclass(frozen=True)
class LoraSpec:
    """LoRA on the language model's attention and MLP projections (`None` = full fine-tune)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05

    def peft_config(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=LORA_TARGETS,
                          task_type="CAUSAL_LM")


def starting_weights(model: str, checkpoint: str | None, lora: bool) -> str:
    """What a run loads its weights from: a resumed full fine-tune from its checkpoint, else the given model.

    Why not leave it to `Trainer.train(resume_from_checkpoint=...)`: transformers 5.24 saves Gemma3 checkpoints
    under its old key names and the Trainer loads them back without renaming, so nothing matches and a resumed
    run silently restarts from the base weights (huggingface/transformers#43701). `from_pretrained` maps the
    names; the Trainer then restores the optimizer, schedule and step. LoRA runs start from the base model and
    the Trainer restores their adapter.
    """
    return checkpoint if checkpoint and not lora else model


def load_model(name: str, *, bf16: bool = False) -> tuple[Any, Any]:
    """(model, processor) from a local path, a hub id, or `tiny`; ModelError with one line otherwise."""
    if name == TINY:
        import torch

        from vgt_agent.backends.tiny_gemma3 import build_tiny_gemma3

        model, processor = build_tiny_gemma3()
        return (model.to(torch.bfloat16) if bf16 else model), processor
    import torch

    from vgt_agent.backends.base import BackendError
    from vgt_agent.backends.transformers_backend import load_vlm

    try:
        model, processor = load_vlm(name, dtype=torch.bfloat16 if bf16 else torch.float32)
    except BackendError as e:
        raise ModelError(str(e)) from e
    return model, processor


def read_provenance(model_dir: str | Path) -> dict[str, Any] | None:
    """The `vgt_train.json` of a model directory (or of the run directory above a checkpoint), if any."""
    path = Path(model_dir)
    for candidate in (path / PROVENANCE, path.parent / PROVENANCE):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
    return None


def parent_provenance(model: str) -> dict[str, Any] | None:
    """The provenance of the model a training starts from, when it is a vgt-trained directory."""
    return read_provenance(model) if Path(model).exists() else None


def save_final(trainer: Any, processor: Any, output_dir: Path, provenance: dict[str, Any]) -> None:
    """Save the trained model (LoRA merged into full weights; the adapter kept in `adapter/`), the processor
    and the provenance record, on the main process only."""
    if not trainer.accelerator.is_main_process:
        return
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        model.save_pretrained(output_dir / "adapter")
        model = model.merge_and_unload()
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    (output_dir / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
