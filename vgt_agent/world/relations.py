"""Spatial relations between two objects, reported only when they are unambiguous.

A relation along an axis counts as clear when the visible boxes are disjoint along that axis (with a
gap), the shape centres agree with the boxes, and the axis is not dwarfed by the other one. Image y grows
downwards, so "above" means a smaller y.
"""

from __future__ import annotations

import math

from vgt_agent.world.scene import SIZE_ORDER, WorldObject

DIRECTIONS: tuple[str, ...] = ("left", "right", "above", "below")
AXIS: dict[str, int] = {"left": 0, "right": 0, "above": 1, "below": 1}
BOX_GAP = 2.0  # pixels between the boxes along the asked axis
CLEAR_RATIO = 0.5  # asked-axis offset >= this x other-axis offset (yes/no, k-th questions)
DOMINANT_RATIO = 2.0  # dominant-axis offset >= this x other-axis offset (multiple choice)
CLOSER_RATIO = 1.35  # farther distance >= this x closer distance
LARGER_RATIO = 1.5  # larger visible area >= this x smaller visible area


def direction(a: WorldObject, b: WorldObject, axis: int) -> str | None:
    """Where `a` is relative to `b` along an axis (0 = x, 1 = y), if boxes and centres agree."""
    ba, bb = a.box, b.box
    d = a.center[axis] - b.center[axis]
    if ba[axis + 2] + BOX_GAP <= bb[axis] and d < 0:
        return ("left", "above")[axis]
    if bb[axis + 2] + BOX_GAP <= ba[axis] and d > 0:
        return ("right", "below")[axis]
    return None


def clear_relation(a: WorldObject, b: WorldObject, axis: int, ratio: float = CLEAR_RATIO) -> str | None:
    """`direction` when the asked axis carries at least `ratio` of the other axis's offset."""
    d_axis = abs(a.center[axis] - b.center[axis])
    d_other = abs(a.center[1 - axis] - b.center[1 - axis])
    return direction(a, b, axis) if d_axis >= ratio * d_other else None


def dominant_relation(a: WorldObject, b: WorldObject) -> str | None:
    """The one direction a multiple-choice question can fairly ask about, or None."""
    for axis in (0, 1):
        rel = clear_relation(a, b, axis, DOMINANT_RATIO)
        if rel is not None:
            return rel
    return None


def distance(a: WorldObject, b: WorldObject) -> float:
    return math.hypot(a.cx - b.cx, a.cy - b.cy)


def closer(a: WorldObject, b: WorldObject, to: WorldObject) -> WorldObject | None:
    """Whichever of a, b is clearly closer to `to` (centre distance), or None."""
    da, db = distance(a, to), distance(b, to)
    if db >= CLOSER_RATIO * da:
        return a
    if da >= CLOSER_RATIO * db:
        return b
    return None


def larger(a: WorldObject, b: WorldObject) -> WorldObject | None:
    """Whichever of a, b is clearly larger: a bigger size class and a clearly bigger visible area."""
    if a.size == b.size:
        return None
    big, small = (a, b) if SIZE_ORDER.index(a.size) > SIZE_ORDER.index(b.size) else (b, a)
    return big if big.area >= LARGER_RATIO * small.area else None
