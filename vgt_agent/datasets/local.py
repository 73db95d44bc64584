"""Local datasets: a JSONL file, or a folder with `metadata.jsonl` and images (HF imagefolder layout).

Columns: `question`, `answer` (required); `answer_type` (count / yes_no / choice / text; inferred when
absent), `choices` (list), `image` / `image_path` / `file_name` (relative to the JSONL's folder), `id`,
`gold_objects` (list of {name, box, role, rle, meta}). Every gold is checked with the answer normaliser at
load time, so a typo in a hand-written file fails loudly on its line instead of silently scoring zero.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from vgt_agent.answers import ANSWER_TYPES, normalise_answer, normalise_count, normalise_yes_no
from vgt_agent.sample import GoldObject, Sample

METADATA = "metadata.jsonl"
_IMAGE_COLUMNS = ("image", "image_path", "file_name")


def resolve_jsonl(path: Path) -> Path:
    """The JSONL behind a local dataset path (the file itself, or a folder's metadata.jsonl)."""
    if path.is_dir():
        path = path / METADATA
    if not path.is_file():
        raise FileNotFoundError(
            f"local dataset not found: {path} (expected a .jsonl file or a folder with {METADATA})"
        )
    return path


def infer_answer_type(answer: Any, choices: tuple[str, ...]) -> str:
    """choice if options are given, else count for integers, yes_no for yes/no, else text."""
    if choices:
        return "choice"
    if isinstance(answer, int) and not isinstance(answer, bool):
        return "count"
    text = str(answer).strip()
    if text.isdigit():
        return "count"
    if normalise_yes_no(text) is not None and len(text.split()) == 1:
        return "yes_no"
    if normalise_count(text) is not None and len(text.split()) == 1:
        return "count"
    return "text"


def _gold_object(value: Mapping[str, Any]) -> GoldObject:
    box = value.get("box")
    return GoldObject(
        name=str(value["name"]),
        rle=value.get("rle"),
        box=tuple(float(v) for v in box) if box is not None else None,
        role=str(value.get("role") or ""),
        meta=dict(value.get("meta") or {}),
    )


def _row_sample(row: Mapping[str, Any], line: int, base: Path, split: str, where: str) -> Sample:
    if "question" not in row or "answer" not in row:
        raise ValueError(f"{where}:{line}: a row needs 'question' and 'answer' (got {sorted(row)})")
    choices = tuple(str(c) for c in row.get("choices") or ())
    answer_type = row.get("answer_type") or infer_answer_type(row["answer"], choices)
    if answer_type not in ANSWER_TYPES:
        raise ValueError(
            f"{where}:{line}: answer_type {answer_type!r} is not one of {', '.join(ANSWER_TYPES)}"
        )
    if answer_type == "choice" and not choices:
        raise ValueError(f"{where}:{line}: a choice question needs 'choices'")
    gold = normalise_answer(row["answer"], answer_type, choices)
    if gold is None:
        raise ValueError(f"{where}:{line}: answer {row['answer']!r} is not a valid {answer_type} answer")
    image = next((row[c] for c in _IMAGE_COLUMNS if row.get(c)), None)
    image_path = None
    if image is not None:
        p = Path(str(image)).expanduser()
        image_path = str(p if p.is_absolute() else base / p)
    try:
        gold_objects = tuple(_gold_object(g) for g in row.get("gold_objects") or ())
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}:{line}: bad gold_objects entry ({e})") from e
    return Sample(
        id=str(row.get("id") if row.get("id") is not None else f"local-{line}"),
        dataset=str(row.get("dataset") or "local"),
        split=split,
        question=str(row["question"]),
        answer=gold,
        answer_type=answer_type,
        image_path=image_path,
        choices=choices,
        gold_objects=gold_objects,
        meta=dict(row.get("meta") or {}),
    )


def read_local(path: Path, split: str = "local") -> Iterator[Sample]:
    """The samples of a local JSONL dataset, validated row by row (ValueError names file and line).

    The file is located eagerly (FileNotFoundError here), the rows are read lazily.
    """
    return _read_rows(resolve_jsonl(path), split)


def _read_rows(jsonl: Path, split: str) -> Iterator[Sample]:
    with open(jsonl, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{jsonl}:{line_no}: invalid JSON ({e.msg})") from e
            if not isinstance(row, dict):
                raise ValueError(f"{jsonl}:{line_no}: expected a JSON object")
            yield _row_sample(row, line_no, jsonl.parent, split, str(jsonl))
