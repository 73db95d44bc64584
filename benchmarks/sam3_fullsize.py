"""Full-size SAM3 (transformers' `Sam3Config()` defaults, 1008 px, random weights: nothing is downloaded).

What `--grounder sam3` costs on this machine's device: seconds for the first phrase on a new image (the
vision encoder plus one prompt), for each further phrase with the vision cache (one at a time, and batched
by `ground_many`) and without it (every phrase re-encodes the image), and per image when images are
grounded one at a time or encoded together by `ground_batch`. Peak memory is the device's (CUDA: torch's
allocator peak; CPU: the process's resident set, sampled) above what the loaded model already holds.
Random weights take the same time as trained ones; the masks they give mean nothing.

    OMP_NUM_THREADS=2 python benchmarks/sam3_fullsize.py [--device auto] [--dtype auto] [--phrases 3]
        [--images 2] [--tiny]

`--tiny` runs the same table on the tiny test config in seconds, to check the script itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import psutil
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table
from transformers import Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

from vgt_agent.devices import Placement, resolve_placement
from vgt_agent.grounders.clip_tokenizer import build_clip_tokenizer
from vgt_agent.grounders.sam3 import Sam3Grounder
from vgt_agent.grounders.sam3_tiny import build_tiny_sam3

PHRASES = ["cup", "laptop", "red mug on the table", "person", "chair", "dog", "car", "bottle"]


def build_full(seed: int) -> tuple[Sam3Model, Sam3Processor]:
    """The real architecture at its real size with seeded random weights, and its real processor (1008 px)."""
    torch.manual_seed(seed)
    model = Sam3Model(Sam3Config()).eval()
    return model, Sam3Processor(image_processor=Sam3ImageProcessor(), tokenizer=build_clip_tokenizer())


def photo(seed: int, size: tuple[int, int] = (1280, 960)) -> Image.Image:
    """A smooth random picture of photo size (the processor resizes it to 1008 x 1008)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


class PeakMemory:
    """Peak memory above a baseline while a block runs: CUDA allocator peak, or sampled process RSS."""

    def __init__(self, placement: Placement) -> None:
        self.cuda = placement.kind == "cuda"
        self.process = psutil.Process(os.getpid())

    def _now(self) -> int:
        return torch.cuda.memory_allocated() if self.cuda else self.process.memory_info().rss

    @contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        out: dict[str, float] = {}
        base = self._now()
        peak = [base]
        stop = threading.Event()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            def sample() -> None:
                while not stop.wait(0.01):
                    peak[0] = max(peak[0], self._now())

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
        try:
            yield out
        finally:
            stop.set()
            if self.cuda:
                torch.cuda.synchronize()
                peak[0] = torch.cuda.max_memory_allocated()
            else:
                sampler.join()
                peak[0] = max(peak[0], self._now())
            out["gb"] = (peak[0] - base) / 1e9


def timed(placement: Placement, fn: Callable[[], Any], what: str = "") -> float:
    """Wall seconds of `fn` (CUDA synchronised); each one also goes to stderr at once, as a long run's progress."""
    if placement.kind == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if placement.kind == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if what:
        print(f"{what}: {seconds:.2f} s", file=sys.stderr, flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N | mps (env VGT_DEVICE)")
    parser.add_argument("--dtype", default=None, help="auto | float32 | bfloat16 | float16 (env VGT_DTYPE)")
    parser.add_argument("--phrases", type=int, default=3, help="phrases per image (>= 2)")
    parser.add_argument("--images", type=int, default=2, help="images in the batched vision pass (>= 2)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test config instead of the full model")
    args = parser.parse_args()
    if args.phrases < 2 or args.images < 2 or args.phrases > len(PHRASES):
        parser.error(f"--phrases must be 2..{len(PHRASES)} and --images >= 2")
    placement = resolve_placement(args.device, args.dtype)
    console = Console(width=150)
    started = time.perf_counter()
    model, processor = build_tiny_sam3() if args.tiny else build_full(seed=0)
    size = model.config.vision_config.backbone_config.image_size
    params = sum(p.numel() for p in model.parameters())
    built = time.perf_counter() - started

    def grounder(cache_size: int) -> Sam3Grounder:
        return Sam3Grounder("random", model=model, processor=processor, device=placement.device,
                            dtype=placement.dtype, cache_size=cache_size, image_batch=args.images,
                            phrase_batch=args.phrases)

    memory = PeakMemory(placement)
    phrases = PHRASES[: args.phrases]
    images = [photo(seed) for seed in range(args.images + 2)]
    warm = grounder(0)
    timed(placement, lambda: warm.ground(images[-1], "cup"), "warm-up (allocator, kernels)")

    cached = grounder(4)
    with memory.measure() as first_mem:
        first = timed(placement, lambda: cached.ground(images[0], phrases[0]), "first phrase")
    extra_cached = [timed(placement, lambda p=p: cached.ground(images[0], p), "extra phrase, cached")
                    for p in phrases[1:]]
    with memory.measure() as many_mem:
        many = timed(placement, lambda: cached.ground_many(images[0], phrases), "ground_many")
    uncached = grounder(0)
    extra_uncached = timed(placement, lambda: uncached.ground(images[0], phrases[1]), "extra phrase, no cache")
    batch = grounder(0)
    jobs = [(image, phrases[:1]) for image in images[1 : 1 + args.images]]
    with memory.measure() as batch_mem:
        batched = timed(placement, lambda: batch.ground_batch(jobs), "ground_batch")

    per_extra = min(extra_cached)
    per_many = many / len(phrases)
    per_image_batched = batched / args.images
    # "first phrase" and "extra phrase, no cache" are the same work (encoder + one prompt): on a shared machine
    # the faster of the two is the baseline, and every timed row is the best of its repetitions
    one_image = min(first, extra_uncached)
    title = (f"SAM3 {'tiny' if args.tiny else 'full size'} ({params / 1e6:.0f} M parameters, {size} px, random "
             f"weights) on {placement.label}, {torch.get_num_threads()} threads; model built in {built:.0f} s")
    table = Table(title=title)
    for col in ("what", "seconds", "x one image", "peak memory GB"):
        table.add_column(col, justify="left" if col == "what" else "right")
    rows = [
        ("one image, one phrase: vision encoder + prompt (best of 2)", one_image, f"{first_mem['gb']:.2f}"),
        ("each extra phrase, vision cache, one at a time", per_extra, ""),
        ("each extra phrase, no cache (re-encodes the image)", extra_uncached, ""),
        (f"per phrase, ground_many of {len(phrases)} on cached features", per_many, f"{many_mem['gb']:.2f}"),
        (f"per image, ground_batch of {args.images} (one vision batch)", per_image_batched,
         f"{batch_mem['gb']:.2f}"),
    ]
    for what, seconds, gb in rows:
        table.add_row(what, f"{seconds:.3f}", f"{seconds / one_image:.3f}", gb)
    console.print(table)
    n = len(phrases)
    console.print(f"a {n}-phrase image: {one_image + (n - 1) * per_extra:.2f} s one at a time with the cache, "
                  f"{n * extra_uncached:.2f} s without it, {one_image - per_extra + many:.2f} s encoded once + "
                  "ground_many", highlight=False)

if __name__ == "__main__":
    main()
