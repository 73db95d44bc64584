"""How long the GRPO rewards take for one batch: 512 completions x 20 groundings vs masks of 448x448 images.

The batch mimics a GRPO step: 64 prompts x 8 generations; each sample has 5 reference objects (1-6 instance
masks each, ellipses of varied size); each completion writes 20 tags (points for half the prompts, boxes
for the other half) whose phrases name the references the way models do ("the red circles", "red circle",
"both blue squares", unknown objects), with coordinates jittered per completion so no two completions
score alike. Target: the grounding reward under 50 ms on one core. The reward functions share one read of each
completion (`rewards.read_completion`: `format.parse`, or just the groundings when the grounding reward reads
first), so parsing is timed on its own; reference masks are decoded once per sample (LRU), so their decoding
is too.

    OMP_NUM_THREADS=1 python benchmarks/reward_speed.py [--prompts 64] [--generations 8] [--tags 20]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads its BLAS

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from vgt_agent.format import render_grounding  # noqa: E402
from vgt_agent.geometry import (  # noqa: E402
    encode_rle,
    mask_to_point,
    masks_to_boxes,
    norm_from_pixel_box,
    norm_from_pixel_point,  # noqa: E402
)
from vgt_agent.training import rewards  # noqa: E402
from vgt_agent.training.references import decode_references, references_json  # noqa: E402

SIZE = 448
COLOURS = ("red", "blue", "green", "yellow", "purple", "orange")
SHAPES = ("circle", "square", "star", "triangle", "hexagon")


def ellipse(rng: np.random.Generator) -> np.ndarray:
    rr, cc = np.mgrid[:SIZE, :SIZE]
    cy, cx = rng.uniform(0.1, 0.9, 2) * SIZE
    ry, rx = rng.uniform(0.02, 0.12, 2) * SIZE
    return ((rr - cy) / ry) ** 2 + ((cc - cx) / rx) ** 2 <= 1


def make_sample(rng: np.random.Generator, n_refs: int) -> tuple[str, list[tuple[str, np.ndarray]]]:
    """A references JSON value and, per reference, its name and instance masks."""
    refs, specs = [], []
    for k in range(n_refs):
        name = f"{COLOURS[k % len(COLOURS)]} {SHAPES[rng.integers(len(SHAPES))]}"
        masks = np.stack([ellipse(rng) for _ in range(int(rng.integers(1, 7)))])
        refs.append((name, masks))
        specs.append({"name": name, "context": "", "rles": [encode_rle(m) for m in masks]})
    return references_json(specs, SIZE, SIZE), refs


def make_completion(rng: np.random.Generator, refs: list[tuple[str, np.ndarray]], kind: str, tags: int) -> str:
    """A thought with `tags` groundings: references named in varied ways, some unknown objects, jitter."""
    parts = ["<think>Let me look at the image carefully."]
    for t in range(tags):
        if t % 5 == 4:
            phrase, masks = "grey blob", refs[0][1][:1]
        else:
            name, masks = refs[t % len(refs)]
            phrase = (name, f"the {name}s", f"{name}s", f"all {name}s")[int(rng.integers(4))]
        coords = []
        for m in masks:
            if kind == "point":
                col, row = mask_to_point(m) if t < len(refs) else (int(rng.integers(SIZE)), int(rng.integers(SIZE)))
                coords.append(norm_from_pixel_point(col + rng.normal(0, 3), row + rng.normal(0, 3), SIZE, SIZE))
            else:
                box = masks_to_boxes(m[None])[0] + rng.normal(0, 4, 4)
                box[2:] = np.maximum(box[2:], box[:2] + 1)
                coords.append(norm_from_pixel_box(np.clip(box, 0, SIZE), SIZE, SIZE))
        parts.append(f" Next I check {phrase}: {render_grounding(phrase, kind, coords)}.")
    parts.append(" That settles it.</think> \\boxed{3}")
    return "".join(parts)


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """The best CPU time of this (single-threaded) process: unlike wall time, not inflated by other jobs
    sharing the machine, such as a training run."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--references", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    completions, payloads, variants = [], [], []
    for p in range(args.prompts):
        payload, refs = make_sample(rng, args.references)
        kind = "point" if p % 2 == 0 else "box"
        for _ in range(args.generations):
            completions.append(make_completion(rng, refs, kind, args.tags))
            payloads.append(payload)
            variants.append(kind)
    n = len(completions)
    golds, types = ["3"] * n, ["count"] * n
    ids = [[5, 1]] * n
    funcs = rewards.reward_functions("point", eos_token_ids=[1])

    def cold_grounding() -> None:
        rewards.read_completion.cache_clear()
        rewards.grounding_reward(completions, payloads)

    def decode_cold() -> None:
        decode_references.cache_clear()
        for payload in payloads[:: args.generations]:
            decode_references(payload)

    def all_rewards() -> None:
        rewards.read_completion.cache_clear()
        for f in funcs:
            f(completions=completions, gold_answer=golds, answer_type=types, choices=None, variant=variants,
              completion_ids=ids, references=payloads)

    decode_cold()  # steady state: references stay decoded across steps
    rewards.grounding_reward(completions, payloads)  # warm the parse cache and the routers' memo tables
    stages = [  # (name, function, held to the 50 ms target)
        ("decode references (cold, once per sample)", decode_cold, False),
        ("format.parse (cold)", lambda: [rewards.parse(c) for c in completions], False),
        ("grounding_reward, parsed (route + score)", lambda: rewards.grounding_reward(completions, payloads), True),
        ("grounding_reward, cold parse", cold_grounding, True),
        ("all reward functions of a step, cold parse", all_rewards, False),
    ]
    decode_cold()
    table = Table(title=f"GRPO rewards: {n} completions x {args.tags} groundings, {SIZE}x{SIZE} masks, one thread")
    table.add_column("stage")
    table.add_column("total (ms)", justify="right")
    table.add_column("per completion (µs)", justify="right")
    table.add_column("target < 50 ms", justify="center")
    for name, fn, targeted in stages:
        seconds = best_of(fn, args.repeats)
        verdict = ("✓" if seconds < 0.05 else "✗") if targeted else ""
        table.add_row(name, f"{1e3 * seconds:.1f}", f"{1e6 * seconds / n:.1f}", verdict)
    Console(width=120).print(table)
    scores = np.array(rewards.grounding_reward(completions, payloads))
    kinds = np.array(variants)
    print(f"mean grounding reward: points {scores[kinds == 'point'].mean():.3f}, "
          f"boxes {scores[kinds == 'box'].mean():.3f}")


if __name__ == "__main__":
    main()
