"""Annotated pictures: points as dots, boxes as rectangles, masks as tints, with labels.

Used by `vgt traces show --png`, `vgt world show` and `vgt ask --save`; all coordinates are pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Distinct label colours, cycled per mark.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40),
)
VERIFIED_COLOUR = (20, 160, 20)
REJECTED_COLOUR = (210, 20, 20)


@dataclass
class Mark:
    """One labelled grounding to draw. `verified` None means unknown; True/False add a check or cross."""

    label: str
    points: list[tuple[float, float]] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    verified: bool | None = None


def _label_text(mark: Mark) -> str:
    suffix = {True: " (ok)", False: " (miss)", None: ""}[mark.verified]  # the default font has no check marks
    return mark.label + suffix


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without sized default fonts
        return ImageFont.load_default()


def annotate(image: Image.Image, marks: Sequence[Mark]) -> Image.Image:
    """Return a copy of `image` with every mark drawn on it, each label in its own colour."""
    out = image.convert("RGB").copy()
    scale = max(1.0, max(out.size) / 448)
    # Masks first, as translucent tints under everything else.
    tint = np.asarray(out, dtype=np.float32)
    for i, mark in enumerate(marks):
        colour = np.array(PALETTE[i % len(PALETTE)], dtype=np.float32)
        for mask in mark.masks:
            m = np.asarray(mask, dtype=bool)
            if m.shape == tint.shape[:2]:
                tint[m] = 0.7 * tint[m] + 0.3 * colour
    out = Image.fromarray(tint.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    font = _font(int(12 * scale))
    width, radius = max(2, int(2 * scale)), max(3, int(4 * scale))
    for i, mark in enumerate(marks):
        colour = PALETTE[i % len(PALETTE)]
        text = _label_text(mark)
        text_colour = {True: VERIFIED_COLOUR, False: REJECTED_COLOUR, None: colour}[mark.verified]
        anchors: list[tuple[float, float]] = []
        for x1, y1, x2, y2 in mark.boxes:
            draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=colour, width=width)
            anchors.append((x1, max(0.0, y1 - 14 * scale)))
        for x, y in mark.points:
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour, outline=(0, 0, 0))
            anchors.append((x + radius + 1, y - radius))
        if not anchors and mark.masks:
            ys, xs = np.nonzero(np.asarray(mark.masks[0], dtype=bool))
            if len(xs):
                anchors.append((float(xs.min()), float(ys.min())))
        for ax, ay in anchors[:1]:
            left, top, right, bottom = draw.textbbox((ax, ay), text, font=font)
            draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=(255, 255, 255))
            draw.text((ax, ay), text, fill=text_colour, font=font)
    return out
