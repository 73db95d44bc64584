"""How well the WorldGrounder recovers the gold objects of every world split, in both styles, and of scenes
drawn by an independent generator (`tests/flat_shapes.py`: other shades, sizes, backgrounds, JPEG).

For each scene object it asks "<colour> <shape>" and "<colour> shapes" (each distinct query once per
image) and matches the returned instances to the gold instances of that query one-to-one at mask
IoU >= 0.9. Recall and precision are pooled over all queries; shape and size accuracy are per gold object
(of its best-overlapping region; the independent scenes have no size classes). Usage:

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/grounder_accuracy.py \
        [--n 100] [--split NAME ...] [--independent N] [--size PX] [--json] [--out DIR]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads its BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, fields  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from vgt_agent import geometry  # noqa: E402
from vgt_agent.grounders.world import WorldGrounder  # noqa: E402
from vgt_agent.sample import Sample  # noqa: E402
from vgt_agent.world.splits import SPLITS  # noqa: E402
from vgt_agent.world.storage import load_split, make_split  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from flat_shapes import draw_scene  # noqa: E402

IOU = 0.9


@dataclass
class Tally:
    """Counts pooled over one split."""

    split: str
    style: str = ""
    images: int = 0
    objects: int = 0
    gold: int = 0  # gold instances over all queries
    predicted: int = 0
    matched: int = 0
    iou_sum: float = 0.0
    shape_ok: int = 0
    size_ok: int = 0
    seconds: float = 0.0

    def row(self) -> dict[str, float | int | str | None]:
        return {
            "split": self.split,
            "style": self.style,
            "images": self.images,
            "objects": self.objects,
            "recall": self.matched / max(1, self.gold),
            "precision": self.matched / max(1, self.predicted),
            "mean_iou": self.iou_sum / max(1, self.matched),
            "shape_acc": self.shape_ok / max(1, self.objects),
            "size_acc": self.size_ok / max(1, self.objects) if self.style != "independent" else None,
            "ms_per_image": 1000 * self.seconds / max(1, self.images),
        }


def _match(gold: list[np.ndarray], pred: list[np.ndarray]) -> list[float]:
    """IoUs of a maximum one-to-one matching, keeping pairs at IoU >= 0.9."""
    if not gold or not pred:
        return []
    iou = geometry.mask_iou_matrix(np.stack(gold), np.stack(pred))
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return [float(iou[r, c]) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= IOU]


def score_sample(grounder: WorldGrounder, sample: Sample, tally: Tally) -> None:
    """Add one world image's queries and per-object attribute checks to the tally."""
    objects = sample.meta["objects"]
    score_image(grounder, sample.load_image(), objects, [geometry.decode_rle(o["rle"]) for o in objects], tally)


def score_image(grounder: WorldGrounder, image, objects: list[dict], masks: list[np.ndarray], tally: Tally) -> None:
    """Add one image's queries and per-object attribute checks (`objects` carry colour, shape and maybe
    size) to the tally."""
    start = time.perf_counter()
    regions = grounder.segment(image)
    kinds = [f"{o['colour']} {o['shape']}" for o in objects] + [f"{o['colour']} shapes" for o in objects]
    queries = dict.fromkeys(kinds)  # each distinct query once, in scene order
    results = {q: grounder.ground(image, q) for q in queries}
    tally.seconds += time.perf_counter() - start
    tally.images += 1
    tally.objects += len(objects)
    for query, result in results.items():
        colour, kind = query.split()
        wanted = [o["colour"] == colour and kind in ("shapes", o["shape"]) for o in objects]
        gold = [m for m, w in zip(masks, wanted, strict=True) if w]
        ious = _match(gold, [i.mask for i in result])
        tally.gold += len(gold)
        tally.predicted += len(result)
        tally.matched += len(ious)
        tally.iou_sum += sum(ious)
    if regions:
        overlap = geometry.mask_iou_matrix(np.stack(masks), np.stack([r.mask for r in regions]))
        for o, row in zip(objects, overlap, strict=True):
            best = regions[int(row.argmax())]
            if row.max() >= IOU:
                tally.shape_ok += best.shape == o["shape"]
                tally.size_ok += best.size == o.get("size")


def run(splits: list[str], n: int, out: Path | None, size: int | None = None) -> list[Tally]:
    tallies = []
    with tempfile.TemporaryDirectory() as tmp:
        root = out or Path(tmp)
        for split in splits:
            folder = root / split
            make_split(folder, split, n=n, width=size, height=size)
            grounder = WorldGrounder()
            tally = Tally(split, SPLITS[split].style)
            for sample in load_split(folder):
                score_sample(grounder, sample, tally)
            tallies.append(tally)
    return tallies


def run_independent(n: int, seed: int = 0) -> Tally:
    """The same scoring on `n` scenes of the independent generator."""
    rng = np.random.default_rng(seed)
    grounder = WorldGrounder()
    tally = Tally("flat-shapes (independent)", "independent")
    for _ in range(n):
        image, drawn = draw_scene(rng)
        objects = [{"colour": d.colour, "shape": d.shape} for d in drawn]
        score_image(grounder, image, objects, [d.mask for d in drawn], tally)
    return tally


def pooled(name: str, tallies: list[Tally]) -> Tally:
    total = Tally(name, tallies[0].style if tallies else "")
    for t in tallies:
        for f in fields(Tally):
            if f.name not in ("split", "style"):
                setattr(total, f.name, getattr(total, f.name) + getattr(t, f.name))
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="images per split")
    parser.add_argument("--split", action="append", choices=list(SPLITS), help="split(s); default all")
    parser.add_argument("--out", type=Path, help="keep the generated splits here (default: a temp dir)")
    parser.add_argument("--independent", type=int, default=100, help="scenes of the independent generator (0: none)")
    parser.add_argument("--size", type=int, help="image side in pixels (default: the split's)")
    parser.add_argument("--json", action="store_true", help="print rows as JSON instead of a table")
    args = parser.parse_args(argv)
    tallies = run(args.split or list(SPLITS), args.n, args.out, args.size)
    if args.independent:
        tallies.append(run_independent(args.independent))
    totals = [pooled(f"all {style}", [t for t in tallies if t.style == style])
              for style in ("canonical", "varied", "independent") if any(t.style == style for t in tallies)]
    rows = [t.row() for t in [*tallies, *totals]]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    side = f", {args.size}px" if args.size else ""
    table = Table(title=f"WorldGrounder vs gold (IoU >= {IOU}, {args.n} images per split{side})")
    for column in rows[0]:
        table.add_column(column, justify="left" if column in ("split", "style") else "right")
    for i, r in enumerate(rows):
        cells = [f"{v:.4f}" if isinstance(v, float) else "-" if v is None else str(v) for v in r.values()]
        cells[-1] = f"{r['ms_per_image']:.0f}"
        table.add_row(*cells, end_section=i == len(rows) - len(totals) - 1)
    Console(width=150).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
