"""An independent flat-shapes generator: not the world's code, not its palette, not its colour model.

Scenes are drawn with plain Pillow the way another person's generator would: hand-picked shades people call
red, green, blue, yellow, orange and purple (web colours among them), continuous sizes and rotations,
light-grey, white, cream and gradient backgrounds with faint noise, anti-aliased or hard edges (4x
supersampling), PNG or JPEG at quality 60-95. Gold masks are each object's pixels covered at least half.
Used by the grounder tests and `benchmarks/grounder_accuracy.py` to check the WorldGrounder off the world's
own generator.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHADES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "red": ((255, 0, 0), (204, 0, 0), (230, 40, 30), (190, 30, 30), (178, 34, 34)),
    "green": ((0, 128, 0), (34, 139, 34), (50, 180, 70), (0, 170, 0), (60, 160, 60)),
    "blue": ((0, 0, 255), (30, 60, 200), (50, 90, 230), (65, 105, 225), (0, 60, 180)),
    "yellow": ((255, 255, 0), (255, 215, 0), (240, 220, 30), (250, 230, 60), (230, 200, 20)),
    "orange": ((255, 165, 0), (255, 140, 0), (240, 120, 20), (230, 130, 40), (255, 127, 39)),
    "purple": ((128, 0, 128), (148, 0, 211), (120, 50, 180), (150, 70, 200), (106, 13, 173)),
}
SHAPES = ("circle", "square", "triangle", "hexagon", "star", "ring")
SUPERSAMPLE = 4


@dataclass(frozen=True)
class Drawn:
    """One drawn object and its gold mask."""

    colour: str
    shape: str
    mask: np.ndarray  # (H, W) bool
    radius: float


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    kind = rng.choice(["grey", "white", "cream", "gradient"])
    if kind == "grey":
        v = int(rng.integers(205, 241))
        base = np.full((height, width, 3), (v, v, v), dtype=np.float64)
    elif kind == "white":
        base = np.full((height, width, 3), 252.0)
    elif kind == "cream":
        base = np.full((height, width, 3), [(255, 253, 208), (250, 245, 225), (245, 240, 215)][rng.integers(3)],
                       dtype=np.float64)
    else:
        a, b = rng.integers(190, 250, size=2)
        t = np.linspace(0, 1, width if rng.random() < 0.5 else height)
        ramp = a + (b - a) * t
        ramp = ramp[None, :] if len(t) == width else ramp[:, None]
        base = np.broadcast_to(ramp[..., None], (height, width, 3)).astype(np.float64)
    noise = rng.normal(0, rng.uniform(0, 3), size=(height, width, 1))
    return base + noise


def _outline(shape: str, cx: float, cy: float, r: float, angle: float, star_inner: float) -> list[tuple[float, float]]:
    if shape == "star":
        return [(cx + (r if i % 2 == 0 else r * star_inner) * math.cos(angle + i * math.pi / 5),
                 cy + (r if i % 2 == 0 else r * star_inner) * math.sin(angle + i * math.pi / 5)) for i in range(10)]
    n = {"square": 4, "triangle": 3, "hexagon": 6}[shape]
    return [(cx + r * math.cos(angle + 2 * math.pi * i / n), cy + r * math.sin(angle + 2 * math.pi * i / n))
            for i in range(n)]


def coverage(shape: str, cx: float, cy: float, r: float, angle: float, width: int, height: int,
             ring_inner: float = 0.55, star_inner: float = 0.45) -> np.ndarray:
    """(H, W) float fraction of each pixel the shape covers (pixel (i, j) spans [j, j+1) x [i, i+1))."""
    s = SUPERSAMPLE
    canvas = Image.new("L", (width * s, height * s), 0)
    draw = ImageDraw.Draw(canvas)
    x, y, rr = cx * s, cy * s, r * s
    if shape in ("circle", "ring"):
        draw.ellipse([x - rr, y - rr, x + rr, y + rr], fill=255)
        if shape == "ring":
            h = rr * ring_inner
            draw.ellipse([x - h, y - h, x + h, y + h], fill=0)
    else:
        draw.polygon(_outline(shape, x, y, rr, angle, star_inner), fill=255)
    fine = np.asarray(canvas, dtype=np.float64) / 255.0
    return fine.reshape(height, s, width, s).mean(axis=(1, 3))


def draw_scene(rng: np.random.Generator, antialias: bool | None = None, jpeg: int | None = None,
               count: int | None = None) -> tuple[Image.Image, list[Drawn]]:
    """A random scene of non-overlapping objects, every colour's objects apart; the decoded image and its gold."""
    width, height = (int(v) for v in rng.integers(256, 641, size=2))
    if rng.random() < 0.4:
        height = width
    antialias = bool(rng.random() < 0.6) if antialias is None else antialias
    if jpeg is None and rng.random() < 0.5:
        jpeg = int(rng.integers(60, 96))
    pixels = _background(rng, width, height)
    taken = np.zeros((height, width), dtype=bool)
    drawn: list[Drawn] = []
    side = min(width, height)
    for _ in range(count if count is not None else int(rng.integers(3, 11))):
        for _attempt in range(50):
            colour = str(rng.choice(list(SHADES)))
            shape = str(rng.choice(SHAPES))
            r = max(7.0, float(rng.uniform(0.035, 0.1)) * side)
            cx, cy = rng.uniform(r + 2, width - r - 2), rng.uniform(r + 2, height - r - 2)
            cover = coverage(shape, cx, cy, r, float(rng.uniform(0, 2 * math.pi)), width, height,
                             ring_inner=float(rng.uniform(0.5, 0.6)), star_inner=float(rng.uniform(0.4, 0.5)))
            reach = cover > 0
            grown = reach.copy()
            for axis in (0, 1):  # 3 px apart from everything drawn so far
                for shift in (-3, -2, -1, 1, 2, 3):
                    grown |= np.roll(reach, shift, axis=axis)
            if (grown & taken).any():
                continue
            shade = np.array(SHADES[colour][rng.integers(len(SHADES[colour]))], dtype=np.float64)
            alpha = cover if antialias else (cover >= 0.5).astype(np.float64)
            pixels = pixels * (1 - alpha[..., None]) + shade * alpha[..., None]
            taken |= reach
            drawn.append(Drawn(colour, shape, cover >= 0.5, r))
            break
    image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    if jpeg:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=jpeg)
        image = Image.open(buffer).convert("RGB")
    return image, drawn
