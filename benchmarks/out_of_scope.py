"""Does `vgt ask` with the embedded models refuse what they cannot answer, and only that?

Runs the real command (in process, through typer's CliRunner, so exit codes and `--json` are the CLI's)
on inputs vgt did not make:
- photographs and scans from scikit-image (two views each: whole and a resized centre crop saved as JPEG)
  asked world questions ("How many red circles are there?"): the image is out of scope;
- varied world images asked about things the shapes world lacks ("How many cups are there?"): the question
  is out of scope;
- as a control, the in-scope questions of the varied held-out world splits: none should be refused.
A refusal counts only with exit 1, status `refused` and no answer; anything with a number or a word as its
answer is a miss. Synthetic flat images from scikit-image (checkerboard, binary blobs, the horse silhouette,
the phantom, the logo) are listed apart: they are flat shapes, so either outcome is defensible. Usage:

    OMP_NUM_THREADS=1 python benchmarks/out_of_scope.py [--model DIR] [--per-split 12] [--json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from vgt_agent.cli.main import app  # noqa: E402
from vgt_agent.world.storage import load_split, make_split  # noqa: E402

PHOTOS = ("astronaut", "camera", "coffee", "coins", "chelsea", "rocket", "page", "text", "moon",
          "immunohistochemistry", "hubble_deep_field", "retina", "brick", "grass", "gravel", "clock", "cell",
          "microaneurysms", "colorwheel")
FLAT = ("checkerboard", "binary_blobs", "horse", "shepp_logan_phantom", "logo")
WORLD_QUESTIONS = ("How many red circles are there?", "Is the blue square to the left of the green star?",
                   "What colour is the largest shape?")
OTHER_QUESTIONS = (
    "How many cups are there?", "how many coins are there?", "Is there a cat?", "What colour is the car?",
    "How many people are in the photo?", "Is the dog to the left of the tree?", "Count the apples.",
    "How many birds can you see?", "Is there a person in the image?", "What colour is the bus?",
    "How many windows are in the picture?", "Which is larger: the horse or the cow?", "Are there any bottles?",
    "How many chairs are there?", "Is the lamp above the table?", "What shape is the clock?",
    "How many red cars are there?", "Is the cup closer to the plate or the fork?", "How many faces?",
    "What is the man holding?", "Where is the ball relative to the goal?", "How many books are on the shelf?",
    "Is there a blue umbrella?", "How many trees?", "What colour is the sky?", "How many stars are in the sky?",
    "Is the sun above the mountain?", "How many wheels does the bike have?", "Count the people.",
    "What is written on the sign?", "How many letters are there?", "Is the cat asleep?",
    "How many keys are on the keyboard?", "What colour is her hat?", "How many coins are silver?",
    "Is the rocket to the right of the tower?", "How many cells are visible?", "Which fruit is red?",
    "How many spoons are there?", "Is there a dog?",
)
VARIED = ("world-tally-varied", "world-countqa-varied", "world-vsr-varied", "world-embspatial-varied",
          "world-spatialmqa-varied", "world-multihop-varied", "world-exist-varied", "world-attribute-varied",
          "world-phrased-varied")


def photo(name: str) -> Image.Image:
    import skimage.data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixels = getattr(skimage.data, name)()
    if pixels.dtype != np.uint8:
        pixels = (255 * (pixels.astype(np.float32) / max(1.0, float(pixels.max())))).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return Image.fromarray(pixels[..., :3])


def views(name: str, out: Path) -> list[Path]:
    """The photo as a PNG, and a centre crop resized to 448 px as a JPEG at quality 80."""
    image = photo(name)
    whole, crop = out / f"{name}.png", out / f"{name}-crop.jpg"
    image.save(whole)
    w, h = image.size
    image.crop((w // 6, h // 6, w - w // 6, h - h // 6)).resize((448, 448)).save(crop, quality=80)
    return [whole, crop]


def ask(runner: CliRunner, image: Path, question: str, model: list[str], db: Path) -> dict:
    result = runner.invoke(app, ["ask", str(image), question, "--json", "--db", str(db), *model])
    try:
        body = json.loads(result.stdout)
    except json.JSONDecodeError:
        body = {}
    return {"exit": result.exit_code, "status": body.get("status"), "answer": body.get("answer"),
            "correct": body.get("correct")}


def refused(r: dict) -> bool:
    return r["exit"] == 1 and r["status"] == "refused" and r["answer"] is None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a vgt-tiny directory (default: the shipped one)")
    ap.add_argument("--per-split", type=int, default=12, help="in-scope control questions per varied split")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    model = ["--backend", "transformers", "--model", args.model, "--grounder", "world"] if args.model else []
    runner = CliRunner()
    rows: dict[str, list[dict]] = {"photo": [], "flat synthetic": [], "other question": [], "in scope": []}
    with tempfile.TemporaryDirectory() as tmp:
        root, db = Path(tmp), Path(tmp) / "t.db"
        for group, names in (("photo", PHOTOS), ("flat synthetic", FLAT)):
            for name in names:
                for image in views(name, root):
                    rows[group] += [ask(runner, image, q, model, db) for q in WORLD_QUESTIONS]
        for split in VARIED:
            make_split(root / split, split, n=args.per_split)
        world = [s for split in VARIED for s in load_split(root / split)]
        for i, question in enumerate(OTHER_QUESTIONS):
            for sample in world[i % len(world):: len(world) // 3][:3]:
                rows["other question"].append(ask(runner, Path(sample.image_path), question, model, db))
        for sample in world:
            rows["in scope"].append(ask(runner, Path(sample.image_path), sample.question, model, db))
    report = {}
    for group, results in rows.items():
        report[group] = {"n": len(results), "refused": sum(map(refused, results)),
                         "statuses": dict(Counter(str(r["status"]) for r in results)),
                         "exits": dict(Counter(str(r["exit"]) for r in results))}
    report["in scope"]["correct"] = sum(bool(r["correct"]) for r in rows["in scope"])
    out_of_scope = [r for g in ("photo", "other question") for r in rows[g]]
    report["out-of-scope refusal rate"] = sum(map(refused, out_of_scope)) / len(out_of_scope)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"vgt ask on inputs it cannot answer ({args.model or 'shipped vgt-tiny'}, world grounder)")
    for col in ("inputs", "n", "refused (exit 1, no answer)", "statuses", "exit codes"):
        table.add_column(col)
    for group in rows:
        r = report[group]
        table.add_row(group, str(r["n"]), f"{r['refused']} ({r['refused'] / max(1, r['n']):.0%})",
                      ", ".join(f"{k} {v}" for k, v in r["statuses"].items()),
                      ", ".join(f"{k}: {v}" for k, v in r["exits"].items()))
    console = Console()
    console.print(table)
    console.print(f"out of scope (photos + other questions) refused: {report['out-of-scope refusal rate']:.1%}; "
                  f"in-scope control correct: {report['in scope']['correct']}/{report['in scope']['n']}")


if __name__ == "__main__":
    main()
