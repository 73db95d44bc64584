"""The colour each grounded phrase is marked in, shared by the terminal view and the annotated pictures (no
imports: `vgt traces show` colours a thought without loading the drawing code)."""

from __future__ import annotations

from collections.abc import Sequence

Colour = tuple[int, int, int]

# Distinct mark colours, cycled per phrase; the first ones are the farthest from the world's object colours.
PALETTE: tuple[Colour, ...] = (
    (240, 50, 230), (0, 128, 128), (70, 240, 240), (210, 245, 60), (170, 110, 40),
    (230, 25, 75), (0, 130, 200), (60, 180, 75), (245, 130, 48), (145, 30, 180),
)


def phrase_colours(phrases: Sequence[str]) -> list[Colour]:
    """One palette colour per distinct phrase (case and spacing ignored), in order of first appearance."""
    seen: dict[str, Colour] = {}
    out = []
    for phrase in phrases:
        key = " ".join(phrase.lower().split())
        if key not in seen:
            seen[key] = PALETTE[len(seen) % len(PALETTE)]
        out.append(seen[key])
    return out
