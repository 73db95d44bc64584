"""Referring expressions that pick out exactly one object, in words the concept parser understands.

A question may only mention "the blue star" when exactly one blue star exists; otherwise the size is
added ("the large blue star"), and an object that is still ambiguous is never referred to.
"""

from __future__ import annotations

from collections.abc import Sequence

from vgt_agent.world.scene import WorldObject


def plural(shape: str) -> str:
    """Every SHAPES noun pluralises regularly."""
    return shape + "s"


def refer(obj: WorldObject, objects: Sequence[WorldObject], with_size: bool = True) -> str | None:
    """Shortest unique description ("blue star", "large blue star"), or None when there is none."""
    same = [o for o in objects if o.colour == obj.colour and o.shape == obj.shape]
    if len(same) == 1:
        return f"{obj.colour} {obj.shape}"
    if with_size and sum(o.size == obj.size for o in same) == 1:
        return f"{obj.size} {obj.colour} {obj.shape}"
    return None


def referable(objects: Sequence[WorldObject], with_size: bool = True) -> dict[int, str]:
    """Object id -> its unique description, for every object that has one."""
    out = {}
    for o in objects:
        expr = refer(o, objects, with_size)
        if expr is not None:
            out[o.id] = expr
    return out
