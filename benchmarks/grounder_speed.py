"""WorldGrounder.segment against the labelling floor, per world split and style.

The floor is what any segmenter of these images must at least do: one mask per named colour, then
scikit-image's `label` + `regionprops` (area, box, centroid read) per colour. Both run on the same decoded
images, each with a fresh grounder (no cache), image by image in turn, so each split's ratio is against the
floor measured in the same run under the same load; times are medians over the images (each image's time
the best of 3), in one process. The target (issue 22) is `segment` within `--target` (2x) of the floor on
every split; the table says per split whether it is met, and the last line whether it is met on all. Usage:

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/grounder_speed.py [--n 30] [--split NAME ...] [--target 2]
        [--json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads its BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from skimage.measure import label, regionprops  # noqa: E402

from vgt_agent.grounders.world import WorldGrounder  # noqa: E402
from vgt_agent.world.colours import NAMES, name_pixels  # noqa: E402
from vgt_agent.world.storage import load_split, make_split  # noqa: E402

DEFAULT_SPLITS = ("world-tally", "world-countqa", "world-vsr", "world-tally-varied", "world-countqa-varied",
                  "world-vsr-varied")


def floor(rgb: np.ndarray) -> int:
    """Label each named colour's mask and read every region's area, box and centroid: the work no grounder
    of these images can skip. Returns the number of regions (so nothing is optimised away)."""
    names = name_pixels(rgb)
    regions = 0
    for index in range(len(NAMES)):
        mask = names == index
        if not mask.any():
            continue
        for prop in regionprops(label(mask, connectivity=2)):
            _ = prop.area, prop.bbox, prop.centroid
            regions += 1
    return regions


def _median_ms(fn, arg, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def measure(folder: Path, target: float = 2.0) -> dict[str, float]:
    """Median per-image ms of the floor and of a cold `segment`, their ratio, and whether it is within
    `target`."""
    floors, segments, sides = [], [], []
    for sample in load_split(folder):
        image = sample.load_image().convert("RGB")
        rgb = np.asarray(image)
        floors.append(_median_ms(floor, rgb))
        segments.append(_median_ms(lambda im: WorldGrounder().segment(im), image))
        sides.append(max(image.size))
    f, s = statistics.median(floors), statistics.median(segments)
    return {"images": len(floors), "median_side": statistics.median(sides), "floor_ms": f, "segment_ms": s,
            "ratio": s / f, "segment_ms_mean": statistics.fmean(segments), "target": target,
            "target_met": s / f <= target}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30, help="images per split")
    parser.add_argument("--split", action="append", help=f"split(s); default {', '.join(DEFAULT_SPLITS)}")
    parser.add_argument("--target", type=float, default=2.0, help="the ratio to the floor to stay within")
    parser.add_argument("--json", action="store_true", help="print rows as JSON instead of a table")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for split in args.split or DEFAULT_SPLITS:
            make_split(Path(tmp) / split, split, n=args.n)
            rows.append({"split": split, **measure(Path(tmp) / split, args.target)})
    missed = [r["split"] for r in rows if not r["target_met"]]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"WorldGrounder.segment vs the labelling floor (median ms per image, {args.n} images)")
    target = f"<= {args.target:g}x"
    for column in ("split", "images", "median px", "floor ms", "segment ms", "ratio", target, "mean segment ms"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for r in rows:
        table.add_row(r["split"], str(r["images"]), f"{r['median_side']:.0f}", f"{r['floor_ms']:.1f}",
                      f"{r['segment_ms']:.1f}", f"{r['ratio']:.2f}x", "met" if r["target_met"] else "missed",
                      f"{r['segment_ms_mean']:.1f}")
    console = Console(width=130)
    console.print(table)
    if missed:
        console.print(f"target {target} of the floor: missed on {len(missed)} of {len(rows)} splits "
                      f"({', '.join(missed)})")
    else:
        console.print(f"target {target} of the floor: met on all {len(rows)} splits")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
