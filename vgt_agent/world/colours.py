"""Colour names for pixels: which of the world's named colours a shade is, or none.

A shade is named by its hue in OKLab (a perceptual space whose hue lines stay straight where CIELAB bends
blue towards purple: pure blue (0, 0, 255) is "purple-ish" in CIELAB, "blue" in OKLab), gated by chroma:
greys, whites, creams and pale tints are no named colour. Lightness does not enter the name, so dark and
light shades of red are both red. The named hues are those of `palette.COLOURS`; a hue farther than
`REJECT_DEGREES` from every one of them (cyan, teal, pink) is no named colour either.

`jitter_shade` draws shades that name back with a margin in hue and chroma, so anti-aliasing against a
grey background or JPEG's colour noise does not flip the name; `name_table` is the naming as a lookup
table over quantised RGB, for segmenting whole images at the cost of one gather.
"""

from __future__ import annotations

import functools

import numpy as np

from vgt_agent.world.palette import COLOURS

NAMES: tuple[str, ...] = tuple(COLOURS)
NONE = -1  # index of "no named colour"
# A shade is named only with at least this OKLab chroma (the palette's is 0.17-0.22, cream's about 0.06,
# pale pink's 0.074).
MIN_CHROMA = 0.08
# A shade farther than this (degrees of OKLab hue) from every named hue is no named colour.
REJECT_DEGREES = 30.0
# `jitter_shade` keeps this far (degrees) inside the hue band of its name, at most `JITTER_DEGREES` from
# the named hue, and above `JITTER_MIN_CHROMA`.
HUE_MARGIN = 8.0
JITTER_DEGREES = 12.0
JITTER_MIN_CHROMA = 0.12
# How far (OKLab lightness) a jittered shade may move from the named colour's lightness.
JITTER_LIGHTNESS = 0.08
# Bits per channel of `name_table`'s quantised RGB.
TABLE_BITS = 6

_D65 = np.array([0.95047, 1.0, 1.08883])
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_LMS = np.array(
    [[0.4122214708, 0.5363325363, 0.0514459929], [0.2119034982, 0.6806995451, 0.1073969566],
     [0.0883024619, 0.2817188376, 0.6299787005]]
)
_OKLAB = np.array(
    [[0.2104542553, 0.7936177850, -0.0040720468], [1.9779984951, -2.4285922050, 0.4505937099],
     [0.0259040371, 0.7827717662, -0.8086757660]]
)


def _linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 (or 0..255 floats) -> linear light in 0..1."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _encode(linear: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB 0..255 floats (unclipped)."""
    c = np.clip(linear, 0.0, None)
    return 255.0 * np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB colours, shape (..., 3) -> (..., 3) float64: L in 0..100, a and b around 0."""
    xyz = _linear(rgb) @ _RGB_TO_XYZ.T / _D65
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def rgb_to_oklab(rgb: np.ndarray) -> np.ndarray:
    """OKLab of sRGB colours, shape (..., 3) -> (..., 3) float64: L in 0..1, a and b within about ±0.32."""
    return np.cbrt(_linear(rgb) @ _LMS.T) @ _OKLAB.T


def oklab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """sRGB 0..255 floats (unclipped: out-of-gamut colours fall outside) of OKLab colours."""
    lms = np.asarray(lab, dtype=np.float64) @ np.linalg.inv(_OKLAB).T
    return _encode(lms**3 @ np.linalg.inv(_LMS).T)


def _hue_chroma(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab = rgb_to_oklab(rgb)
    return np.degrees(np.arctan2(lab[..., 2], lab[..., 1])) % 360.0, np.hypot(lab[..., 1], lab[..., 2])


@functools.cache
def named_hues() -> np.ndarray:
    """OKLab hue (degrees) of each named colour, in `NAMES` order."""
    return _hue_chroma(np.array([COLOURS[n] for n in NAMES]))[0]


def _hue_gaps(hue: np.ndarray) -> np.ndarray:
    """(..., len(NAMES)) angular distance (degrees) from each hue to each named hue."""
    d = np.abs(hue[..., None] - named_hues()) % 360.0
    return np.minimum(d, 360.0 - d)


def name_colours(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest named colour of each sRGB colour (..., 3): (index into `NAMES` or `NONE`, distance).

    The distance is the hue difference in degrees to the nearest named hue; it is infinite where the
    chroma is below `MIN_CHROMA` (no hue to speak of), and the index is `NONE` there and wherever the
    distance exceeds `REJECT_DEGREES`.
    """
    hue, chroma = _hue_chroma(rgb)
    gaps = _hue_gaps(hue)
    index = gaps.argmin(axis=-1)
    distance = np.take_along_axis(gaps, index[..., None], axis=-1)[..., 0]
    distance = np.where(chroma >= MIN_CHROMA, distance, np.inf)
    index = np.where(distance <= REJECT_DEGREES, index, NONE)
    return index.astype(np.int8), distance


def name_colour(rgb: tuple[int, int, int]) -> str | None:
    """The name of one sRGB colour, or None."""
    index, _ = name_colours(np.array(rgb))
    return None if int(index) == NONE else NAMES[int(index)]


def hue_band(name: str) -> tuple[float, float]:
    """(low, high) hue offsets (degrees) from the named hue that still name back with `HUE_MARGIN` to spare:
    up to the midpoint with each neighbouring hue or the rejection distance, whichever is nearer, and never
    more than `JITTER_DEGREES` (a shade far from the named hue is a poor example of the name)."""
    own = NAMES.index(name)
    others = np.delete(named_hues(), own)
    offsets = (others - named_hues()[own] + 180.0) % 360.0 - 180.0  # signed, in (-180, 180]
    high = min([REJECT_DEGREES, *(o / 2 for o in offsets if o > 0)]) - HUE_MARGIN
    low = max([-REJECT_DEGREES, *(o / 2 for o in offsets if o < 0)]) + HUE_MARGIN
    return max(low, -JITTER_DEGREES), min(high, JITTER_DEGREES)


def jitter_shade(rng: np.random.Generator, name: str) -> tuple[int, int, int]:
    """A random sRGB shade of a named colour: its OKLab hue moved within `hue_band`, its lightness by up to
    `JITTER_LIGHTNESS`, its chroma scaled; kept only if it is in gamut and names back with the margins."""
    if name not in COLOURS:
        raise ValueError(f"unknown colour {name!r}; named colours are {', '.join(NAMES)}")
    base = rgb_to_oklab(np.array(COLOURS[name]))
    base_chroma = float(np.hypot(base[1], base[2]))
    low, high = hue_band(name)
    hue0 = named_hues()[NAMES.index(name)]
    for _ in range(200):
        hue = np.radians(hue0 + rng.uniform(low, high))
        chroma = base_chroma * rng.uniform(0.75, 1.2)
        light = base[0] + rng.uniform(-JITTER_LIGHTNESS, JITTER_LIGHTNESS)
        rgb = oklab_to_rgb(np.array([light, chroma * np.cos(hue), chroma * np.sin(hue)]))
        if (rgb < -0.5).any() or (rgb > 255.5).any():
            continue
        shade = tuple(int(v) for v in np.clip(np.rint(rgb), 0, 255))
        got_hue, got_chroma = _hue_chroma(np.array(shade))
        offset = (float(got_hue) - hue0 + 180.0) % 360.0 - 180.0
        if low <= offset <= high and got_chroma >= JITTER_MIN_CHROMA:
            return shade
    return COLOURS[name]  # unreachable in practice: the named colour itself is in its band


@functools.cache
def name_table(bits: int = TABLE_BITS) -> np.ndarray:
    """`name_colours` of every quantised RGB (each channel's top `bits` bits, taken at the bin's centre), as
    a flat int8 table indexed by `(r >> s) << 2b | (g >> s) << b | (b >> s)` with s = 8 - bits."""
    levels = (np.arange(1 << bits) << (8 - bits)) + (1 << (7 - bits))
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    index, _ = name_colours(np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1))
    index.flags.writeable = False
    return index


def name_pixels(rgb: np.ndarray, bits: int = TABLE_BITS) -> np.ndarray:
    """(H, W) int8 colour index (`NONE` for no named colour) of an (H, W, 3) uint8 image, by table lookup."""
    shift = 8 - bits
    q = rgb >> shift
    flat = (q[..., 0].astype(np.int32) << (2 * bits)) | (q[..., 1].astype(np.int32) << bits) | q[..., 2]
    return name_table(bits).take(flat)
