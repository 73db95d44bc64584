"""The annotated picture of a stored trace, shared by `vgt traces show --png` and `vgt ask --save`.

The picture holds what the trace holds, in the thought's order: the grounder's masks outlined in the colour of
their phrase, the instances the thought wrote numbered as it wrote them (the model's own groundings when it
wrote any, else the tool's), groundings that did not verify in dashed red, and a caption band below the image
with the question, the answer, one legend line per phrase, every phrase the grounder found nothing for, and
the backend, model and grounder that made the trace.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from vgt_agent.cli.common import usage_error
from vgt_agent.draw import (
    REJECTED_COLOUR,
    TEXT_DARK,
    VERIFIED_COLOUR,
    CaptionLine,
    Colour,
    Drawing,
    Mark,
    add_caption,
    draw_marks,
    phrase_colours,
)
from vgt_agent.geometry import decode_rle, pixel_from_norm_box, pixel_from_norm_point
from vgt_agent.images import load_image

# Pictures smaller than this (long side, pixels) are enlarged by an integer factor so labels stay readable.
MIN_SIDE = 560
# The tool's reply when the grounder found nothing, as `format.render_tool_result` words it.
NOTHING_FOUND = re.compile(r"^\s*No (.+?) found\.\s*$", re.S)
GREY = (110, 110, 110)


@dataclass
class PhraseGroup:
    """Everything a trace drew for one phrase, for its legend line."""

    phrase: str
    colour: Colour
    found: int = 0  # masks the grounder returned
    numbers: list[int] = field(default_factory=list)
    kinds: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)
    verified: list[bool | None] = field(default_factory=list)


def nothing_found(row: dict[str, Any]) -> list[str]:
    """Phrases the grounder found nothing for, read from the trace's tool replies, in order, once each."""
    out: list[str] = []
    for message in row.get("messages") or []:
        content = message.get("content")
        if message.get("role") == "tool" and isinstance(content, str):
            match = NOTHING_FOUND.match(content)
            if match and match.group(1).strip() not in out:
                out.append(match.group(1).strip())
    return out


def trace_marks(row: dict[str, Any], width: int, height: int) -> tuple[list[Mark], list[PhraseGroup]]:
    """The marks of a trace's groundings (pixels of a `width` x `height` image) and one group per phrase."""
    groundings = sorted(row.get("groundings") or [], key=lambda g: g["idx"])
    numbered = [g for g in groundings if g["source"] != "tool"] or groundings
    numbered_ids = {g["idx"] for g in numbered}
    colours = phrase_colours([g["phrase"] for g in groundings])
    groups: dict[str, PhraseGroup] = {}
    marks: list[Mark] = []
    label_on: dict[str, int] = {}
    count = 0
    for g, colour in zip(groundings, colours, strict=True):
        key = " ".join(g["phrase"].lower().split())
        group = groups.setdefault(key, PhraseGroup(g["phrase"], colour))
        masks = [decode_rle(m["rle"]) for m in row.get("masks") or []
                 if m["grounding_idx"] == g["idx"] and m.get("selected", True)]
        masks = [m for m in masks if m.shape == (height, width)]
        if g["source"] == "tool" or masks:
            group.found += len(masks) or len(g["coords"])
        mark = Mark("", masks=masks, verified=g["verified"], colour=colour)
        if g["idx"] in numbered_ids or not masks:  # a tool grounding with masks is shown by its outlines
            if g["kind"] == "point":
                mark.points = [pixel_from_norm_point(x, y, width, height) for x, y in g["coords"]]
            else:
                mark.boxes = [pixel_from_norm_box(b, width, height) for b in g["coords"]]
        if g["idx"] in numbered_ids:
            mark.numbers = list(range(count + 1, count + 1 + len(g["coords"])))
            count += len(g["coords"])
            group.numbers += mark.numbers
            group.kinds.add(g["kind"])
            group.sources.add(g["source"])
            group.verified += [g["verified"]] * len(g["coords"])
        # the label goes on the phrase's first mark that shows what was found, else on its first mark
        if key not in label_on or (masks and not marks[label_on[key]].masks):
            label_on[key] = len(marks)
        marks.append(mark)
    for key, i in label_on.items():
        group = groups[key]
        marks[i].label = group.phrase + (" (not verified)" if _none_verified(group) else "")
    return marks, list(groups.values())


def _none_verified(group: PhraseGroup) -> bool:
    return not group.found and bool(group.verified) and all(v is False for v in group.verified)


def _ranges(numbers: list[int]) -> str:
    """1, 2, 3, 5 -> '1-3, 5'."""
    parts: list[str] = []
    for n in numbers:
        if parts and n == int(parts[-1].split("-")[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{n}"
        else:
            parts.append(str(n))
    return ", ".join(parts)


WHOSE = {"model": "the model's ", "tool": "", "synth": "synthesis' ", "inline": ""}


def _group_line(group: PhraseGroup, grounder: str) -> CaptionLine:
    """One legend line: what the grounder found for the phrase and which numbers the thought gave it."""
    bits = []
    if group.found:
        bits.append(f"grounder {grounder} found {group.found} (outlined)")
    if group.numbers:
        noun = "/".join(sorted(f"{k}s" if len(group.numbers) > 1 else k for k in group.kinds))
        whose = "".join(WHOSE.get(s, f"{s} ") for s in sorted(group.sources) if s != "tool" or len(group.sources) == 1)
        text = f"{whose}{noun} {_ranges(group.numbers)}"
        checked = [v for v in group.verified if v is not None]
        if checked:
            ok = sum(checked)
            text += ((", verified" if ok == 1 else f", all {ok} verified") if ok == len(checked) else
                     f", {ok} of {len(checked)} verified (dashed red: not verified)")
        elif "model" in group.sources:
            text += " (not checked against a grounder)"
        bits.append(text)
    dashed = bool(group.verified) and all(v is False for v in group.verified) and not group.found
    return CaptionLine(f"{group.phrase}: " + " · ".join(bits), TEXT_DARK, group.colour, dashed)


def trace_caption(row: dict[str, Any], groups: list[PhraseGroup]) -> list[CaptionLine]:
    """The caption band's lines: question, answer, legend per phrase, misses, stop reason, provenance."""
    grounder = row.get("grounder") or "-"
    question = f"Q: {row.get('question') or ''}"
    choices = row.get("choices") or []
    if choices:
        question += " · " + " · ".join(f"{chr(65 + i)}. {c}" for i, c in enumerate(choices))
    lines = [CaptionLine(question)]
    answer = row.get("answer")
    verdict = {True: "correct", False: "wrong", None: ""}[row.get("correct")]
    text = f"A: {answer}" if answer not in (None, "") else "A: (no answer)"
    letter = str(answer or "").strip().upper()
    if len(letter) == 1 and 0 <= ord(letter) - 65 < len(choices):
        text += f" ({choices[ord(letter) - 65]})"
    if row.get("gold_answer") not in (None, ""):
        text += f" · gold {row['gold_answer']}" + (f" · {verdict}" if verdict else "")
    colour = {True: VERIFIED_COLOUR, False: REJECTED_COLOUR, None: TEXT_DARK}[row.get("correct")]
    lines.append(CaptionLine(text, REJECTED_COLOUR if answer in (None, "") else colour))
    reason, error = row.get("reason"), row.get("error")
    if error or (reason and reason != "answered") or row.get("status") not in (None, "ok"):
        why = "; ".join(str(p) for p in (row.get("status") if row.get("status") != "ok" else None, reason, error) if p)
        lines.append(CaptionLine(f"stopped: {why}", REJECTED_COLOUR))
    lines += [_group_line(g, grounder) for g in groups]
    drawn = {" ".join(g.phrase.lower().split()) for g in groups if g.found}
    for phrase in nothing_found(row):
        if " ".join(phrase.lower().split()) not in drawn:
            lines.append(CaptionLine(f"nothing found for '{phrase}' (grounder {grounder})", REJECTED_COLOUR,
                                     REJECTED_COLOUR, dashed_swatch=True))
    if not groups and not nothing_found(row):
        lines.append(CaptionLine("no groundings in this trace", GREY))
    trace_id = str(row.get("id") or "")[:8]
    lines.append(CaptionLine(f"backend {row.get('backend') or '-'} · model {row.get('model') or '-'} · grounder "
                             f"{grounder} · trace {trace_id}", GREY))
    return lines


def trace_picture(row: dict[str, Any], image: Image.Image) -> Drawing:
    """The trace's groundings drawn on `image` (its own picture), with the caption band below."""
    rgb = image.convert("RGB")
    marks, groups = trace_marks(row, *rgb.size)
    return add_caption(draw_marks(rgb, marks, min_side=MIN_SIDE), trace_caption(row, groups))


def picture_path_problem(out: Path) -> str | None:
    """Why a picture cannot be written to `out` (unknown image type, no such folder), or None: check it before
    the work that makes the picture."""
    out = Path(out)
    if Image.registered_extensions().get(out.suffix.lower()) is None:
        return f"cannot write {out}: the file name must end in an image type such as .png or .jpg"
    if not out.parent.is_dir():
        return f"cannot write {out}: no folder {out.parent}"
    if out.is_dir():
        return f"cannot write {out}: it is a folder"
    return None


def write_trace_png(row: dict, out: Path) -> None:
    """Draw the trace's picture (groundings, masks, caption) and write it to `out`, whole or not at all."""
    out = Path(out)
    problem = picture_path_problem(out)
    if problem:
        usage_error(problem)
    try:
        image = load_image(row["image_path"])  # upright, as the model saw it: the points are in that frame
    except ValueError as e:
        usage_error(f"the trace's image: {e}")
    picture = trace_picture(row, image).image
    partial = out.with_name(f".{out.name}.partial")
    try:
        picture.save(partial, format=Image.registered_extensions()[out.suffix.lower()])
        os.replace(partial, out)
    except (OSError, ValueError) as e:
        partial.unlink(missing_ok=True)
        usage_error(f"cannot write {out}: {e}")
