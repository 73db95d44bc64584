"""vgt ask on shapes scenes vgt did not draw: accuracy per question kind, off the world's own generator.

Scenes come from `tests/flat_shapes.py` (plain Pillow, other shades, sizes, rotations, backgrounds, JPEG);
questions are written here from each scene's gold objects, in words close to the world's families:
counts ("How many blue squares are there?", "How many circles?", "How many green shapes are there?",
"How many shapes are there?"), existence ("Is there a red star?"), left/right/above/below between two
objects of a kind that occurs once, far apart on the asked axis, and attributes of a kind that occurs once
("What colour is the hexagon?", "What shape is the purple object?"). Each is asked through the real command
(`vgt ask ... --json`, in process); a question counts as right only with exit 0 and the gold answer. Usage:

    OMP_NUM_THREADS=1 python benchmarks/independent_scenes.py [--model DIR] [--scenes 40] [--seed 7] [--json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from vgt_agent.cli.main import app  # noqa: E402
from vgt_agent.world.refer import plural  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from flat_shapes import SHADES, SHAPES, Drawn, draw_scene  # noqa: E402

CLEAR = 2.0  # the asked axis carries at least twice the other axis's offset ...
GAP = 0.15  # ... and at least this share of the image's shorter side


def centre(d: Drawn) -> tuple[float, float]:
    ys, xs = np.nonzero(d.mask)
    return float(xs.mean()), float(ys.mean())


def questions(rng: np.random.Generator, drawn: list[Drawn], side: int) -> list[tuple[str, str, str]]:
    """(kind, question, gold) for one scene."""
    kinds = Counter((d.colour, d.shape) for d in drawn)
    out: list[tuple[str, str, str]] = []
    colour, shape = str(rng.choice(list(SHADES))), str(rng.choice(SHAPES))
    if rng.random() < 0.6 and drawn:  # mostly a kind that is there
        d = drawn[int(rng.integers(len(drawn)))]
        colour, shape = d.colour, d.shape
    out.append(("count", f"How many {colour} {plural(shape)} are there?", str(kinds[(colour, shape)])))
    pick = [(f"How many {plural(shape)} are there?", sum(d.shape == shape for d in drawn)),
            (f"How many {colour} shapes are there?", sum(d.colour == colour for d in drawn)),
            ("How many shapes are there?", len(drawn))][int(rng.integers(3))]
    out.append(("count any", pick[0], str(pick[1])))
    e_colour, e_shape = str(rng.choice(list(SHADES))), str(rng.choice(SHAPES))
    out.append(("exist", f"Is there a {e_colour} {e_shape}?", "yes" if kinds[(e_colour, e_shape)] else "no"))
    unique = [d for d in drawn if kinds[(d.colour, d.shape)] == 1]
    pairs = [(a, b, axis) for a in unique for b in unique if a is not b for axis in (0, 1)
             if abs(centre(a)[axis] - centre(b)[axis]) >= max(CLEAR * abs(centre(a)[1 - axis] - centre(b)[1 - axis]),
                                                             GAP * side)]
    if pairs:
        a, b, axis = pairs[int(rng.integers(len(pairs)))]
        word = str(rng.choice(("left", "right") if axis == 0 else ("above", "below")))
        truth = ("left" if centre(a)[0] < centre(b)[0] else "right") if axis == 0 else \
            ("above" if centre(a)[1] < centre(b)[1] else "below")
        said = {"left": "to the left of", "right": "to the right of"}.get(word, word)
        out.append(("relation", f"Is the {a.colour} {a.shape} {said} the {b.colour} {b.shape}?",
                    "yes" if truth == word else "no"))
    shapes, colours = Counter(d.shape for d in drawn), Counter(d.colour for d in drawn)
    by_shape = [d for d in drawn if shapes[d.shape] == 1]
    by_colour = [d for d in drawn if colours[d.colour] == 1]
    if by_shape and (not by_colour or rng.random() < 0.5):
        d = by_shape[int(rng.integers(len(by_shape)))]
        out.append(("attribute", f"What colour is the {d.shape}?", d.colour))
    elif by_colour:
        d = by_colour[int(rng.integers(len(by_colour)))]
        out.append(("attribute", f"What shape is the {d.colour} object?", d.shape))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a vgt-tiny directory (default: the shipped one)")
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    model = ["--backend", "transformers", "--model", args.model, "--grounder", "world"] if args.model else []
    rng = np.random.default_rng(args.seed)
    runner = CliRunner()
    results: dict[str, list[bool]] = defaultdict(list)
    statuses: Counter[str] = Counter()
    misses = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.scenes):
            image, drawn = draw_scene(rng)
            path = Path(tmp) / f"scene{i}.png"
            image.save(path)
            for kind, question, gold in questions(rng, drawn, min(image.size)):
                answer_type = {"exist": "yes_no", "relation": "yes_no", "attribute": "text"}.get(kind, "count")
                run = runner.invoke(app, ["ask", str(path), question, "--gold", gold, "--answer-type", answer_type,
                                          "--json", "--db", str(Path(tmp) / "t.db"), *model])
                try:
                    body = json.loads(run.stdout)
                except json.JSONDecodeError:
                    body = {"status": f"exit {run.exit_code}", "answer": None}
                right = run.exit_code == 0 and str(body.get("answer")).strip().lower() == gold
                results[kind].append(right)
                statuses[str(body.get("status"))] += 1
                if not right:
                    misses.append({"scene": i, "question": question, "gold": gold, "answer": body.get("answer"),
                                   "status": body.get("status")})
    report = {"model": args.model or "shipped vgt-tiny", "scenes": args.scenes,
              "by_kind": {k: {"n": len(v), "correct": sum(v)} for k, v in results.items()},
              "correct": sum(sum(v) for v in results.values()), "n": sum(len(v) for v in results.values()),
              "statuses": dict(statuses), "misses": misses}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"vgt ask on scenes from another generator ({report['model']}, world grounder)")
    for col in ("question kind", "n", "correct"):
        table.add_column(col, justify="right" if col != "question kind" else "left")
    for kind, r in report["by_kind"].items():
        table.add_row(kind, str(r["n"]), f"{r['correct']} ({r['correct'] / max(1, r['n']):.0%})")
    table.add_row("all", str(report["n"]), f"{report['correct']} ({report['correct'] / max(1, report['n']):.0%})")
    console = Console()
    console.print(table)
    console.print("statuses: " + ", ".join(f"{k} {v}" for k, v in statuses.items()), markup=False)


if __name__ == "__main__":
    main()
