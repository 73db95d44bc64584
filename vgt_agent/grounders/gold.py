"""GoldGrounder: answers from a sample's stored gold masks instead of looking at pixels.

It is the reference the other grounders are checked against, and the reward's source of truth when gold
masks exist. It parses concepts with the same parser as the WorldGrounder, so "blue shapes" means the
same objects to both; the only difference is where the attributes come from (the scene graph here).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from vgt_agent import geometry
from vgt_agent.grounders.base import GroundingResult, Instance
from vgt_agent.sample import GoldObject, Sample
from vgt_agent.world.concepts import Concept, describe, parse_concept

SIZE_RANK = {"small": 0, "medium": 1, "large": 2}
_Found = tuple[np.ndarray, geometry.Box, tuple[int, int], int]  # an entry's mask, box, point and area


@dataclass(frozen=True)
class _Entry:
    """One groundable object: attributes when known, else just a name, and where its mask comes from."""

    name: str
    rle: Mapping[str, Any] | None
    box: tuple[float, float, float, float] | None
    colour: str | None = None
    shape: str | None = None
    size: str | None = None

    def matches(self, concept: Concept) -> bool:
        if self.colour is not None and self.shape is not None:
            return concept.matches(self.colour, self.shape, self.size)
        named = parse_concept(self.name)  # "red circle" -> attributes; "a dog" -> falls back to the text
        attrs = _single_attributes(named)
        if attrs is not None:
            return concept.matches(*attrs)
        return _normalise(self.name) == _normalise(concept.text)

    def mask(self, height: int, width: int) -> np.ndarray | None:
        if self.rle is not None:
            return geometry.decode_rle(self.rle)
        if self.box is None:
            return None
        # Without a mask the box is the best mask we have (the pixels it covers).
        x1, y1, x2, y2 = (int(round(v)) for v in self.box)
        out = np.zeros((height, width), dtype=bool)
        out[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = True
        return out


def _single_attributes(concept: Concept) -> tuple[str, str, str | None] | None:
    """(colour, shape, size) when a name denotes exactly one kind of object, like "large red circle"."""
    if not concept.ok or len(concept.clauses) != 1:
        return None
    clause = concept.clauses[0]
    if clause.colours is None or clause.shapes is None or len(clause.colours) != 1 or len(clause.shapes) != 1:
        return None
    size = next(iter(clause.sizes)) if clause.sizes is not None and len(clause.sizes) == 1 else None
    return next(iter(clause.colours)), next(iter(clause.shapes)), size


def _normalise(text: str) -> str:
    """Lower case, no articles, no plural 's': how two names are compared when they cannot be parsed."""
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in ("a", "an", "the", "all")]
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


class GoldGrounder:
    """Grounds concepts in one sample's scene graph (or, lacking one, its named gold objects)."""

    name = "gold"

    def __init__(
        self,
        sample: Sample | None = None,
        *,
        gold_objects: Sequence[GoldObject] = (),
        scene: Iterable[Mapping[str, Any]] = (),
        size: tuple[int, int] | None = None,
    ) -> None:
        """From a Sample (its meta["objects"] scene graph and gold objects), or from those given directly.

        `size` is (width, height); it is read from the sample or the masks when not given.
        """
        if sample is not None:
            gold_objects = gold_objects or sample.gold_objects
            scene = scene or sample.meta.get("objects", ())
            if size is None and "width" in sample.meta and "height" in sample.meta:
                size = (int(sample.meta["width"]), int(sample.meta["height"]))
        entries = [
            _Entry(
                describe(o["colour"], o["shape"]), o.get("rle"), _box(o.get("box")),
                colour=o["colour"], shape=o["shape"], size=o.get("size"),
            )
            for o in scene
        ]
        if not entries:  # no scene graph: the gold objects are all we can ground
            entries = [_Entry(g.name, g.rle, g.box) for g in gold_objects]
        self.entries = entries
        self.size = size or _size_from_rles(entries)
        # Per entry and image size: (mask, box, point, area), or None for no pixels. Decoding a mask and
        # finding its point cost more than the rest of a call, and an agent grounds several phrases per image.
        self._found: dict[tuple[int, int, int], _Found | None] = {}

    def ground(self, image: Image.Image | None, concept: str) -> GroundingResult:
        """The stored objects matching the concept (score 1.0), in reading order; the image is only checked
        for size, since gold masks are only valid on the image they were made for."""
        parsed = parse_concept(concept)
        if not parsed.ok and not any(e.colour is None for e in self.entries):
            return GroundingResult(concept=concept, reason=parsed.error, presence=0.0)
        if image is not None and self.size is not None and image.size != self.size:
            (w, h), (gw, gh) = image.size, self.size
            reason = f"image is {w}x{h} but the gold masks are {gw}x{gh}"
            return GroundingResult(concept=concept, reason=reason, presence=0.0)
        width, height = self.size if self.size is not None else (image.size if image is not None else (0, 0))
        found = [(entry, hit) for i, entry in enumerate(self.entries)
                 if entry.matches(parsed) and (hit := self._instance(i, height, width)) is not None]
        found = parsed.select(found, key=lambda eh: (SIZE_RANK.get(eh[0].size or "", -1), eh[1][3]),
                              position=lambda eh: eh[1][2])
        instances = [Instance(mask=mask, box=box, point=point, score=1.0, label=e.name)
                     for e, (mask, box, point, _) in found]
        instances.sort(key=lambda i: (i.box[1], i.box[0]))
        return GroundingResult(
            concept=concept, instances=instances, presence=1.0 if instances else 0.0,
            reason=None if instances or parsed.ok else parsed.error,
        )

    def _instance(self, index: int, height: int, width: int) -> _Found | None:
        """An entry's mask (read-only: shared by every result), box, point and area, computed once."""
        key = (index, height, width)
        if key not in self._found:
            mask = self.entries[index].mask(height, width)
            if mask is None or not mask.any():
                self._found[key] = None
            else:
                mask.flags.writeable = False
                self._found[key] = (mask, geometry.mask_to_box(mask), geometry.mask_to_point(mask), int(mask.sum()))
        return self._found[key]


def _box(value: Any) -> tuple[float, float, float, float] | None:
    return None if value is None else tuple(float(v) for v in value)  # type: ignore[return-value]


def _size_from_rles(entries: Sequence[_Entry]) -> tuple[int, int] | None:
    for e in entries:
        if e.rle is not None:
            h, w = (int(v) for v in e.rle["size"])
            return w, h
    return None
