"""Whether a change to the WorldGrounder changed what it finds: dump `segment`'s output on the images of
`grounder_accuracy.py --n 40 --independent 100` and `grounder_speed.py --n 20`, at two commits, and compare.

Every region's colour, shape, size, score, box, area, point and mask (hashed), and every fit's shape, centre,
tilt, radius and cost, as exact values: a speed change meant to keep the outputs must compare equal. Run the
dump in a checkout of each commit (the images come from the world generator of that checkout, so keep it
unchanged between the two). Usage:

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/grounder_outputs.py dump OUT.pkl [--n 40] [--speed-n 20]
        [--independent 100]
    python benchmarks/grounder_outputs.py compare BEFORE.pkl AFTER.pkl [--verbose]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads its BLAS

import argparse  # noqa: E402
import hashlib  # noqa: E402
import pickle  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from vgt_agent.grounders.world import Region, WorldGrounder  # noqa: E402
from vgt_agent.world.splits import SPLITS  # noqa: E402
from vgt_agent.world.storage import load_split, make_split  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from flat_shapes import draw_scene  # noqa: E402

SPEED_SPLITS = ("world-tally", "world-countqa", "world-vsr", "world-tally-varied", "world-countqa-varied",
                "world-vsr-varied")


def images(n: int, speed_n: int, independent: int) -> Iterator[tuple[str, Image.Image]]:
    """(name, image) of every split's first `n` images, the speed splits' first `speed_n`, and `independent`
    scenes of the independent generator (seed 0, as grounder_accuracy.py draws them)."""
    with tempfile.TemporaryDirectory() as tmp:
        for group, splits, count in (("accuracy", list(SPLITS), n), ("speed", SPEED_SPLITS, speed_n)):
            for split in splits if count else ():
                folder = Path(tmp) / group / split
                make_split(folder, split, n=count)
                for i, sample in enumerate(load_split(folder)):
                    yield f"{group}/{split}/{i}", sample.load_image()
    rng = np.random.default_rng(0)
    for i in range(independent):
        yield f"independent/{i}", draw_scene(rng)[0]


def describe(region: Region) -> tuple:
    """A region's outputs as exact, comparable values."""
    mask = hashlib.sha256(np.packbits(region.mask).tobytes()).hexdigest()
    fits = tuple((f.shape, f.center, f.tilt, f.radius, f.cost) for f in region.fits)
    return (region.colour, region.shape, region.size, region.score, region.box, region.area, region.point, mask,
            fits)


def compare(before: dict[str, list[tuple]], after: dict[str, list[tuple]], verbose: bool = False) -> int:
    """Print how many regions differ, in what; returns the number of regions whose outputs (not only fit
    details) differ, or -1 when the images or region counts differ."""
    if before.keys() != after.keys():
        print("the dumps hold different images")
        return -1
    counts = {"regions": 0, "outputs": 0, "score": 0, "fits only": 0}
    for key, (old, new) in ((k, (before[k], after[k])) for k in before):
        if len(old) != len(new):
            print(f"{key}: {len(old)} regions before, {len(new)} after")
            return -1
        for a, b in zip(old, new, strict=True):
            counts["regions"] += 1
            if a[:3] + a[4:8] != b[:3] + b[4:8]:
                counts["outputs"] += 1
                print(f"{key}: {a[:8]} -> {b[:8]}")
            elif a[3] != b[3]:
                counts["score"] += 1
                print(f"{key}: score {a[3]} -> {b[3]} ({a[1]})")
            elif a[8] != b[8]:
                counts["fits only"] += 1
                if verbose:
                    print(f"{key}: fits {a[8][:2]} -> {b[8][:2]}")
    print(f"{len(before)} images, " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts["outputs"] + counts["score"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    dump = sub.add_parser("dump", help="segment every image and save the outputs")
    dump.add_argument("out", type=Path)
    dump.add_argument("--n", type=int, default=40, help="images per split (as grounder_accuracy.py --n)")
    dump.add_argument("--speed-n", type=int, default=20, help="images per speed split (as grounder_speed.py --n)")
    dump.add_argument("--independent", type=int, default=100, help="independent scenes")
    check = sub.add_parser("compare", help="compare two dumps")
    check.add_argument("before", type=Path)
    check.add_argument("after", type=Path)
    check.add_argument("--verbose", action="store_true", help="also list regions whose fit details differ")
    args = parser.parse_args(argv)
    if args.command == "dump":
        out = {key: [describe(r) for r in WorldGrounder().segment(image)]
               for key, image in images(args.n, args.speed_n, args.independent)}
        args.out.write_bytes(pickle.dumps(out))
        print(f"{len(out)} images, {sum(map(len, out.values()))} regions -> {args.out}")
        return 0
    loaded = [pickle.loads(path.read_bytes()) for path in (args.before, args.after)]
    return 1 if compare(*loaded, verbose=args.verbose) else 0


if __name__ == "__main__":
    raise SystemExit(main())
