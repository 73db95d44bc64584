"""A split on disk: `images/NNNNNN.png`, `metadata.jsonl` and `info.json` (an HF imagefolder).

The folder is built in a hidden temp dir next to the target and renamed into place at the end, so an
interrupted run never leaves a folder that looks complete; `load_split` reads it back without `datasets`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vgt_agent.datasets.sample import GoldObject, Sample
from vgt_agent.world.generate import GENERATOR_VERSION, make_sample, resolve_split
from vgt_agent.world.splits import SplitSpec

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


def make_split(
    out_dir: str | os.PathLike,
    split: str | SplitSpec,
    n: int | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
    width: int | None = None,
    height: int | None = None,
) -> dict[str, Any]:
    """Write `n` samples of a split to `out_dir` (replacing an earlier split there); returns info.json.

    Raises KeyError for an unknown split name, ValueError for n < 1, FileExistsError when `out_dir` is
    something other than a split folder.
    """
    spec = resolve_split(split, width, height)
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
            for index in range(n):
                image, record = make_sample(spec, index, seed=seed)
                image.save(tmp / record["file_name"], format="PNG", compress_level=1)
                meta.write(json.dumps(record, separators=(",", ":")) + "\n")
                if progress is not None:
                    progress(index + 1, n)
        info = {
            "split": spec.name, "n": n, "seed": seed, "width": spec.width, "height": spec.height,
            "generator_version": GENERATOR_VERSION, "families": list(spec.families),
        }
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
