"""`vgt world`: make the embedded world's splits and look at single samples."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vgt_agent.cli.common import console, err_console, print_json, usage_error, work_failed
from vgt_agent.terminal import safe_text
from vgt_agent.vocabulary import WorldStyle

if TYPE_CHECKING:  # the world's generator and the drawing modules load in the commands that use them
    from vgt_agent.draw import Mark

app = typer.Typer(
    rich_markup_mode=None,  # click's plain help, as the root app (cli/main.py)
    help="The embedded shapes world: make splits, show samples.", no_args_is_help=True)


def _summary(out: Path, info: dict[str, Any], seconds: float) -> dict[str, Any]:
    from vgt_agent.world.storage import read_rows

    families: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    files: Counter[str] = Counter()
    for row in read_rows(out):
        families[row["family"]] += 1
        answers[row["answer"]] += 1
        files[row["file_name"].rsplit(".", 1)[-1]] += 1
    return {
        "out": str(out), "split": info["split"], "n": info["n"], "seed": info["seed"], "style": info["style"],
        "width": info["width"], "height": info["height"], "seconds": round(seconds, 2),
        "samples_per_second": round(info["n"] / max(seconds, 1e-9), 1),
        "files": dict(sorted(files.items())),
        "families": dict(sorted(families.items())),
        "answers": dict(sorted(answers.items(), key=lambda kv: (not kv[0].isdigit(), kv[0].zfill(4)))),
    }


@app.command()
def make(
    out: Path = typer.Option(..., "--out", help="Folder to write (replaced if it holds an earlier split)."),
    split: str = typer.Option(..., "--split", help="Split name, see `vgt world splits`."),
    n: int | None = typer.Option(None, "--n", help="Number of samples (default: the split's)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (default: the split's own)."),
    size: int | None = typer.Option(
        None, "--size", help="Square image side in pixels (default 448; varied style: drawn per sample, 256-1024).",
    ),
    style: WorldStyle | None = typer.Option(
        None, "--style", help="How scenes are drawn (default: the split's own, see `vgt world splits`).",
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes rendering samples (same output)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Generate a split as an imagefolder: images/, metadata.jsonl, info.json."""
    from vgt_agent.world.splits import SPLITS
    from vgt_agent.world.storage import check_target, make_split

    if split not in SPLITS:
        usage_error(f"unknown split {split!r}; known splits: {', '.join(SPLITS)}")
    if n is not None and n < 1:
        usage_error(f"--n must be >= 1, got {n}")
    if seed is not None and seed < 0:
        usage_error(f"--seed must be >= 0, got {seed}")
    if size is not None and size < 64:
        usage_error(f"--size must be >= 64, got {size}")
    try:
        check_target(out)
    except FileExistsError as e:
        usage_error(str(e))
    start = time.perf_counter()
    try:
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=err_console, transient=True, disable=as_json,
        ) as bar:
            task = bar.add_task(split, total=n or SPLITS[split].n)
            info = make_split(
                out, split, n=n, seed=seed, width=size, height=size, workers=workers, style=style,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except FileExistsError as e:
        usage_error(str(e))
    except (OSError, RuntimeError) as e:
        work_failed(f"could not make {split}: {e}")
    summary = _summary(out, info, time.perf_counter() - start)
    if as_json:
        print_json(summary)
        return
    console.print(
        f"[bold green]wrote[/] {summary['n']} samples of [bold]{safe_text(split)}[/] ({summary['style']} style) "
        f"to {safe_text(out)} "
        f"({summary['seconds']} s, {summary['samples_per_second']} samples/s)"
    )
    table = Table("family", "n", title="families")
    for family, count in summary["families"].items():
        table.add_row(family, str(count))
    console.print(table)
    answers = ", ".join(f"{a}: {c}" for a, c in summary["answers"].items())
    console.print(f"answers: {answers}", markup=False)
    console.print("files: " + ", ".join(f"{c} {ext}" for ext, c in summary["files"].items()), markup=False)


@app.command()
def splits(as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON.")) -> None:
    """List the named splits."""
    from vgt_agent.world.splits import SPLITS
    from vgt_agent.world.style import SIDE_RANGE

    rows = [
        {
            "name": s.name, "families": list(s.families), "n": s.n, "seed": s.seed,
            "objects": [s.min_objects, s.max_objects], "occlusion": s.occlusion, "texture": s.texture,
            "distractors": s.distractors, "style": s.style,
            # a varied split draws each sample's width and height within side_range
            "size": [s.width, s.height] if s.style == "canonical" else None,
            "side_range": [min(s.width, s.height), max(s.width, s.height)] if s.style == "canonical"
            else list(SIDE_RANGE),
            "description": s.description,
        }
        for s in SPLITS.values()
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title="world splits")
    table.add_column("split", no_wrap=True)  # names are what people type: never cut
    table.add_column("style", no_wrap=True)
    for name in ("families", "n", "seed", "objects", "occl.", "description"):
        table.add_column(name)
    for r in rows:
        table.add_row(
            r["name"], r["style"], ", ".join(r["families"]), str(r["n"]), str(r["seed"]),
            f"{r['objects'][0]}-{r['objects'][1]}", f"{r['occlusion']:.1f}", r["description"],
        )
    console.print(table)


def _row(split_dir: Path, index: int) -> dict[str, Any]:
    from vgt_agent.world.storage import read_info, read_rows

    try:
        info = read_info(split_dir)
    except (FileNotFoundError, ValueError) as e:
        usage_error(str(e))
    if not 0 <= index < info["n"]:
        usage_error(f"index {index} out of range: {split_dir} has {info['n']} samples (0..{info['n'] - 1})")
    for row in read_rows(split_dir):
        if row["index"] == index:
            return row
    work_failed(f"sample {index} missing from {split_dir}/metadata.jsonl")


def _marks(row: dict[str, Any]) -> list[Mark]:
    from vgt_agent.draw import Mark

    return [
        Mark(label=f"{g['role']}: {g['name']}", points=[(g["point"][0] + 0.5, g["point"][1] + 0.5)],
             boxes=[tuple(float(v) for v in g["box"])])  # type: ignore[list-item]
        for g in row["gold_objects"]
    ]


@app.command()
def show(
    split_dir: Path = typer.Argument(..., help="A split folder made by `vgt world make`."),
    index: int = typer.Argument(..., help="Sample index."),
    png: Path | None = typer.Option(None, "--png", help="Write the image with gold boxes/points here."),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata row as JSON."),
) -> None:
    """Show one sample: question, answer, gold objects and the scene graph."""
    row = _row(split_dir, index)
    if png is not None:
        from PIL import Image

        from vgt_agent.draw import annotate

        try:
            with Image.open(split_dir / row["file_name"]) as im:
                annotate(im, _marks(row)).save(png)
        except OSError as e:
            work_failed(f"could not write {png}: {e}")
    if as_json:
        print_json(row | ({"png": str(png)} if png is not None else {}))
        return
    choices = "  ".join(f"{chr(65 + i)}. {c}" for i, c in enumerate(row["choices"]))
    body = f"[bold]{safe_text(row['question'])}[/]\n" + (f"{safe_text(choices)}\n" if choices else "")
    body += (f"answer: [bold green]{safe_text(row['answer'])}[/] "
             f"({safe_text(row['answer_type'])}, family {safe_text(row['family'])})")
    look = row.get("style")
    subtitle = f"{row['width']}x{row['height']}"
    if look is not None:
        quality = f" q{look['quality']}" if look["format"] == "jpeg" else ""
        edges = "anti-aliased" if look["antialias"] else "hard edges"
        subtitle += f", varied: {look['format']}{quality}, {edges}, {look['background']} background"
    console.print(Panel(body, title=safe_text(row["id"]), subtitle=safe_text(subtitle)))
    gold = Table("role", "name", "object", "box", "point", title="gold objects")
    for g in row["gold_objects"]:
        gold.add_row(*(safe_text(g[k]) for k in ("role", "name", "object_id", "box", "point")))
    console.print(gold)
    shaded = look is not None
    columns = ("id", "size", "colour", *(("shade",) if shaded else ()), "shape", "center", "box", "visible")
    objects = Table(*columns, title="scene objects")
    for o in row["objects"]:
        shade = (f"#{o['rgb'][0]:02x}{o['rgb'][1]:02x}{o['rgb'][2]:02x}",) if shaded else ()
        objects.add_row(
            *(safe_text(o[k]) for k in ("id", "size", "colour")), *shade, safe_text(o["shape"]),
            f"({o['center'][0]:.0f}, {o['center'][1]:.0f})", safe_text(o["box"]), f"{o['visible_fraction']:.0%}",
        )
    console.print(objects)
    if png is not None:
        console.print(f"annotated image: {safe_text(png)}")
