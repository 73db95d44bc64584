"""A split on disk: `images/NNNNNN.png` (or `.jpg` in the varied style), `metadata.jsonl` and `info.json`
(an HF imagefolder; info.json records the style).

The folder is built in a hidden temp dir next to the target and renamed into place at the end, so an
interrupted run never leaves a folder that looks complete; `load_split` reads it back without `datasets`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vgt_agent.sample import GoldObject, Sample
from vgt_agent.world.generate import GENERATOR_VERSION, make_sample, resolve_split
from vgt_agent.world.splits import SplitSpec
from vgt_agent.world.style import SIDE_RANGE, encode_image

INFO = "info.json"
METADATA = "metadata.jsonl"
Progress = Callable[[int, int], None]


def is_split_dir(path: Path) -> bool:
    """Whether `path` holds a complete split written by `make_split`."""
    return (path / INFO).is_file() and (path / METADATA).is_file()


def check_target(out: Path) -> None:
    """Refuse to replace anything that is not an earlier split or an empty folder."""
    if out.exists() and not (out.is_dir() and (is_split_dir(out) or not any(out.iterdir()))):
        raise FileExistsError(f"{out} exists and is not a world split folder; not overwriting it")


def _write_samples(job: tuple[SplitSpec, int, int, int, str]) -> list[str]:
    """Render samples [start, stop) under the split folder; their metadata lines, in index order (a worker's job)."""
    spec, seed, start, stop, folder = job
    lines = []
    for index in range(start, stop):
        image, record = make_sample(spec, index, seed=seed)
        look = record.get("style", {})
        data = encode_image(image, look.get("format", "png"), look.get("quality", 0))
        (Path(folder) / record["file_name"]).write_bytes(data)
        lines.append(json.dumps(record, separators=(",", ":")) + "\n")
    return lines


def _rendered(spec: SplitSpec, seed: int, n: int, folder: Path, workers: int) -> Iterator[list[str]]:
    """Render samples 0..n-1 under `folder` (images/...), chunk by chunk; yields their metadata lines in index order."""
    if workers <= 1 or n < 64:
        yield from (_write_samples((spec, seed, i, i + 1, str(folder))) for i in range(n))
        return
    size = max(16, min(256, n // (workers * 8)))
    jobs = [(spec, seed, a, min(n, a + size), str(folder)) for a in range(0, n, size)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:  # leaving the block terminates it
        yield from pool.imap(_write_samples, jobs)


def make_split(
    out_dir: str | os.PathLike,
    split: str | SplitSpec,
    n: int | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
    width: int | None = None,
    height: int | None = None,
    workers: int = 1,
    style: str | None = None,
) -> dict[str, Any]:
    """Write `n` samples of a split to `out_dir` (replacing an earlier split there); returns info.json.
    `style` (canonical | varied) defaults to the split's own.

    `workers` > 1 renders chunks of samples in that many processes: the same files, byte for byte (each
    sample depends only on its split, seed and index), ~`workers` times faster on idle cores.
    Raises KeyError for an unknown split name, ValueError for n < 1 or an unknown style, FileExistsError when
    `out_dir` is something other than a split folder.
    """
    spec = resolve_split(split, width, height, style)
    n = spec.n if n is None else n
    seed = spec.seed if seed is None else seed
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = Path(out_dir)
    check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        with open(tmp / METADATA, "w", encoding="utf-8") as meta:
            written = 0
            for lines in _rendered(spec, seed, n, tmp, workers):
                meta.writelines(lines)
                written += len(lines)
                if progress is not None:
                    progress(written, n)
        info = {
            "split": spec.name, "n": n, "seed": seed, "width": spec.width, "height": spec.height,
            "generator_version": GENERATOR_VERSION, "families": list(spec.families), "style": spec.style,
        }
        if spec.style == "varied" and not spec.fixed_size:  # each sample's size is drawn: see its row
            info |= {"width": None, "height": None, "side_range": list(SIDE_RANGE)}
        (tmp / INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        check_target(out)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            out.rename(old / "split")
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def read_info(split_dir: str | os.PathLike) -> dict[str, Any]:
    """info.json of a split folder; FileNotFoundError names the folder when it is not one."""
    path = Path(split_dir)
    if not is_split_dir(path):
        raise FileNotFoundError(f"{path} is not a world split folder (no {INFO} / {METADATA})")
    return json.loads((path / INFO).read_text(encoding="utf-8"))


def read_rows(split_dir: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The metadata rows, in index order."""
    read_info(split_dir)
    with open(Path(split_dir) / METADATA, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def row_to_sample(row: dict[str, Any], split_dir: str | os.PathLike) -> Sample:
    """One metadata row as a Sample; gold objects keep their mask, box, role and point."""
    gold = tuple(
        GoldObject(
            name=g["name"], rle=g["rle"], box=tuple(float(v) for v in g["box"]), role=g["role"],
            meta={"object_id": g["object_id"], "point": tuple(g["point"])},
        )
        for g in row["gold_objects"]
    )
    return Sample(
        id=row["id"],
        dataset="world",
        split=row["split"],
        question=row["question"],
        answer=row["answer"],
        answer_type=row["answer_type"],
        image_path=str(Path(split_dir) / row["file_name"]),
        choices=tuple(row["choices"]),
        gold_objects=gold,
        meta={
            "family": row["family"], "objects": row["objects"], "index": row["index"],
            "width": row["width"], "height": row["height"],
        },
    )


def load_split(split_dir: str | os.PathLike) -> Iterator[Sample]:
    """The samples of a split folder, without `datasets` (fast path for eval and synthesis)."""
    for row in read_rows(split_dir):
        yield row_to_sample(row, split_dir)
