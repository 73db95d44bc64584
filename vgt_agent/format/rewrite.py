"""Rewriting thoughts in place: strip groundings, fill placeholders, turn boxes into points."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeAlias

from vgt_agent import geometry
from vgt_agent.format.parsing import parse
from vgt_agent.format.syntax import PAPER_SYNTAX, Kind, Syntax
from vgt_agent.format.thought import GroundedThought, Grounding, Placeholder, Segment, render_grounding, render_segment

if TYPE_CHECKING:  # numpy loads when numbers are read, not when a command imports the parser
    import numpy as np

# --- rewriting ------------------------------------------------------------------------------------------


def _as_thought(source: GroundedThought | str, syntax: Syntax) -> GroundedThought:
    if isinstance(source, GroundedThought):
        return source
    return parse(source, expect_answer=False, syntax=syntax)


def _rewrite(
    source: GroundedThought | str,
    thought: GroundedThought,
    replacement_for: Callable[[Segment], str | None],
    syntax: Syntax,
) -> str:
    """Rewrite each tag segment of `thought` (parsed from `source`) in order; None keeps the tag as is.

    Text input is spliced so everything not replaced (including invalid tags) stays byte-identical.
    """
    pieces: list[str] = []
    if isinstance(source, GroundedThought):
        for segment in thought.segments:
            new = None if isinstance(segment, str) else replacement_for(segment)
            pieces.append(render_segment(segment, syntax) if new is None else new)
        return "".join(pieces)
    position = 0
    for segment in thought.segments:
        if isinstance(segment, str):
            continue
        new = replacement_for(segment)
        if new is not None:
            pieces += [source[position : segment.span[0]], new]
            position = segment.span[1]
    pieces.append(source[position:])
    return "".join(pieces)


def strip_groundings(source: GroundedThought | str, *, syntax: Syntax = PAPER_SYNTAX) -> str:
    """Replace each `<obj>` tag (grounding or placeholder) by its bare phrase, so the sentence still reads.

    This is the non-grounded baseline, and the drift check for synthesised traces. Tool requests and invalid
    tags are left untouched: they are not part of the prose.
    """

    def phrase_of(segment: Segment) -> str | None:
        return segment.phrase if isinstance(segment, Grounding | Placeholder) else None

    return _rewrite(source, _as_thought(source, syntax), phrase_of, syntax)


CoordsSource: TypeAlias = Sequence[Sequence[Sequence[int]]] | Callable[[int, str], Sequence[Sequence[int]]]
"""Per placeholder, in order: its instances; either a sequence or `f(placeholder_index, phrase)`."""


def fill_placeholders(
    source: GroundedThought | str, coords_for: CoordsSource, kind: Kind, *, syntax: Syntax = PAPER_SYNTAX
) -> str:
    """Write coordinates into each `<obj> phrase | ? </obj>`, giving a box or point trace.

    A placeholder with no instances (the grounder found nothing) becomes its bare phrase, since a tag
    cannot hold zero instances. ValueError if a sequence has the wrong length or coordinates are invalid.
    """
    thought = _as_thought(source, syntax)
    count = len(thought.placeholders)
    if not callable(coords_for) and len(coords_for) != count:
        raise ValueError(f"{len(coords_for)} coordinate lists for {count} placeholders")
    index = 0

    def filled(segment: Segment) -> str | None:
        nonlocal index
        if not isinstance(segment, Placeholder):
            return None
        coords = coords_for(index, segment.phrase) if callable(coords_for) else coords_for[index]
        index += 1
        if len(coords) == 0:
            return segment.phrase
        return render_grounding(segment.phrase, kind, coords, syntax=syntax)

    return _rewrite(source, thought, filled, syntax)


def box_trace_to_point_trace(
    source: GroundedThought | str, masks: Sequence[Sequence[np.ndarray]], *, syntax: Syntax = PAPER_SYNTAX
) -> str:
    """Rewrite every box grounding as points on its objects: the point variant of a synthesised box trace.

    `masks[i]` holds one (H, W) bool mask per instance of the i-th box grounding; each point is the mask's
    most interior pixel (`geometry.mask_to_point`), taken at the pixel centre and normalised. Point
    groundings are left as they are.
    """
    import numpy as np

    thought = _as_thought(source, syntax)
    boxes = [g for g in thought.groundings if g.kind == "box"]
    if len(masks) != len(boxes):
        raise ValueError(f"{len(masks)} mask lists for {len(boxes)} box groundings")
    index = 0

    def as_points(segment: Segment) -> str | None:
        nonlocal index
        if not (isinstance(segment, Grounding) and segment.kind == "box"):
            return None
        instance_masks = masks[index]
        index += 1
        if len(instance_masks) != len(segment.coords):
            counts = f"{len(instance_masks)} masks for {len(segment.coords)} instances"
            raise ValueError(f"{counts} of {segment.phrase!r}")
        points = []
        for mask in instance_masks:
            height, width = np.shape(mask)
            col, row = geometry.mask_to_point(mask)
            points.append(geometry.norm_from_pixel_point(col + 0.5, row + 0.5, width, height))
        return render_grounding(segment.phrase, "point", points, syntax=syntax)

    return _rewrite(source, thought, as_points, syntax)
