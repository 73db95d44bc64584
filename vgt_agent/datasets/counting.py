"""Row mappers for the counting datasets: TallyQA, TallyBench, PixMo-Count, CountQA, CountBenchQA.

Each mapper turns one upstream row (in the upstream schema, exactly as `datasets` yields it) into Samples
with a decimal-integer gold. Where a schema was not confirmed against the dataset card, the mapper says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

from vgt_agent.answers import normalise_count
from vgt_agent.datasets.images import decode_image, external_image_path, first_image
from vgt_agent.datasets.spec import RowContext, SkipRow
from vgt_agent.sample import GoldObject, Sample

# The Cauldron appends answer-style instructions to some prompts; they are not part of the question.
_INSTRUCTION_LINE = re.compile(
    r"^\s*(?:answer|please answer|respond|give|reply|use|provide)\b.*$", re.I | re.M
)


def _count_gold(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and value >= 0 else None
    return normalise_count(str(value))


def map_tallyqa_cauldron(row: Mapping[str, Any], index: int, ctx: RowContext) -> list[Sample]:
    """HuggingFaceM4/the_cauldron, config "tallyqa": `images` (list) + `texts` [{user, assistant, source}].

    The column layout is confirmed from the dataset card; the exact wording of `assistant` (a bare number
    vs. a sentence) is not, so the count is read with the same normaliser used for model answers.
    """
    image = first_image(row.get("images"))
    samples = []
    for j, turn in enumerate(row.get("texts") or []):
        gold = _count_gold(turn.get("assistant"))
        question = _INSTRUCTION_LINE.sub("", str(turn.get("user") or "")).strip()
        if gold is None or not question:
            continue
        samples.append(
            ctx.sample(
                f"{index}-{j}",
                question=question,
                answer=gold,
                answer_type="count",
                image=image,
                meta={"source": turn.get("source")},
            )
        )
    if not samples:
        raise SkipRow(f"row {index}: no question with a readable count")
    return samples


def map_tallyqa_test(row: Mapping[str, Any], index: int, ctx: RowContext) -> list[Sample]:
    """vikhyatk/tallyqa-test: `image` + `qa` [{question, answer, is_simple}], several questions per image."""
    image = decode_image(row.get("image"))
    samples = []
    for j, qa in enumerate(row.get("qa") or []):
        gold = _count_gold(qa.get("answer"))
        if gold is None or not qa.get("question"):
            continue
        samples.append(
            ctx.sample(
                f"{index}-{j}",
                question=str(qa["question"]).strip(),
                answer=gold,
                answer_type="count",
                image=image,
                meta={"is_simple": bool(qa.get("is_simple"))},
            )
        )
    if not samples:
        raise SkipRow(f"row {index}: no question with a readable count")
    return samples


def _points(value: Any) -> list[tuple[float, float]]:
    """PixMo points as (x, y) pairs, whether stored as {"x": [...], "y": [...]} or [{"x", "y"}, ...]."""
    if not value:
        return []
    if isinstance(value, Mapping):
        return [
            (float(x), float(y)) for x, y in zip(value.get("x") or [], value.get("y") or [], strict=False)
        ]
    return [(float(p["x"]), float(p["y"])) for p in value]


def map_pixmo_count(row: Mapping[str, Any], index: int, ctx: RowContext) -> list[Sample]:
    """allenai/pixmo-count: `image_url`, `image_sha256`, `count`, `points` (pixels; train only), `label`.

    Images are web URLs: they are expected in `image_dir` named by their sha256 (any extension), and the
    points become "counted" gold objects, which is what point-grounded counting traces are checked against.
    """
    label = str(row.get("label") or "").strip()
    points = _points(row.get("points"))
    gold = _count_gold(row.get("count"))
    if gold is None and points:
        gold = str(len(points))
    if gold is None or not label:
        raise SkipRow(f"row {index}: missing count or label")
    url = str(row.get("image_url") or "")
    sha = str(row.get("image_sha256") or "")
    suffix = PurePosixPath(urlparse(url).path).suffix.lower() or ".jpg"
    file_name = f"{sha}{suffix}" if sha else PurePosixPath(urlparse(url).path).name
    return [
        ctx.sample(
            index,
            question=f"How many {label} are there in the image?",
            answer=gold,
            answer_type="count",
            image_path=str(external_image_path(ctx.image_dir, file_name)),
            gold_objects=tuple(GoldObject(name=label, role="counted", meta={"point": p}) for p in points),
            meta={"image_url": url, "image_sha256": sha, "label": label},
        )
    ]


def map_countqa(row: Mapping[str, Any], index: int, ctx: RowContext) -> list[Sample]:
    """CountQA: one image row with aligned `questions` / `answers` lists, plus `is_focused`, `categories`.

    Schema confirmed from the evalscope CountQA adapter (which reads the same parquet); the Hugging Face id
    is the authors' upload as best known and is not confirmed.
    """
    image = decode_image(row.get("image"))
    samples = []
    pairs = zip(row.get("questions") or [], row.get("answers") or [], strict=False)
    for j, (question, answer) in enumerate(pairs):
        gold = _count_gold(answer)
        if gold is None or not question:
            continue
        samples.append(
            ctx.sample(
                f"{index}-{j}",
                question=str(question).strip(),
                answer=gold,
                answer_type="count",
                image=image,
                meta={"is_focused": row.get("is_focused"), "categories": row.get("categories")},
            )
        )
    if not samples:
        raise SkipRow(f"row {index}: no question with a readable count")
    return samples


def map_countbenchqa(row: Mapping[str, Any], index: int, ctx: RowContext) -> list[Sample]:
    """vikhyatk/CountBenchQA: `image`, `text` (the caption), `question`, `number`."""
    gold = _count_gold(row.get("number"))
    if gold is None or not row.get("question"):
        raise SkipRow(f"row {index}: missing question or number")
    return [
        ctx.sample(
            index,
            question=str(row["question"]).strip(),
            answer=gold,
            answer_type="count",
            image=decode_image(row.get("image")),
            meta={"caption": row.get("text")},
        )
    ]
