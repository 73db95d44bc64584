"""vgt-tiny's recipe: the architecture, where the shipped weights live, and its SFT stage as TRL arguments.

Why these sizes: the policy calls the grounder and reasons over the coordinates it gets back, so it needs
almost no vision (one 32 px image token) and a text model just deep enough to copy coordinates by
induction and compare digits (4 layers, width 128, ~1.2 M parameters, ~5 MB), which warms up
(`tiny/warmup.py`) and trains on 2 CPU cores in about an hour.

The SFT stage is a `vgt train sft --variant agent` config (SFTConfig fields, what `--config` YAML holds):
AdamW (0.9, 0.98), warmup then cosine to a floor, weight decay 0.01, clip 1.0, batches of 16 sequences of
similar length. It is short (600 steps at lr 1e-3): the warm-up's drills already taught the decisions, and SFT
carries them over to the teacher's real traces (pictures, sizes in the phrases, grounder misses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NAME = "vgt-tiny"
WEIGHTS_DIR = Path(__file__).parent / "weights" / NAME

ARCH: dict[str, Any] = {
    "image_size": 32, "patch_size": 16, "mm_tokens_per_image": 1, "hidden": 128, "layers": 4, "heads": 4,
    "kv_heads": 2, "head_dim": 32, "intermediate": 512, "vision_hidden": 32, "vision_layers": 1,
    "vision_heads": 2, "vision_intermediate": 64, "max_positions": 2048, "sliding_window": 1024,
}

SFT_ARGS: dict[str, Any] = {
    "max_steps": 600, "per_device_train_batch_size": 16, "train_sampling_strategy": "group_by_length",
    "learning_rate": 1e-3, "lr_scheduler_type": "cosine_with_min_lr", "lr_scheduler_kwargs": {"min_lr": 1e-4},
    "warmup_steps": 20, "weight_decay": 0.01, "adam_beta1": 0.9, "adam_beta2": 0.98, "max_grad_norm": 1.0,
}
SFT_MINUTES = 10.0  # SFT's wall-time budget on 2 CPU cores
WARMUP_MINUTES = 40.0  # the warm-up's budget: world make, synth of 8k varied, SFT and eval (2 processes) take ~18 more
TRAIN_SAMPLES = 8000  # world-train samples for the teacher: SFT's 600 x 16 sequences see each trace ~1.2 times


def build_policy(seed: int = 0):
    """A fresh, randomly initialised vgt-tiny and its processor (tokenizer from the world's vocabulary)."""
    from vgt_agent.backends.tiny_gemma3 import build_tiny_gemma3  # torch + transformers: only when a model is built
    from vgt_agent.tiny.vocab import world_vocabulary

    return build_tiny_gemma3(world_vocabulary(), seed=seed, **ARCH)


def shipped_weights() -> Path | None:
    """The shipped vgt-tiny directory, when its weights are installed."""
    return WEIGHTS_DIR if (WEIGHTS_DIR / "model.safetensors").exists() else None


def save_policy(model: Any, processor: Any, directory: Path) -> Path:
    """Weights (safetensors) + processor files, loadable by TransformersBackend.from_pretrained."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
