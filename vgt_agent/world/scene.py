"""A scene: background, distractors and objects placed so that instance masks stay exact.

Placement enforces the invariants segmentation relies on: objects of one colour never touch (a gap of at
least `gap` background pixels), and an occluded object stays at least `min_visible` visible and one
4-connected piece. Objects are drawn in list order, so later objects occlude earlier ones.

A spec with a `look` (the varied style, see style.py) keeps those invariants and adds per-object shades,
continuous sizes within each class's band, any rotation, anti-aliased edges, a randomised backdrop and
objects of different colours that touch; without one, scenes are drawn exactly as they always were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from vgt_agent import geometry
from vgt_agent.world import style
from vgt_agent.world.colours import jitter_shade
from vgt_agent.world.palette import BACKGROUNDS, COLOURS, SHAPES, SIZES
from vgt_agent.world.shapes import MAX_TILT_DEGREES, shape_coverage, shape_mask
from vgt_agent.world.style import Backdrop, Look

TEXTURES: tuple[str, ...] = ("noise", "stripes", "checker")
SIZE_ORDER: tuple[str, ...] = ("small", "medium", "large")
_MARGIN = 4  # pixels between an object's bounding circle and the image border


class PlacementError(RuntimeError):
    """The requested objects did not fit; callers draw a new scene."""


@dataclass(frozen=True)
class Attr:
    """What to place: shape and colour fixed, size fixed or None for "any size that fits"."""

    shape: str
    colour: str
    size: str | None = None


@dataclass(frozen=True)
class SceneSpec:
    """How to build one scene: the objects (in drawing order) and the look of the image."""

    objects: tuple[Attr, ...]
    width: int = 448
    height: int = 448
    occlusion: bool = False
    texture: bool = False
    distractors: int = 0
    min_visible: float = 0.6
    gap: int = 2
    tries: int = 300
    look: Look | None = None  # the varied style's look; None draws the canonical style


@dataclass(eq=False)
class WorldObject:
    """One placed object. `full`/`visible` are local masks whose top-left pixel is image (x0, y0)."""

    id: int
    shape: str
    colour: str
    size: str
    cx: float
    cy: float
    radius: float
    tilt: float
    x0: int
    y0: int
    full: np.ndarray
    visible: np.ndarray
    rgb: tuple[int, int, int] | None = None  # the object's shade; None is the palette colour
    coverage: np.ndarray | None = None  # anti-aliased: float coverage aligned with `full`; None is hard-edged
    _point: tuple[np.ndarray, tuple[int, int]] | None = field(default=None, init=False, repr=False)

    @property
    def shade(self) -> tuple[int, int, int]:
        return self.rgb if self.rgb is not None else COLOURS[self.colour]

    @property
    def name(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"

    @property
    def center(self) -> tuple[float, float]:
        return self.cx, self.cy

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.visible))

    @property
    def visible_fraction(self) -> float:
        return self.area / max(1, int(np.count_nonzero(self.full)))

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Visible box in image pixel edges (same as geometry.mask_to_box on the full-image mask)."""
        x1, y1, x2, y2 = geometry.mask_to_box(self.visible)
        return x1 + self.x0, y1 + self.y0, x2 + self.x0, y2 + self.y0

    @property
    def point(self) -> tuple[int, int]:
        """Distance-transform maximum of the visible mask; the local mask has a background border, so
        this equals geometry.mask_to_point on the full-image mask. Cached until occlusion replaces `visible`."""
        if self._point is None or self._point[0] is not self.visible:
            c, r = geometry.mask_to_point(self.visible)
            self._point = self.visible, (c + self.x0, r + self.y0)
        return self._point[1]

    def image_mask(self, height: int, width: int) -> np.ndarray:
        """The visible mask in image coordinates (column-major, the order COCO RLE encodes without a copy)."""
        out = np.zeros((height, width), dtype=bool, order="F")
        h, w = self.visible.shape
        out[self.y0 : self.y0 + h, self.x0 : self.x0 + w] = self.visible
        return out


@dataclass(frozen=True)
class Background:
    """Plain tone, or a grey texture between `tone` and `tone2`; `seed` makes noise reproducible."""

    kind: str  # "plain" | "noise" | "stripes" | "checker"
    tone: tuple[int, int, int]
    tone2: tuple[int, int, int]
    period: int = 0  # stripe / checker cell size, or noise amplitude
    direction: int = 0  # stripes: 0 horizontal, 1 vertical, 2 diagonal
    seed: int = 0


@dataclass(frozen=True)
class Distractor:
    """A thin grey line ("line", xy = x1, y1, x2, y2) or dot ("dot", xy = cx, cy, r) under the objects."""

    kind: str
    xy: tuple[float, ...]
    grey: int
    width: int = 1


@dataclass
class Scene:
    width: int
    height: int
    background: Background | Backdrop
    objects: list[WorldObject] = field(default_factory=list)
    distractors: list[Distractor] = field(default_factory=list)
    look: Look | None = None  # the varied style's look; None for the canonical style


def _overlap(a: WorldObject, mask: np.ndarray, x0: int, y0: int) -> tuple[slice, slice, slice, slice] | None:
    """Slices of a.visible and of `mask` (at x0, y0) covering their common image window, or None."""
    ah, aw = a.visible.shape
    mh, mw = mask.shape
    left, right = max(a.x0, x0), min(a.x0 + aw, x0 + mw)
    top, bottom = max(a.y0, y0), min(a.y0 + ah, y0 + mh)
    if left >= right or top >= bottom:
        return None
    return (
        slice(top - a.y0, bottom - a.y0), slice(left - a.x0, right - a.x0),
        slice(top - y0, bottom - y0), slice(left - x0, right - x0),
    )


def _occlude(
    objects: list[WorldObject], mask: np.ndarray, x0: int, y0: int, min_visible: float
) -> dict[int, np.ndarray] | None:
    """New visible masks of the objects a new mask would cover, or None if one would become too hidden
    or split into pieces."""
    from scipy import ndimage  # here, not at the top: importing the world (the CLI, the store) needs no scipy

    updated: dict[int, np.ndarray] = {}
    for o in objects:
        win = _overlap(o, mask, x0, y0)
        if win is None:
            continue
        ar, ac, mr, mc = win
        hit = o.visible[ar, ac] & mask[mr, mc]
        if not hit.any():
            continue
        vis = o.visible.copy()
        vis[ar, ac] &= ~mask[mr, mc]
        if np.count_nonzero(vis) < min_visible * np.count_nonzero(o.full):
            return None
        if ndimage.label(vis)[1] != 1:
            return None
        updated[o.id] = vis
    return updated


def _pick_size(rng: np.random.Generator, attr: Attr, attempt: int, tries: int) -> str:
    if attr.size is not None:
        return attr.size
    # Crowded scenes: after many failures, only smaller sizes are tried.
    if attempt < tries // 2:
        allowed = SIZE_ORDER
    else:
        allowed = SIZE_ORDER[:2] if attempt < 3 * tries // 4 else SIZE_ORDER[:1]
    return str(allowed[int(rng.integers(len(allowed)))])


def _overlaps(objects: list[WorldObject], mask: np.ndarray, x0: int, y0: int) -> bool:
    """Whether a mask at (x0, y0) shares a pixel with any of the objects' visible masks."""
    for o in objects:
        win = _overlap(o, mask, x0, y0)
        if win is not None:
            ar, ac, mr, mc = win
            if (o.visible[ar, ac] & mask[mr, mc]).any():
                return True
    return False


def _touching_centre(
    o: WorldObject, shape: str, r: float, tilt: float, angle: float
) -> tuple[float, float] | None:
    """A centre in direction `angle` from `o` where the new shape just touches `o` without overlapping it
    (bisection on the centre distance), or None when the shapes never overlap along that line."""

    def hits(d: float) -> bool:
        mask, x0, y0 = shape_mask(shape, o.cx + d * math.cos(angle), o.cy + d * math.sin(angle), r, tilt, False)
        return _overlaps([o], mask, x0, y0)

    lo, hi = 0.25 * (o.radius + r), o.radius + r + 2.0
    if not hits(lo):
        return None
    for _ in range(7):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if hits(mid) else (lo, mid)
    d = hi + 0.3  # just outside: the anti-aliased mask may reach a little further than the hard one
    return o.cx + d * math.cos(angle), o.cy + d * math.sin(angle)


def _place(rng: np.random.Generator, spec: SceneSpec, objects: list[WorldObject], attr: Attr) -> WorldObject:
    side = min(spec.width, spec.height)
    look = spec.look
    gap = spec.gap if look is None else style.same_colour_gap(side, spec.gap)
    for attempt in range(spec.tries):
        size = _pick_size(rng, attr, attempt, spec.tries)
        r = SIZES[size] * side / 2 if look is None else style.varied_radius(rng, size, side, look.tiny)
        lo_x, hi_x = r + _MARGIN, spec.width - r - _MARGIN
        lo_y, hi_y = r + _MARGIN, spec.height - r - _MARGIN
        if lo_x >= hi_x or lo_y >= hi_y:
            raise PlacementError(f"a {size} object does not fit a {spec.width}x{spec.height} image")
        others = [o for o in objects if o.colour != attr.colour]
        touch: tuple[WorldObject, float] | None = None
        if spec.occlusion and others and rng.random() < 0.5:
            # Aim for a partial overlap with a differently coloured object, so occlusion actually happens.
            o = others[int(rng.integers(len(others)))]
            a = rng.uniform(0, 2 * math.pi)
            d = (o.radius + r) * rng.uniform(0.55, 0.95)
            cx = min(max(o.cx + d * math.cos(a), lo_x), hi_x)
            cy = min(max(o.cy + d * math.sin(a), lo_y), hi_y)
        elif look is not None and others and rng.random() < style.TOUCH_SHARE:
            # Varied style: aim to touch a differently coloured object, edge to edge.
            touch = others[int(rng.integers(len(others)))], float(rng.uniform(0, 2 * math.pi))
            cx, cy = touch[0].cx, touch[0].cy
        else:
            cx, cy = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
        if look is None:
            max_tilt = MAX_TILT_DEGREES[attr.shape]
            tilt = float(rng.uniform(-max_tilt, max_tilt)) if max_tilt else 0.0
        else:
            tilt = style.varied_tilt(rng, attr.shape)
        if touch is not None:
            centre = _touching_centre(touch[0], attr.shape, r, tilt, touch[1])
            if centre is None or not (lo_x <= centre[0] <= hi_x and lo_y <= centre[1] <= hi_y):
                continue
            cx, cy = centre
        # Bounding circles decide most cases without touching masks; the slack covers rasterisation and
        # diagonal gaps (a Euclidean gap of 1.5 * gap keeps `gap` clear pixels in every direction).
        covered: list[WorldObject] = []
        ok = True
        for o in objects:
            if math.hypot(o.cx - cx, o.cy - cy) > o.radius + r + 3 + 1.5 * gap:
                continue
            if o.colour == attr.colour or (not spec.occlusion and look is None):
                ok = False
                break
            covered.append(o)  # varied style without occlusion: allowed to touch, checked on the masks below
        if not ok:
            continue
        coverage = None
        if look is not None and look.antialias:
            coverage, mask, x0, y0 = shape_coverage(attr.shape, cx, cy, r, tilt, style.SUPERSAMPLE)
        else:
            mask, x0, y0 = shape_mask(attr.shape, cx, cy, r, tilt)
        if not covered:
            updated: dict[int, np.ndarray] | None = {}
        elif spec.occlusion:
            updated = _occlude(covered, mask, x0, y0, spec.min_visible)
        else:
            updated = None if _overlaps(covered, mask, x0, y0) else {}
        if updated is None:
            continue
        for o in covered:
            if o.id in updated:
                o.visible = updated[o.id]
        return WorldObject(
            id=len(objects), shape=attr.shape, colour=attr.colour, size=size, cx=float(cx), cy=float(cy),
            radius=r, tilt=tilt, x0=x0, y0=y0, full=mask, visible=mask.copy(),
            rgb=None if look is None else jitter_shade(rng, attr.colour), coverage=coverage,
        )
    raise PlacementError(f"could not place a {attr.colour} {attr.shape} after {spec.tries} tries")


def _background(rng: np.random.Generator, texture: bool) -> Background:
    tone = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    if not texture:
        return Background("plain", tone, tone)
    kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
    delta = int(rng.integers(10, 26))
    tone2 = (tone[0] - delta, tone[1] - delta, tone[2] - delta)
    period = int(rng.integers(6, 15)) if kind == "noise" else int(rng.integers(8, 40))
    return Background(
        kind, tone, tone2, period=period, direction=int(rng.integers(3)), seed=int(rng.integers(2**31)),
    )


def _distractors(rng: np.random.Generator, n: int, width: int, height: int) -> list[Distractor]:
    out = []
    for _ in range(n):
        grey = int(rng.integers(110, 191))
        if rng.random() < 0.5:
            x1, x2 = rng.uniform(0, width, 2)
            y1, y2 = rng.uniform(0, height, 2)
            xy = (float(x1), float(y1), float(x2), float(y2))
            out.append(Distractor("line", xy, grey, int(rng.integers(1, 3))))
        else:
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            out.append(Distractor("dot", (float(cx), float(cy), float(rng.uniform(1.0, 3.0))), grey))
    return out


def make_scene(rng: np.random.Generator, spec: SceneSpec) -> Scene:
    """Place `spec.objects` in order; raises PlacementError when they do not fit."""
    for a in spec.objects:
        if a.shape not in SHAPES or a.colour not in COLOURS or (a.size is not None and a.size not in SIZES):
            raise ValueError(f"unknown object attributes {a}")
    backdrop = _background(rng, spec.texture) if spec.look is None else style.draw_backdrop(rng)
    scene = Scene(spec.width, spec.height, backdrop, look=spec.look)
    scene.distractors = _distractors(rng, spec.distractors, spec.width, spec.height)
    for attr in spec.objects:
        scene.objects.append(_place(rng, spec, scene.objects, attr))
    return scene


def random_attr(rng: np.random.Generator, size: str | None = None) -> Attr:
    """Any colour and shape, uniformly."""
    return Attr(SHAPES[int(rng.integers(len(SHAPES)))], list(COLOURS)[int(rng.integers(len(COLOURS)))], size)
