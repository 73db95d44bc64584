"""vgt-tiny's recipe: the architecture, where the shipped weights live, and traces -> training examples.

Why these sizes: the policy calls the grounder and reasons over the coordinates it gets back, so it needs
almost no vision (one 32 px image token) and a text model just deep enough to copy coordinates by
induction and compare digits (4 layers, width 128, ~1.2 M parameters, ~5 MB), which trains on 2 shared
CPU cores in about half an hour.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from vgt_agent.tiny.build import build_tiny_gemma3
from vgt_agent.tiny.examples import Example, build_example, sample_newlines
from vgt_agent.tiny.vocab import world_vocabulary

NAME = "vgt-tiny"
WEIGHTS_DIR = Path(__file__).parent / "weights" / NAME

ARCH: dict[str, Any] = {
    "image_size": 32, "patch_size": 16, "mm_tokens_per_image": 1, "hidden": 128, "layers": 4, "heads": 4,
    "kv_heads": 2, "head_dim": 32, "intermediate": 512, "vision_hidden": 32, "vision_layers": 1,
    "vision_heads": 2, "vision_intermediate": 64, "max_positions": 2048, "sliding_window": 1024,
}


def build_policy(seed: int = 0):
    """A fresh, randomly initialised vgt-tiny and its processor (tokenizer from the world's vocabulary)."""
    return build_tiny_gemma3(world_vocabulary(), seed=seed, **ARCH)


def shipped_weights() -> Path | None:
    """The shipped vgt-tiny directory, when its weights are installed."""
    return WEIGHTS_DIR if (WEIGHTS_DIR / "model.safetensors").exists() else None


def examples_from_traces(processor: Any, traces: Iterable[dict[str, Any]], seed: int = 0) -> list[Example]:
    """Training sequences from kept agent traces: {"question", "choices", "image", "chunks"} each."""
    rng = random.Random(seed)
    out = []
    for t in traces:
        with Image.open(t["image"]) as im:
            image = im.convert("RGB")
        out.append(build_example(processor, t["question"], t["choices"], t["chunks"], image,
                                 sample_newlines(t["chunks"], rng)))
    return out


def save_policy(model: Any, processor: Any, directory: Path) -> Path:
    """Weights (safetensors) + processor files, loadable by TransformersBackend.from_pretrained."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
