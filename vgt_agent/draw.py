"""Annotated pictures: mask outlines, boxes, numbered points and labels placed beside the objects.

Used by `vgt traces show --png`, `vgt ask --save` (through `cli/trace_png.py`), `vgt world show` and the
synthesis agent's candidate overlays. All coordinates are pixels of the input image.

What a person needs to trust the picture: the objects keep their own colours (masks are outlined outside the
object, never tinted), every label sits beside its object, inside the frame and clear of the other labels,
points carry the numbers the thought counted with, and what did not verify is drawn in dashed red.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vgt_agent.mark_colours import PALETTE, Colour, phrase_colours

__all__ = ["PALETTE", "Colour", "phrase_colours"]  # and the drawing below

VERIFIED_COLOUR = (20, 150, 20)
REJECTED_COLOUR = (220, 20, 20)
HALO = (25, 25, 25)
TEXT_DARK = (25, 25, 25)
Rect = tuple[float, float, float, float]


@dataclass
class Mark:
    """One grounding to draw.

    `verified` None means not checked; False draws it in dashed red. `numbers` gives each instance (points
    first, then boxes) its number badge; empty draws plain markers. `colour` overrides the palette, and an
    empty `label` draws no label (several marks of one phrase share one).
    """

    label: str
    points: list[tuple[float, float]] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    verified: bool | None = None
    numbers: list[int] = field(default_factory=list)
    colour: Colour | None = None


@dataclass(frozen=True)
class PlacedLabel:
    """Where a mark's label went: its box in output pixels and the instance box it names."""

    text: str
    box: Rect
    anchor: Rect
    mark: int


@dataclass(frozen=True)
class Badge:
    """A numbered point marker as drawn: centre in output pixels (moved off a neighbour when they collide)."""

    number: int
    centre: tuple[float, float]
    point: tuple[float, float]
    verified: bool | None


@dataclass
class Drawing:
    """The annotated picture and its layout (for tests and callers that add to it)."""

    image: Image.Image
    labels: list[PlacedLabel]
    badges: list[Badge]
    dropped: list[str]  # labels that found no free place
    scale: int  # the input's pixels were enlarged by this integer factor
    caption_top: int | None = None  # first row of the caption band, if any


@dataclass(frozen=True)
class Style:
    """Sizes that keep a picture readable whatever its size."""

    font_size: int
    line: int
    halo: int
    badge: int
    gap: int

    @classmethod
    def for_size(cls, width: int, height: int) -> Style:
        side = max(width, height)
        font_size = int(min(36, max(12, round(side / 40))))
        line = max(2, round(side / 180))
        return cls(font_size, line, max(1, line // 3), max(7, round(font_size * 0.7)), max(3, line + 1))


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """PIL's bundled font at `size` pixels (no font files needed)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow older than 10.1 has no sized default font
        return ImageFont.load_default()


def text_colour_on(fill: Colour) -> Colour:
    """Black or white, whichever reads better on `fill`."""
    r, g, b = fill
    return TEXT_DARK if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def clean_text(text: str, limit: int = 400) -> str:
    """One line of printable text, shortened with an ellipsis past `limit` characters."""
    one = " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def fit_text(text: str, fnt, max_width: float) -> str:
    """`text` cut with an ellipsis so it is at most `max_width` pixels wide."""
    if fnt.getlength(text) <= max_width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fnt.getlength(text[:mid] + "…") <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "…"


def annotate(image: Image.Image, marks: Sequence[Mark]) -> Image.Image:
    """Return a copy of `image` (same size) with every mark drawn on it."""
    return draw_marks(image, marks).image


def draw_marks(image: Image.Image, marks: Sequence[Mark], *, min_side: int = 0) -> Drawing:
    """Draw `marks` on a copy of `image`, enlarged by an integer factor when its long side is under `min_side`.

    Enlarging repeats pixels (nearest neighbour), so every object keeps its exact colours.
    """
    rgb = image.convert("RGB")
    scale = max(1, math.ceil(min_side / max(rgb.size))) if min_side else 1
    if scale > 1:
        rgb = rgb.resize((rgb.width * scale, rgb.height * scale), Image.Resampling.NEAREST)
    marks = [_scaled(m, scale) for m in marks]
    width, height = rgb.size
    style = Style.for_size(width, height)
    colours = [m.colour or PALETTE[i % len(PALETTE)] for i, m in enumerate(marks)]
    pixels = np.array(rgb)
    busy = BusyMap.of(pixels)
    for mark, colour in zip(marks, colours, strict=True):
        for mask in mark.masks:
            _outline_mask(pixels, mask, colour if mark.verified is not False else REJECTED_COLOUR,
                          style, dashed=mark.verified is False)
    out = Image.fromarray(pixels)
    draw = ImageDraw.Draw(out)
    label_font, badge_font = font(style.font_size), font(max(10, round(style.font_size * 0.8)))
    badges: list[tuple[Badge, Colour]] = []
    anchors: list[list[Rect]] = []  # per mark: the boxes of its instances, where its label may go beside
    r = style.badge
    for mark, colour in zip(marks, colours, strict=True):
        mark_anchors = [_mask_box(m) for m in mark.masks if np.shape(m) == (height, width) and np.any(m)]
        numbered = [*mark.points, *((b[0], b[1]) for b in mark.boxes)][: len(mark.numbers)]
        for box in mark.boxes:
            _draw_box(draw, box, colour, style, mark.verified)
            mark_anchors.append(tuple(box))
        for point in mark.points[len(numbered):]:
            _draw_dot(draw, point, colour, style, mark.verified)
            mark_anchors.append((point[0] - r / 2, point[1] - r / 2, point[0] + r / 2, point[1] + r / 2))
        for j, (number, spot) in enumerate(zip(mark.numbers, numbered, strict=False)):
            badge = _place_badge([b for b, _ in badges], number, spot, style, mark.verified, width, height)
            badges.append((badge, colour))
            if j < len(mark.points):  # a numbered point is its badge
                x, y = badge.centre
                mark_anchors.append((x - r, y - r, x + r, y + r))
        anchors.append(mark_anchors)
    for badge, _ in badges:  # leaders first, so no leader crosses a badge
        if math.dist(badge.centre, badge.point) > r:
            draw.line([badge.point, badge.centre], fill=HALO, width=style.halo + 2)
            draw.ellipse([badge.point[0] - 3, badge.point[1] - 3, badge.point[0] + 3, badge.point[1] + 3], fill=HALO)
    for badge, colour in badges:
        _draw_badge(draw, badge, colour, style, badge_font)
    obstacles = [a for mark_anchors in anchors for a in mark_anchors]
    obstacles += [(b.centre[0] - r, b.centre[1] - r, b.centre[0] + r, b.centre[1] + r) for b, _ in badges]
    placed, dropped = _place_labels(marks, anchors, obstacles, busy, label_font, style, width, height)
    for label in placed:  # leaders first, so none crosses a label
        _draw_leader(draw, label, colours[label.mark], style)
    for label in placed:
        _draw_label(draw, label, colours[label.mark], marks[label.mark].verified, label_font, style)
    return Drawing(out, placed, [b for b, _ in badges], dropped, scale)


def _scaled(mark: Mark, k: int) -> Mark:
    if k == 1:
        return mark
    return Mark(mark.label, [(x * k, y * k) for x, y in mark.points], [tuple(v * k for v in b) for b in mark.boxes],
                [np.kron(np.asarray(m, dtype=bool), np.ones((k, k), dtype=bool)) for m in mark.masks],
                mark.verified, list(mark.numbers), mark.colour)


@dataclass(frozen=True)
class BusyMap:
    """Counts pixels that differ from the border's median colour (likely objects) in any rectangle, in O(1).

    Large images are sampled every `stride` pixels to keep the table small.
    """

    table: np.ndarray
    stride: int

    @classmethod
    def of(cls, pixels: np.ndarray) -> BusyMap:
        stride = max(1, max(pixels.shape[:2]) // 1024)
        sub = pixels[::stride, ::stride]
        border = np.concatenate([sub[0], sub[-1], sub[:, 0], sub[:, -1]]).astype(np.int16)
        background = np.median(border, axis=0)
        busy = np.zeros(sub.shape[:2], dtype=bool)
        for c in range(3):
            busy |= np.abs(sub[..., c].astype(np.int16) - background[c]) > 24
        table = np.zeros((busy.shape[0] + 1, busy.shape[1] + 1), dtype=np.int64)
        table[1:, 1:] = busy.cumsum(0, dtype=np.int64).cumsum(1)
        return cls(table, stride)

    def count(self, rects: np.ndarray) -> np.ndarray:
        """Busy pixels inside each rect (N, 4) of x1, y1, x2, y2 in image pixels."""
        h, w = self.table.shape[0] - 1, self.table.shape[1] - 1
        x = np.clip(np.round(rects[:, [0, 2]] / self.stride).astype(int), 0, w)
        y = np.clip(np.round(rects[:, [1, 3]] / self.stride).astype(int), 0, h)
        t = self.table
        return (t[y[:, 1], x[:, 1]] - t[y[:, 0], x[:, 1]] - t[y[:, 1], x[:, 0]] + t[y[:, 0], x[:, 0]]) * self.stride**2


def _mask_box(mask: np.ndarray) -> Rect:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def _outline_mask(pixels: np.ndarray, mask: np.ndarray, colour: Colour, style: Style, dashed: bool) -> None:
    """Draw a ring just outside the mask (a dark halo, then the colour), leaving the object's pixels as they are."""
    from scipy import ndimage  # here, not at the top: importing the drawing module (the CLI) needs no scipy

    m = np.asarray(mask, dtype=bool)
    if m.shape != pixels.shape[:2] or not m.any():
        return
    pad = style.line + style.halo + 1
    where = np.argwhere(m)
    y0, x0, y1, x1 = *where.min(0), *(where.max(0) + 1)
    y0, x0 = max(0, y0 - pad), max(0, x0 - pad)
    y1, x1 = min(m.shape[0], y1 + pad), min(m.shape[1], x1 + pad)
    crop = m[y0:y1, x0:x1]
    inner = ndimage.binary_dilation(crop, iterations=style.line)
    outer = ndimage.binary_dilation(inner, iterations=style.halo)
    ring, halo = inner & ~crop, outer & ~inner
    view = pixels[y0:y1, x0:x1]
    if dashed:
        yy, xx = np.mgrid[y0:y1, x0:x1]
        on = ((xx + yy) // (3 * style.line + 3)) % 2 == 0
        ring &= on
    view[halo] = HALO
    view[ring] = colour


def _dashed_line(draw: ImageDraw.ImageDraw, a: tuple[float, float], b: tuple[float, float], colour: Colour,
                 width: int, dash: float) -> None:
    length = math.dist(a, b)
    steps = max(1, int(length // dash))
    for i in range(0, steps, 2):
        t0, t1 = i / steps, min(1.0, (i + 1) / steps)
        draw.line([(a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0),
                   (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1)], fill=colour, width=width)


def _draw_box(draw: ImageDraw.ImageDraw, box: Sequence[float], colour: Colour, style: Style,
              verified: bool | None) -> None:
    x1, y1, x2, y2 = box
    if verified is False:  # on the same outer edge as a solid box, so the object stays uncovered
        o = (style.line + 1) // 2
        x1, y1, x2, y2 = x1 - o, y1 - o, x2 - 1 + o, y2 - 1 + o
        corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2), (x1, y1)]
        for a, b in zip(corners, corners[1:], strict=False):
            _dashed_line(draw, a, b, HALO, style.line + 2 * style.halo, 3 * style.line + 3)
            _dashed_line(draw, a, b, REJECTED_COLOUR, style.line, 3 * style.line + 3)
        return
    h, w = style.halo, style.line
    draw.rectangle([x1 - w - h, y1 - w - h, x2 - 1 + w + h, y2 - 1 + w + h], outline=HALO, width=h)
    draw.rectangle([x1 - w, y1 - w, x2 - 1 + w, y2 - 1 + w], outline=colour, width=w)


def _draw_dot(draw: ImageDraw.ImageDraw, point: tuple[float, float], colour: Colour, style: Style,
              verified: bool | None) -> None:
    x, y = point
    r = style.badge * 0.5
    if verified is False:
        draw.ellipse([x - r, y - r, x + r, y + r], outline=REJECTED_COLOUR, width=style.line)
        return
    draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=HALO, width=style.halo)


def _place_badge(badges: list[Badge], number: int, point: tuple[float, float], style: Style,
                 verified: bool | None, width: int, height: int) -> Badge:
    """A badge on its point, or the nearest free spot around it when another badge already sits there."""
    r = style.badge
    inside = (min(max(point[0], r), width - r), min(max(point[1], r), height - r))

    def free(c: tuple[float, float]) -> bool:
        return all(math.dist(c, b.centre) >= 2 * r for b in badges)

    if free(inside):
        return Badge(number, inside, point, verified)
    for ring in range(1, 6):
        for k in range(8):
            angle = math.pi / 4 * k - math.pi / 2
            c = (inside[0] + math.cos(angle) * 2.1 * r * ring, inside[1] + math.sin(angle) * 2.1 * r * ring)
            if r <= c[0] <= width - r and r <= c[1] <= height - r and free(c):
                return Badge(number, c, point, verified)
    return Badge(number, inside, point, verified)


def _draw_badge(draw: ImageDraw.ImageDraw, badge: Badge, colour: Colour, style: Style, fnt) -> None:
    (x, y), r = badge.centre, style.badge
    text = str(badge.number)
    if badge.verified is False:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255))
        for k in range(0, 12, 2):  # a dashed red ring
            draw.arc([x - r, y - r, x + r, y + r], k * 30, k * 30 + 30, fill=REJECTED_COLOUR, width=style.line)
        ink = REJECTED_COLOUR
    else:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=HALO, width=style.halo)
        ink = text_colour_on(colour)
    text_font = fnt
    if fnt.getlength(text) > 1.6 * r and hasattr(fnt, "font_variant"):
        text_font = fnt.font_variant(size=max(8, int(fnt.size * 1.5 * r / fnt.getlength(text))))
    draw.text((x, y), text, fill=ink, font=text_font, anchor="mm")


def _rect_overlap(cands: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """Overlap area of every candidate (N, 4) with every rect (M, 4): (N, M)."""
    if len(rects) == 0:
        return np.zeros((len(cands), 0))
    w = np.minimum(cands[:, None, 2], rects[None, :, 2]) - np.maximum(cands[:, None, 0], rects[None, :, 0])
    h = np.minimum(cands[:, None, 3], rects[None, :, 3]) - np.maximum(cands[:, None, 1], rects[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def _candidates(anchor: Rect, w: float, h: float, gap: float, width: int, height: int) -> list[Rect]:
    """Positions beside `anchor` (right, left, above, below; three alignments each), moved inside the frame."""
    ax1, ay1, ax2, ay2 = anchor
    cy, cx = (ay1 + ay2) / 2, (ax1 + ax2) / 2
    spots = []
    for x in (ax2 + gap, ax1 - gap - w):
        spots += [(x, cy - h / 2), (x, ay1), (x, ay2 - h)]
    for y in (ay1 - gap - h, ay2 + gap):
        spots += [(ax1, y), (cx - w / 2, y), (ax2 - w, y)]
    out = []
    for x, y in spots:
        x, y = min(max(x, 0.0), width - w), min(max(y, 0.0), height - h)
        out.append((x, y, x + w, y + h))
    return out


def _place_labels(marks: Sequence[Mark], anchors: list[list[Rect]], obstacles: list[Rect], busy: BusyMap,
                  fnt, style: Style, width: int, height: int) -> tuple[list[PlacedLabel], list[str]]:
    """Greedy placement: each label takes the cheapest free spot beside one of its mark's instances.

    Cost = area over marked objects (x3) + area over other busy pixels + distance from the instance; a spot
    that touches a placed label or leaves the frame is never taken. When every spot beside the mark is taken,
    a grid over the whole frame is tried (the label then gets a leader line); failing that, it is dropped.
    """
    placed: list[PlacedLabel] = []
    dropped: list[str] = []
    obstacle_arr = np.array(obstacles, dtype=np.float64).reshape(-1, 4)
    ascent, descent = fnt.getmetrics()
    pad = max(2, style.font_size // 5)
    for i, mark in enumerate(marks):
        if not mark.label.strip():
            continue
        text = fit_text(clean_text(mark.label, 80), fnt, width - 2 * pad - 2)
        w, h = fnt.getlength(text) + 2 * pad, ascent + descent + 2 * pad
        if w > width or h > height:
            dropped.append(mark.label)
            continue
        mark_anchors = anchors[i] or [(width / 2, height / 2, width / 2, height / 2)]
        near = [(c, a) for a in mark_anchors[:12] for c in _candidates(a, w, h, style.gap, width, height)]
        best = _cheapest(near, placed, obstacle_arr, busy, near_only=True)
        if best is None:
            step = max(4.0, h / 2)
            grid = [((x, y, x + w, y + h), mark_anchors[0])
                    for y in np.minimum(np.arange(0, height - h + step, step), height - h)
                    for x in np.minimum(np.arange(0, width - w + step, step), width - w)]
            best = _cheapest(grid, placed, obstacle_arr, busy, near_only=False)
        if best is None:
            dropped.append(mark.label)
            continue
        box, anchor = best
        placed.append(PlacedLabel(text, box, anchor, i))
    return placed, dropped


def _cheapest(options: list[tuple[Rect, Rect]], placed: list[PlacedLabel], obstacles: np.ndarray,
              busy: BusyMap, *, near_only: bool) -> tuple[Rect, Rect] | None:
    if not options:
        return None
    cands = np.array([c for c, _ in options], dtype=np.float64)
    anchor_arr = np.array([a for _, a in options], dtype=np.float64)
    taken = np.array([p.box for p in placed], dtype=np.float64).reshape(-1, 4)
    margin = np.array([-2.0, -2.0, 2.0, 2.0])
    clash = (_rect_overlap(cands + margin, taken) > 0).any(axis=1) if len(taken) else np.zeros(len(cands), bool)
    over_marks = _rect_overlap(cands, obstacles).sum(axis=1)
    over_busy = busy.count(cands)
    dx = np.maximum(0, np.maximum(anchor_arr[:, 0] - cands[:, 2], cands[:, 0] - anchor_arr[:, 2]))
    dy = np.maximum(0, np.maximum(anchor_arr[:, 1] - cands[:, 3], cands[:, 1] - anchor_arr[:, 3]))
    cost = 3.0 * over_marks + over_busy + 6.0 * np.hypot(dx, dy) + np.arange(len(cands)) * 1e-3
    cost[clash] = np.inf
    k = int(np.argmin(cost))
    if not np.isfinite(cost[k]):
        return None
    if near_only and over_marks[k] > 0.5 * (cands[k, 2] - cands[k, 0]) * (cands[k, 3] - cands[k, 1]):
        return None  # every spot beside the mark covers marked objects: look over the whole frame
    return tuple(float(v) for v in cands[k]), tuple(float(v) for v in anchor_arr[k])  # type: ignore[return-value]


def _draw_leader(draw: ImageDraw.ImageDraw, label: PlacedLabel, colour: Colour, style: Style) -> None:
    """A line from a label to the instance it names, when the two are not side by side."""
    x1, y1, x2, y2 = label.box
    ax1, ay1, ax2, ay2 = label.anchor
    lx, ly = min(max((ax1 + ax2) / 2, x1), x2), min(max((ay1 + ay2) / 2, y1), y2)
    px, py = min(max(lx, ax1), ax2), min(max(ly, ay1), ay2)
    if math.dist((lx, ly), (px, py)) > 2 * style.gap + 2:
        draw.line([(lx, ly), (px, py)], fill=HALO, width=style.halo + 2)
        draw.line([(lx, ly), (px, py)], fill=colour, width=max(1, style.halo))


def _draw_label(draw: ImageDraw.ImageDraw, label: PlacedLabel, colour: Colour, verified: bool | None, fnt,
                style: Style) -> None:
    x1, y1, x2, y2 = label.box
    fill = colour if verified is not False else (255, 255, 255)
    ink = text_colour_on(colour) if verified is not False else REJECTED_COLOUR
    draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=fill, outline=HALO if verified is not False else REJECTED_COLOUR,
                   width=1)
    pad = max(2, style.font_size // 5)
    draw.text((x1 + pad, y1 + pad), label.text, fill=ink, font=fnt)


@dataclass(frozen=True)
class CaptionLine:
    """One caption entry: text (wrapped to the width), its colour, and an optional colour swatch before it."""

    text: str
    colour: Colour = TEXT_DARK
    swatch: Colour | None = None
    dashed_swatch: bool = False


def add_caption(drawing: Drawing, lines: Sequence[CaptionLine]) -> Drawing:
    """The drawing with a white band below the picture holding `lines` (nothing is written over the image)."""
    image = drawing.image
    style = Style.for_size(*image.size)
    fnt = font(max(12, round(style.font_size * 0.9)))
    ascent, descent = fnt.getmetrics()
    line_h = ascent + descent + max(2, style.font_size // 6)
    margin = max(6, style.font_size // 2)
    swatch_w = line_h
    rows: list[tuple[str, CaptionLine, bool]] = []
    for line in lines:
        indent = swatch_w + margin // 2 if line.swatch else 0
        for j, part in enumerate(_wrap(clean_text(line.text, 2000), fnt, image.width - 2 * margin - indent)):
            rows.append((part, line, j == 0))
    band = 2 * margin + line_h * len(rows)
    out = Image.new("RGB", (image.width, image.height + band), (255, 255, 255))
    out.paste(image, (0, 0))
    draw = ImageDraw.Draw(out)
    draw.line([(0, image.height), (image.width, image.height)], fill=(170, 170, 170), width=max(1, style.halo))
    y = image.height + margin
    for text, line, first in rows:
        x = margin
        if line.swatch:
            if first:
                s = [x, y + 2, x + swatch_w - 4, y + line_h - 4]
                if line.dashed_swatch:
                    draw.rectangle(s, fill=(255, 255, 255), outline=REJECTED_COLOUR, width=2)
                else:
                    draw.rectangle(s, fill=line.swatch, outline=HALO, width=1)
            x += swatch_w + margin // 2
        draw.text((x, y), text, fill=line.colour, font=fnt)
        y += line_h
    return Drawing(out, drawing.labels, drawing.badges, drawing.dropped, drawing.scale, image.height)


def _wrap(text: str, fnt, max_width: float) -> list[str]:
    """Greedy word wrap to `max_width` pixels; a word longer than a line is cut."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        trial = f"{current} {word}" if current else word
        if fnt.getlength(trial) <= max_width:
            current = trial
            continue
        if current:
            lines.append(current)
        while fnt.getlength(word) > max_width and len(word) > 1:
            cut = fit_text(word, fnt, max_width)[:-1] or word[:1]
            lines.append(cut)
            word = word[len(cut):]
        current = word
    if current or not lines:
        lines.append(current)
    return lines
