"""The table's sizes: what runs (modes, stages; the six splits are `world/splits.py BENCHMARKS`), how big
(`TableConfig`, `SIZES`) and how long one unit of each job takes (`COSTS`, what `job_graph.estimate` adds up)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

# The eval modes (`training/eval.py MODES`) in the paper's (and report.py's) row order.
MODES = ("direct", "think", "box", "point")
STAGES = ("sft", "rl", "rlg")
STAGE_TITLES = {"sft": "SFT", "rl": "RL, answer reward", "rlg": "RL, answer + grounding reward"}
GROUNDED = ("point", "box")
STEM = "table-in-miniature"


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

# Seconds per unit on one free core (measured; see the package docstring): synthesis per sample, SFT per step
# of 16 sequences, GRPO per step of 8 completions, eval per generation, and a job's start-up.
COSTS: dict[str, Any] = {
    "synth": 0.08, "startup": 10.0,
    "sft": {"direct": 0.5, "think": 0.76, "point": 1.48, "box": 1.89},
    "rl": {"direct": 0.3, "think": 1.0, "point": 2.0, "box": 2.0},
    "eval": {"direct": 0.03, "think": 0.18, "point": 0.3, "box": 0.36},
}



def config_for(size: str, **overrides: Any) -> TableConfig:
    """A named size, with fields replaced (e.g. workers); KeyError for an unknown size."""
    return replace(SIZES[size], **{k: v for k, v in overrides.items() if v is not None})
