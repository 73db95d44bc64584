"""Single-process cost of a world sample per style: scene + question, rendering, file encoding.

`vgt world make` spends its time in these three steps; the varied style draws bigger images (256-1024 px),
textured backdrops, anti-aliased shapes and JPEG/PNG files, so this shows what each of them costs against the
canonical style on the same splits and indices.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/world_style_speed.py [--n 100] [--split world-train ...]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads its BLAS

import argparse  # noqa: E402
import time  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from vgt_agent.world.generate import make_question, object_record, resolve_split, sample_record  # noqa: E402
from vgt_agent.world.render import render  # noqa: E402
from vgt_agent.world.style import STYLES, encode_image  # noqa: E402


def time_style(split: str, style: str, n: int) -> dict[str, float]:
    """Mean milliseconds per sample of each step, samples/s overall, mean pixels and file bytes."""
    spec = resolve_split(split, style=style)
    steps = {"scene + question": 0.0, "render": 0.0, "encode": 0.0}
    pixels = size = 0
    for index in range(n):
        t0 = time.perf_counter()
        scene, question = make_question(spec, index)
        t1 = time.perf_counter()
        image, masks = render(scene)
        objects = [object_record(o, m) for o, m in zip(scene.objects, masks, strict=True)]
        row = sample_record(spec, index, scene, question, objects)
        t2 = time.perf_counter()
        look = row.get("style", {})
        data = encode_image(image, look.get("format", "png"), look.get("quality", 0))
        t3 = time.perf_counter()
        steps["scene + question"] += t1 - t0
        steps["render"] += t2 - t1
        steps["encode"] += t3 - t2
        pixels += scene.width * scene.height
        size += len(data)
    total = sum(steps.values())
    return {
        **{k: 1000 * v / n for k, v in steps.items()}, "samples/s": n / total,
        "megapixels": pixels / n / 1e6, "KB/file": size / n / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="samples per split and style")
    parser.add_argument("--split", nargs="+", default=["world-train", "world-tally", "world-multihop"])
    args = parser.parse_args()
    table = Table(title=f"world sample cost per style ({args.n} samples each, one process)")
    for column in ("split", "style", "scene + question ms", "render ms", "encode ms", "samples/s", "MP", "KB/file"):
        table.add_column(column, justify="left" if column in ("split", "style") else "right")
    for split in args.split:
        for style in STYLES:
            r = time_style(split, style, args.n)
            table.add_row(
                split, style, f"{r['scene + question']:.1f}", f"{r['render']:.1f}", f"{r['encode']:.1f}",
                f"{r['samples/s']:.1f}", f"{r['megapixels']:.2f}", f"{r['KB/file']:.0f}",
            )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
