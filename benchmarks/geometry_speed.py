"""Single-thread timings of the geometry hot paths at reward-batch sizes.

The grounding reward runs these once per rollout and reference object set, so a GRPO step of 512 rollouts
calls each of them ~512 times; this script shows what that costs on one core.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/geometry_speed.py \
        [--reps 512] [--size 448] [--points 20] [--masks 8]
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

from vgt_agent.geometry import (  # noqa: E402
    decode_rle,
    encode_rle,
    mask_iou_matrix,
    mask_to_point,
    masks_to_boxes,
    match_points_to_masks,
    points_in_masks,
    union_box_iou,
)

POOL = 8  # distinct inputs cycled through, so caches do not flatter the numbers


def random_masks(rng: np.random.Generator, m: int, size: int) -> np.ndarray:
    """Overlapping ellipses of varied sizes, like instance masks of everyday objects."""
    rr, cc = np.mgrid[:size, :size]
    masks = np.zeros((m, size, size), dtype=bool)
    for k in range(m):
        cy, cx = rng.uniform(0.1, 0.9, 2) * size
        ry, rx = rng.uniform(0.03, 0.25, 2) * size
        masks[k] = ((rr - cy) / ry) ** 2 + ((cc - cx) / rx) ** 2 <= 1
    return masks


def random_boxes(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    xy = np.sort(rng.uniform(0, size, (n, 2, 2)), axis=1)  # (n, [lo, hi], [x, y])
    return np.concatenate([xy[:, 0], xy[:, 1]], axis=1)


def time_calls(fn: Callable[[int], object], reps: int) -> float:
    fn(0)  # warm-up
    start = time.perf_counter()
    for i in range(reps):
        fn(i % POOL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=512)
    parser.add_argument("--size", type=int, default=448, help="mask height and width in pixels")
    parser.add_argument("--points", type=int, default=20, help="generated points / boxes per call")
    parser.add_argument("--masks", type=int, default=8, help="reference masks / boxes per call")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    masks = [random_masks(rng, args.masks, args.size) for _ in range(POOL)]
    preds = [random_masks(rng, args.masks, args.size) for _ in range(POOL)]
    points = []
    for ms in masks:
        on_object = np.array([mask_to_point(m) for m in ms], dtype=float) + 0.5
        extra = rng.uniform(0, args.size, (max(0, args.points - len(on_object)), 2))
        points.append(np.concatenate([on_object, extra])[: args.points])
    pred_boxes = [random_boxes(rng, args.points, args.size) for _ in range(POOL)]
    ref_boxes = [masks_to_boxes(ms) for ms in masks]
    rles = [encode_rle(ms[0]) for ms in masks]

    cases: list[tuple[str, str, Callable[[int], object]]] = [
        (
            "points_in_masks",
            f"{args.points} pts x {args.masks} masks",
            lambda i: points_in_masks(points[i], masks[i]),
        ),
        (
            "match_points_to_masks",
            f"{args.points} pts x {args.masks} masks",
            lambda i: match_points_to_masks(points[i], masks[i]),
        ),
        (
            "union_box_iou",
            f"{args.points} pred x {args.masks} ref boxes",
            lambda i: union_box_iou(pred_boxes[i], ref_boxes[i]),
        ),
        (
            "mask_iou_matrix",
            f"{args.masks} x {args.masks} masks",
            lambda i: mask_iou_matrix(preds[i], masks[i]),
        ),
        ("mask_to_point", "1 mask", lambda i: mask_to_point(masks[i][0])),
        ("masks_to_boxes", f"{args.masks} masks", lambda i: masks_to_boxes(masks[i])),
        ("encode_rle", "1 mask", lambda i: encode_rle(masks[i][0])),
        ("decode_rle", "1 mask", lambda i: decode_rle(rles[i])),
    ]

    table = Table(title=f"vgt geometry, {args.size}x{args.size} masks, {args.reps} calls, single thread")
    table.add_column("function")
    table.add_column("inputs per call")
    table.add_column(f"total for {args.reps} (ms)", justify="right")
    table.add_column("per call (µs)", justify="right")
    for name, shape, fn in cases:
        total = time_calls(fn, args.reps)
        table.add_row(name, shape, f"{1e3 * total:.1f}", f"{1e6 * total / args.reps:.1f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
