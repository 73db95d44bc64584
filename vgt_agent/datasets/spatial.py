"""Row mappers for the spatial datasets: VSR, EmbSpatial-Bench, SpatialMQA, MultihopSpatial, CV-Bench.

All multiple-choice golds become option letters with the options in `Sample.choices`; VSR's true/false
captions become yes/no questions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from vgt_agent.answers import LETTERS, normalise_choice
from vgt_agent.datasets.images import decode_image, external_image_path
from vgt_agent.datasets.spec import RowContext, SkipRow
from vgt_agent.sample import GoldObject, Sample

_CAPTION = re.compile(r"^(?P<subj>.+?)\s+(?P<verb>is|are)\s+(?P<rest>.+?)[.!]?$", re.I | re.S)


def caption_question(caption: str) -> str:
    """A yes/no question from a VSR caption: "The cat is behind the dog." -> "Is the cat behind the dog?"."""
    text = " ".join(caption.split())
    m = _CAPTION.match(text)
    if not m:
        return f'Is this statement about the image true: "{text}"?'
    subj = m["subj"]
    first = subj.split()[0]
    if len(first) == 1 or not first.isupper():  # "The cat" -> "the cat", but keep "TV"
        subj = subj[0].lower() + subj[1:]
    return f"{m['verb'].capitalize()} {subj} {m['rest']}?"


def _yes_no(label: Any) -> str | None:
    if isinstance(label, str):
        label = label.strip().lower()
        return {"1": "yes", "true": "yes", "0": "no", "false": "no"}.get(label)
    if label is None:
        return None
    return "yes" if int(label) == 1 else "no"


def map_vsr(row: Mapping[str, Any], index: int, ctx: RowContext) -> list[Sample]:
    """cambridgeltl/vsr_*: `image` (COCO file name), `image_link`, `caption`, `label` (1 true / 0 false),
    `relation`, `subj`, `obj`. Images are COCO 2017 files expected in `image_dir`."""
    caption = str(row.get("caption") or "").strip()
    gold = _yes_no(row.get("label"))
    if not caption or gold is None:
        raise SkipRow(f"row {index}: missing caption or label")
    file_name = str(row.get("image") or "")
    return [
        ctx.sample(
            index,
            question=caption_question(caption),
            answer=gold,
            answer_type="yes_no",
            image_path=str(external_image_path(ctx.image_dir, file_name)) if file_name else None,
            meta={
                "caption": caption,
                "relation": row.get("relation"),
                "subj": row.get("subj"),
                "obj": row.get("obj"),
                "image_url": row.get("image_link"),
            },
        )
    ]


def map_embspatial(row: Mapping[str, Any], index: int, ctx: RowContext) -> list[Sample]:
    """Phineas476/EmbSpatial-Bench: `image` (base64 JPEG), `question`, `answer_options`, `answer` (0-based
    index), `relation`, `question_id`."""
    options = tuple(str(o) for o in row.get("answer_options") or ())
    answer = row.get("answer")
    if not options or not isinstance(answer, int) or not 0 <= answer < len(options):
        raise SkipRow(f"row {index}: answer {answer!r} does not index {len(options)} options")
    return [
        ctx.sample(
            row.get("question_id") or index,
            question=str(row.get("question") or "").strip().strip("'\"").strip(),
            answer=LETTERS[answer],
            answer_type="choice",
            image=decode_image(row.get("image")),
            choices=options,
            meta={"relation": row.get("relation"), "data_source": row.get("data_source")},
        )
    ]


def map_spatialmqa(row: Mapping[str, Any], index: int, ctx: RowContext) -> list[Sample]:
    """SpatialMQA (GitHub ziyan-xiaoyu/SpatialMQA, Dataset/dataset/*.jsonl): `image` (COCO test2017 file
    name), `question`, `options`, `answer` (the option text)."""
    options = tuple(str(o) for o in row.get("options") or ())
    letter = normalise_choice(str(row.get("answer") or ""), options) if options else None
    if letter is None or not row.get("question"):
        raise SkipRow(f"row {index}: answer {row.get('answer')!r} is not one of {list(options)}")
    file_name = str(row.get("image") or "")
    return [
        ctx.sample(
            index,
            question=str(row["question"]).strip(),
            answer=letter,
            answer_type="choice",
            image_path=str(external_image_path(ctx.image_dir, file_name)) if file_name else None,
            choices=options,
            meta={"image_url": f"http://images.cocodataset.org/test2017/{file_name}" if file_name else None},
        )
    ]


_CHOICE_BLOCK = re.compile(r"<choice>(.*?)</choice>", re.I | re.S)
_OPTION = re.compile(r"\(([a-hA-H])\)\s*")
_TAGS = re.compile(r"</?(?:ATT|POS|REL|choice)>", re.I)


def split_inline_options(question: str) -> tuple[str, tuple[str, ...]]:
    """Separate "(a) x, (b) y" options (optionally inside <choice>...</choice>) from the question text."""
    block = _CHOICE_BLOCK.search(question)
    if block:
        options_text = block.group(1)
        rest = question[: block.start()] + " " + question[block.end() :]
    else:
        first = _OPTION.search(question)
        if not first:
            return " ".join(_TAGS.sub(" ", question).split()), ()
        options_text, rest = question[first.start() :], question[: first.start()]
    parts = _OPTION.split(options_text)
    letters, texts = parts[1::2], parts[2::2]
    if [c.lower() for c in letters] != [c.lower() for c in LETTERS[: len(letters)]]:
        raise SkipRow(f"options are not lettered a, b, c...: {options_text!r}")
    options = tuple(t.strip().rstrip(",;").strip() for t in texts)
    return " ".join(_TAGS.sub(" ", rest).split()), options


def _xywh_box(value: Any) -> tuple[float, float, float, float] | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if not isinstance(value, Sequence) or len(value) != 4:
        return None
    x, y, w, h = (float(v) for v in value)
    return (x, y, x + w, y + h)


def map_multihopspatial(row: Mapping[str, Any], index: int, ctx: RowContext) -> list[Sample]:
    """etri-vilab/MultihopSpatial (data/multihop_{train,test}_*.json): `id`, `image_path` (under
    data/images), `question` with inline "(a)..(d)" options, `answer` like "(b) green round container",
    `bbox` [x, y, w, h] pixels of the answer object, `hop`, `view`, `question_tag`, `image_resolution`.

    Field names are confirmed from public evaluation code; the exact layout of the options inside the
    question (inside <choice> tags, comma separated) is inferred from it.
    """
    question, options = split_inline_options(str(row.get("question") or ""))
    letter = normalise_choice(str(row.get("answer") or ""), options) if options else None
    if letter is None:
        raise SkipRow(f"row {index}: answer {row.get('answer')!r} does not match options {list(options)}")
    box = _xywh_box(row.get("bbox"))
    target = options[LETTERS.index(letter)]
    file_name = str(row.get("image_path") or "")
    return [
        ctx.sample(
            row.get("id") if row.get("id") is not None else index,
            question=question,
            answer=letter,
            answer_type="choice",
            image_path=str(external_image_path(ctx.image_dir, file_name)) if file_name else None,
            choices=options,
            gold_objects=(GoldObject(name=target, box=box, role="target"),) if box else (),
            meta={
                "hop": row.get("hop"),
                "view": row.get("view"),
                "question_tag": row.get("question_tag"),
                "image_resolution": row.get("image_resolution"),
            },
        )
    ]


def map_cvbench(row: Mapping[str, Any], index: int, ctx: RowContext) -> list[Sample]:
    """nyu-visionx/CV-Bench: `idx`, `type` (2D/3D), `task`, `image`, `question`, `choices`, `answer` "(A)"."""
    options = tuple(str(o) for o in row.get("choices") or ())
    letter = normalise_choice(str(row.get("answer") or ""), options) if options else None
    if letter is None or not row.get("question"):
        raise SkipRow(f"row {index}: answer {row.get('answer')!r} does not match {len(options)} choices")
    return [
        ctx.sample(
            row.get("idx") if row.get("idx") is not None else index,
            question=str(row["question"]).strip(),
            answer=letter,
            answer_type="choice",
            image=decode_image(row.get("image")),
            choices=options,
            meta={"task": row.get("task"), "type": row.get("type"), "source": row.get("source")},
        )
    ]
