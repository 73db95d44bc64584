"""Alignment: placeholder tags into the kept trace, then coordinates from the selected masks.

The annotation step sees only the objects' names, contexts and quoted mentions, never coordinates: it
wraps the first mention of each object in the reasoning as `<obj> mention | ? </obj>` (so stripping the
tags gives back the teacher's text exactly). The placeholders are then filled from the masks the grounding
agent selected, box = the mask's tight box and point = its distance-transform maximum, both normalised by
`geometry`; one placeholder pass therefore yields matching box and point variants of the same trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vgt_agent.format import Kind, fill_placeholders, parse, render_placeholder
from vgt_agent.geometry import norm_from_pixel_box, norm_from_pixel_point
from vgt_agent.reference_routing import singular
from vgt_agent.synthesis.objects import Grounded, MaskInfo, NeededObject

KINDS: tuple[Kind, ...] = ("point", "box")
_THINK_OPEN, _THINK_CLOSE, _BOXED = "<think>", "</think>", "\\boxed{"


@dataclass(frozen=True)
class Mention:
    """Where the annotator tags one object: `text[start:end]` names it."""

    object_index: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Alignment:
    """The placeholder trace, the filled variants, and what could not be tagged."""

    placeholder_text: str
    variants: dict[str, str]  # "point" / "box" -> text
    mentions: tuple[Mention, ...]  # in text order, one per tagged object
    unmentioned: tuple[int, ...]  # object indices with no mention in the reasoning


def reasoning_span(text: str) -> tuple[int, int]:
    """The part of a trace that may be tagged: the think block, else everything before the boxed answer."""
    start = text.find(_THINK_OPEN)
    if start >= 0:
        end = text.find(_THINK_CLOSE, start)
        return start + len(_THINK_OPEN), end if end >= 0 else len(text)
    boxed = text.find(_BOXED)
    return 0, boxed if boxed >= 0 else len(text)


def _number_forms(name: str) -> list[str]:
    words = name.split()
    if not words:
        return []
    last = words[-1]
    other = singular(last) if singular(last) != last else (last + "es" if last.endswith(("x", "sh", "ch")) else
                                                            last + "s")
    return [name, " ".join([*words[:-1], other])]


def mention_forms(obj: NeededObject) -> list[str]:
    """Texts that mention the object: the extractor's verbatim quotes, then its name in singular and plural."""
    forms = [m.strip() for m in obj.mentions if m.strip()]
    forms += _number_forms(" ".join(obj.name.split()))
    return [f for f in dict.fromkeys(forms) if f and not any(c in f for c in "<>|")]


def find_mentions(text: str, objects: list[NeededObject], indices: list[int]) -> list[Mention]:
    """The earliest non-overlapping mention of each object (longer matches win at the same position)."""
    lo, hi = reasoning_span(text)
    region = text[lo:hi]
    hits: list[tuple[int, int, int]] = []  # (start, -length, object index)
    for index in indices:
        for form in mention_forms(objects[index]):
            pattern = re.compile(r"(?<![\w-])" + re.escape(form) + r"(?![\w-])", re.IGNORECASE)
            hits += [(lo + m.start(), -(m.end() - m.start()), index) for m in pattern.finditer(region)]
    hits.sort()
    taken: dict[int, Mention] = {}
    claimed: list[tuple[int, int]] = []
    for start, neg_len, index in hits:
        end = start - neg_len
        if index in taken or any(start < e and s < end for s, e in claimed):
            continue
        taken[index] = Mention(index, start, end, text[start:end])
        claimed.append((start, end))
    return sorted(taken.values(), key=lambda m: m.start)


def insert_placeholders(text: str, mentions: list[Mention]) -> str:
    """Wrap each mention as `<obj> mention | ? </obj>`; the rest of the text is untouched."""
    pieces, position = [], 0
    for m in sorted(mentions, key=lambda m: m.start):
        pieces += [text[position : m.start], render_placeholder(m.text)]
        position = m.end
    pieces.append(text[position:])
    return "".join(pieces)


def instance_coords(masks: list[MaskInfo], kind: Kind, width: int, height: int) -> list[list[int]]:
    """Normalised coordinates of selected masks in reading order: tight boxes or interior points."""
    ordered = sorted(masks, key=lambda m: (m.point[1], m.point[0]))
    if kind == "box":
        return [list(norm_from_pixel_box(m.box, width, height)) for m in ordered]
    return [list(norm_from_pixel_point(m.point[0] + 0.5, m.point[1] + 0.5, width, height)) for m in ordered]


def align(text: str, grounded: list[Grounded], width: int, height: int) -> Alignment:
    """Tag the objects with selected masks and fill both kinds; objects with no masks stay untagged."""
    objects = [g.object for g in grounded]
    tagged = [i for i, g in enumerate(grounded) if g.status == "selected" and g.selected]
    mentions = find_mentions(text, objects, tagged)
    placeholder_text = insert_placeholders(text, mentions)
    variants = {}
    for kind in KINDS:
        coords = [instance_coords(grounded[m.object_index].selected, kind, width, height) for m in mentions]
        variants[kind] = fill_placeholders(placeholder_text, coords, kind)
    mentioned = {m.object_index for m in mentions}
    return Alignment(placeholder_text, variants, tuple(mentions), tuple(i for i in tagged if i not in mentioned))


def tags_of(variant: str) -> list[tuple[str, str, list[list[int]], tuple[int, int]]]:
    """(phrase, kind, coords, span) of each grounding in a filled variant, in order."""
    return [(g.phrase, g.kind, [list(c) for c in g.coords], g.span) for g in parse(variant).groundings]
