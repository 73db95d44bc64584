"""Traces out of the store: JSONL for scripts, and a Hugging Face `Dataset` in TRL's conversational format.

The dataset has an `images` column (PIL images, decoded lazily from the paths the store recorded; an image
`datasets` would decode differently from `vgt ask`, e.g. 16-bit or transparent, is embedded as the PNG vgt
decodes) and a `messages` column: a user turn holding the image and the question, then the assistant's
completion.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from PIL import Image

from vgt_agent.images import load_image
from vgt_agent.store.trace_store import StoreError, TraceStore


def iter_export_rows(store: TraceStore, **filters: Any) -> Iterator[dict[str, Any]]:
    """Each matching trace with its groundings and masks, as plain JSON-able dicts."""
    ids = [t["id"] for t in store.traces(**filters)]
    for tid in ids:
        row = store.trace(tid)
        if row is not None:
            yield row


def write_jsonl(store: TraceStore, out: TextIO, **filters: Any) -> int:
    """Write one JSON object per trace; returns how many were written."""
    n = 0
    for row in iter_export_rows(store, **filters):
        out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        n += 1
    return n


def conversation(question: str, completion: str, system_prompt: str | None = None) -> list[dict[str, Any]]:
    """TRL's conversational VLM format: [system], user(image + question), assistant(completion)."""
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    messages.append({"role": "user", "content": [{"type": "image", "text": None},
                                                 {"type": "text", "text": question}]})
    messages.append({"role": "assistant", "content": [{"type": "text", "text": completion}]})
    return messages


def dataset_image(path: str) -> dict[str, Any]:
    """An image cell for a `datasets.Image` column: the path when `datasets` decodes the file as vgt does
    (8-bit RGB or grayscale, no transparency; `datasets` applies EXIF orientation itself), else the PNG bytes
    of `images.load_image`'s decoding, so training sees what `vgt ask` sees."""
    with Image.open(path) as im:
        plain = im.mode in ("RGB", "L") and "transparency" not in im.info and getattr(im, "n_frames", 1) == 1
    if plain:
        return {"path": path, "bytes": None}
    buffer = io.BytesIO()
    load_image(path).save(buffer, format="PNG")
    return {"path": None, "bytes": buffer.getvalue()}


def trace_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The columns every training set keeps per trace: its ids (the eval split groups by image, the run record
    names traces) and the gold answer its rewards and evals read."""
    return {"trace_id": [r["id"] for r in rows], "sample_id": [r["sample_id"] for r in rows],
            "image_hash": [r["image_hash"] for r in rows], "variant": [r["variant"] for r in rows],
            "gold_answer": [r["gold_answer"] for r in rows], "answer_type": [r["answer_type"] for r in rows]}


def to_sft_dataset(store: TraceStore, *, system_prompt: str | None = None, rows: list[dict[str, Any]] | None = None,
                   question: Callable[[dict[str, Any]], str] | None = None,
                   completion: Callable[[dict[str, Any]], str] | None = None, **filters: Any):
    """A `datasets.Dataset` for TRL's SFTTrainer from the matching traces (by default the correct, ok ones).

    `rows` (trace rows already selected, e.g. by the training data builder) replaces the store query;
    `question(row)` / `completion(row)` override the user text and the assistant text (default: the stored
    question and completion).
    """
    import datasets  # heavy: only when exporting

    if rows is None:
        filters.setdefault("status", "ok")
        rows = list(store.traces(**filters))
    missing = [r["image_path"] for r in rows if not Path(r["image_path"]).is_file()]
    if missing:
        raise StoreError(f"{len(missing)} traced image(s) are no longer on disk, e.g. {missing[0]}")
    cells = {path: dataset_image(path) for path in dict.fromkeys(r["image_path"] for r in rows)}
    question = question or (lambda r: r["question"])
    completion = completion or (lambda r: r["completion"])
    features = datasets.Features({
        "images": datasets.Sequence(datasets.Image()),
        "messages": [{"role": datasets.Value("string"),
                      "content": [{"type": datasets.Value("string"), "text": datasets.Value("string")}]}],
        "trace_id": datasets.Value("string"),
        "sample_id": datasets.Value("string"),
        "image_hash": datasets.Value("string"),
        "variant": datasets.Value("string"),
        "gold_answer": datasets.Value("string"),
        "answer_type": datasets.Value("string"),
    })
    return datasets.Dataset.from_dict(
        {
            "images": [[cells[r["image_path"]]] for r in rows],
            "messages": [conversation(question(r), completion(r), system_prompt) for r in rows],
            **trace_columns(rows),
        },
        features=features,
    )
