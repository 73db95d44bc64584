"""World styles: `canonical` (the original flat look) and `varied` (domain-randomised rendering).

A varied sample draws its look (image size, file format, edges, whether tiny objects may appear) from its own
rng stream seeded by (split seed, index), so the look never shifts the scene or question draws; per-object
shades, continuous sizes, rotations and the backdrop are then drawn while the scene is built. The gold
masks always come from the geometry: with anti-aliased edges an object's mask is the set of pixels its
shape covers by at least half (`COVERAGE_THRESHOLD`), and JPEG compression never touches the masks.

Tiny objects (below the small band) appear only in the families listed in `TINY_FAMILIES`, where neither
the question nor the answer depends on a size class; they are recorded with the class "small" (a tiny
object is small, and the world's three size words stay its whole size vocabulary).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from vgt_agent.vocabulary import WORLD_STYLES

STYLES: tuple[str, ...] = WORLD_STYLES
COVERAGE_THRESHOLD = 0.5  # an anti-aliased pixel belongs to an object's mask when its shape covers >= half of it
SUPERSAMPLE = 4  # anti-aliased shapes are rasterised at 4x and box-filtered down: 17 coverage levels

# Varied sizes: the diameter of the bounding circle as a fraction of the image's shorter side, drawn uniformly
# within each class's band. Bands keep >= ~1.4x area between neighbouring classes, so "small"/"medium"/"large"
# and "the larger of" stay answerable; the canonical sizes (palette.SIZES) sit inside each band.
SIZE_BANDS: dict[str, tuple[float, float]] = {
    "small": (0.060, 0.080), "medium": (0.095, 0.125), "large": (0.140, 0.185),
}
TINY_BAND = (0.035, 0.055)
TINY_MIN_DIAMETER = 12.0  # pixels: smaller than this, no shape is readable
TINY_SHARE = 0.25  # of the objects placed with a free size in a scene that allows tiny ones
TINY_FAMILIES: frozenset[str] = frozenset(
    {"count_colour_shape", "count_not_colour", "count_shape", "count_phrased", "exist"}
)

# Rotational symmetry (degrees) of each shape: a varied tilt is uniform over one period.
SYMMETRY_DEGREES: dict[str, float] = {
    "circle": 0.0, "ring": 0.0, "square": 90.0, "triangle": 120.0, "star": 72.0, "hexagon": 60.0,
}

SIDE_RANGE = (256, 1024)
MAX_ASPECT = 2.0
SQUARE_SHARE = 0.4
JPEG_SHARE = 0.5
JPEG_QUALITY = (60, 95)
ANTIALIAS_SHARE = 0.6
TOUCH_SHARE = 0.3  # of the objects placed in a varied scene: aimed to touch a differently coloured one

# Backdrop tones: light to mid greys with a faint tint (cream, cool, green-grey, rose), far from every object
# colour in chroma, so an object is never mistaken for background or the reverse.
TONE_RANGE = (135, 250)
TINTS: tuple[tuple[int, int, int], ...] = ((0, 0, 0), (6, 3, -9), (-5, -1, 7), (-3, 3, -3), (5, -2, 0))
TEXTURES: tuple[str, ...] = ("none", "grain", "paper", "stripes", "checker")
TEXTURE_WEIGHTS: tuple[float, ...] = (0.3, 0.25, 0.25, 0.1, 0.1)


@dataclass(frozen=True)
class Look:
    """How one varied sample is drawn (everything that is not the scene's content)."""

    width: int
    height: int
    image_format: str  # "png" | "jpeg"
    quality: int  # JPEG quality; 0 for PNG
    antialias: bool
    tiny: bool  # tiny objects allowed (the family's answer never depends on a size class)

    @property
    def extension(self) -> str:
        return "jpg" if self.image_format == "jpeg" else "png"

    def record(self) -> dict[str, object]:
        """The look as the metadata row's `style` entry."""
        return {
            "name": "varied", "format": self.image_format, "quality": self.quality, "antialias": self.antialias,
        }


@dataclass(frozen=True)
class Backdrop:
    """A varied background: a flat tone or a linear gradient from `tone` to `tone` + `delta` (on every channel),
    under an optional grey texture."""

    tone: tuple[int, int, int]
    delta: int  # gradient: the far end's offset from `tone`; 0 for a flat backdrop
    angle: float  # gradient direction, radians
    texture: str  # one of TEXTURES
    amplitude: float  # grain / paper strength, or stripe / checker contrast
    period: int  # stripe / checker cell, or paper blotch scale, in pixels
    seed: int

    def describe(self) -> str:
        base = "gradient" if self.delta else "flat"
        return base if self.texture == "none" else f"{base}+{self.texture}"


def check_style(style: str) -> str:
    """`style` itself, or ValueError naming the known styles."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; known styles: {', '.join(STYLES)}")
    return style


def _side_pair(rng: np.random.Generator) -> tuple[int, int]:
    lo, hi = SIDE_RANGE
    if rng.random() < SQUARE_SHARE:
        side = int(rng.integers(lo, hi + 1))
        return side, side
    while True:
        w, h = (int(v) for v in rng.integers(lo, hi + 1, size=2))
        if w != h and max(w, h) <= MAX_ASPECT * min(w, h):
            return w, h


def draw_look(seed: int, index: int, family: str, width: int | None = None, height: int | None = None) -> Look:
    """The look of varied sample `index`: a pure function of (seed, index, family) and any fixed size."""
    rng = np.random.default_rng([seed, index, 0x5717E])
    w, h = _side_pair(rng)
    jpeg = bool(rng.random() < JPEG_SHARE)
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    antialias = bool(rng.random() < ANTIALIAS_SHARE)
    return Look(
        width=width or w, height=height or h, image_format="jpeg" if jpeg else "png", quality=quality if jpeg else 0,
        antialias=antialias, tiny=family in TINY_FAMILIES,
    )


def varied_radius(rng: np.random.Generator, size: str, side: int, tiny: bool) -> float:
    """Bounding-circle radius of a varied object of class `size` (tiny ones only when the scene allows)."""
    if tiny and size == "small" and rng.random() < TINY_SHARE:
        lo, hi = TINY_BAND
        return max(TINY_MIN_DIAMETER, float(rng.uniform(lo, hi)) * side) / 2
    lo, hi = SIZE_BANDS[size]
    return float(rng.uniform(lo, hi)) * side / 2


def varied_tilt(rng: np.random.Generator, shape: str) -> float:
    """Any rotation, uniform over the shape's symmetry period (0 for circles and rings)."""
    period = SYMMETRY_DEGREES[shape]
    return float(rng.uniform(0.0, period)) if period else 0.0


def same_colour_gap(side: int, gap: int) -> int:
    """Clear pixels between same-coloured objects: wider on big images so blur and JPEG never join them."""
    return max(gap + 2, round(4 * side / 448))


def draw_backdrop(rng: np.random.Generator) -> Backdrop:
    """A random light-to-mid backdrop, optionally a gradient, optionally textured."""
    grey = int(rng.integers(TONE_RANGE[0], TONE_RANGE[1] + 1))
    tint = TINTS[int(rng.integers(len(TINTS)))]
    tone = tuple(min(255, max(0, grey + t)) for t in tint)  # a tint on the lightest grey stays a pixel value
    gradient = bool(rng.random() < 0.5)
    delta = int(rng.integers(15, 50)) * (1 if grey < 190 else -1)  # towards mid grey: stays within 0..255
    texture = TEXTURES[int(rng.choice(len(TEXTURES), p=TEXTURE_WEIGHTS))]
    if texture in ("stripes", "checker"):
        amplitude, period = float(rng.integers(8, 20)), int(rng.integers(8, 40))
    elif texture == "paper":
        amplitude, period = float(rng.uniform(3.0, 8.0)), int(rng.integers(12, 48))
    else:
        amplitude, period = float(rng.uniform(1.5, 5.0)), 0
    return Backdrop(
        tone=tone, delta=delta if gradient else 0,  # type: ignore[arg-type]
        angle=float(rng.uniform(0, 2 * math.pi)), texture=texture, amplitude=amplitude, period=period,
        seed=int(rng.integers(2**31)),
    )


def backdrop_pixels(bd: Backdrop, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 pixels of a backdrop: one grey field (gradient + texture) added to the tone."""
    field = _texture(bd, width, height)
    if bd.delta:
        xs = np.arange(width, dtype=np.float32) * np.float32(math.cos(bd.angle))
        ys = np.arange(height, dtype=np.float32)[:, None] * np.float32(math.sin(bd.angle))
        level = xs + ys
        level -= level.min()
        level *= np.float32(bd.delta / max(1e-6, float(level.max())))
        field = level if field is None else field + level
    if field is None:
        out = np.empty((height, width, 3), dtype=np.uint8)
        out[...] = bd.tone
        return out
    # One gather: the field's rounded offset (-128..127) indexes a table of the tone shifted by it.
    np.rint(field, out=field)
    np.clip(field, -128, 127, out=field)
    index = (field + 128).astype(np.uint8)
    table = np.clip(np.arange(-128, 128)[:, None] + np.array(bd.tone), 0, 255).astype(np.uint8)
    return table.take(index, axis=0)


def _texture(bd: Backdrop, width: int, height: int) -> np.ndarray | None:
    if bd.texture == "none":
        return None
    rng = np.random.default_rng(bd.seed)
    if bd.texture == "grain":
        return _grain(rng, height, width, bd.amplitude)
    if bd.texture == "paper":
        from scipy import ndimage  # here, not at the top: importing the world (the CLI) needs no scipy

        # Soft blotches (noise on a coarse grid, smoothed and upsampled) plus a fine grain.
        gh, gw = max(2, height // bd.period + 2), max(2, width // bd.period + 2)
        coarse = ndimage.gaussian_filter(rng.normal(0.0, 1.0, size=(gh, gw)), 1.0).astype(np.float32)
        coarse *= bd.amplitude / max(1e-6, float(coarse.std()))
        blotches = np.asarray(Image.fromarray(coarse, mode="F").resize((width, height), Image.BILINEAR))
        return blotches + _grain(rng, height, width, 1.5)
    ys, xs = np.ogrid[:height, :width]
    if bd.texture == "stripes":
        band = (xs.astype(np.int32) + ys.astype(np.int32)) // bd.period % 2
    else:
        band = (ys.astype(np.int32) // bd.period + xs.astype(np.int32) // bd.period) % 2
    return band.astype(np.float32) * np.float32(-bd.amplitude)


def _grain(rng: np.random.Generator, height: int, width: int, std: float) -> np.ndarray:
    """Zero-mean pixel noise with standard deviation `std`: triangular (two uniforms), ~10x cheaper than normal."""
    noise = rng.random((height, width), dtype=np.float32)
    noise += rng.random((height, width), dtype=np.float32)
    noise -= np.float32(1.0)
    noise *= np.float32(std * math.sqrt(6.0))
    return noise


def encode_image(image: Image.Image, image_format: str, quality: int) -> bytes:
    """The file bytes of a sample: PNG (fast, lossless) or JPEG at `quality`."""
    buf = io.BytesIO()
    if image_format == "jpeg":
        image.save(buf, format="JPEG", quality=quality)
    else:
        image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
