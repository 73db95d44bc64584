"""The world's closed vocabulary: colours, shapes and sizes.

Kept in one file because the scene generator draws with exactly these values and the
WorldGrounder segments by them; a colour added here is known to both at once.
"""

from __future__ import annotations

# Object colours, drawn without anti-aliasing so every object pixel has exactly this RGB.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "purple": (140, 60, 190),
    "orange": (245, 140, 30),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "ring")

# Object size classes, as the diameter of the object's bounding circle in fractions of the image side.
SIZES: dict[str, float] = {"small": 0.07, "medium": 0.11, "large": 0.16}

# Background colours (plain) and texture tones: all grey-ish, far from every object colour.
BACKGROUNDS: tuple[tuple[int, int, int], ...] = ((245, 245, 245), (225, 225, 220), (200, 200, 205))
