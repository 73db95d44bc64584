"""Whether an image is a flat-shapes scene, the only kind the world grounder (and vgt-tiny) understands.

A flat-shapes scene is a smooth, nearly grey background (plain, gradient, fine noise or paper texture,
faint stripes) with flat-coloured objects on it. Seen at about 128 px, where fine background noise has
averaged out, that leaves three signatures a photo breaks:
- its strong edges are the outlines of coloured objects; a photo has edges in its grey parts too (texture,
  detail, text, a grey-scale picture);
- its coloured regions are flat; a photo's are shaded (a cup, a face, fur);
- its colours are the named ones or greys; a photo has others (teal, pink, skin, sky);
- its background is light to mid grey and nearly even (a gradient, faint texture); a grey-scale photo's is
  dark (a night sky, a micrograph) or spans many tones (a clock face).
Each measure is checked against a bound with a wide margin on both sides (world splits, JPEG at quality
60, other generators' scenes on one side, scikit-image's sample photos on the other).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
from PIL import Image
from scipy import ndimage

from vgt_agent.world.colours import MIN_CHROMA, NAMES, name_pixels, rgb_to_oklab

SCALE = 128  # px: the longer side the image is reduced to (by box averaging) before measuring
EDGE = 32  # a pixel is on an edge when a channel ranges over more than this in its 3x3 neighbourhood
MAX_GREY_EDGES = 0.2  # fraction of pixels: edges farther than 2 px from any named colour (thin grey lines count)
MAX_EDGES = 0.40  # fraction of pixels on any edge
MAX_SHADING = 5.0  # RGB standard deviation within flat named regions
MAX_OTHER_COLOURS = 0.03  # fraction of pixels that are coloured but no named colour
MIN_BACKGROUND = 100.0  # the 10th percentile of the background's grey level (0..255)
MAX_BACKGROUND_RANGE = 60.0  # its 2nd to 98th percentile grey levels around a fitted plane (gradients are even)
_CACHE_SIZE = 32
_cache: OrderedDict[str, str | None] = OrderedDict()
_lock = threading.Lock()


def image_scope(image: Image.Image) -> str | None:
    """None when the image looks like a flat-shapes scene, else a short reason why not (cached by content)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    data = rgb.tobytes()
    digest = hashlib.sha256(repr(rgb.size).encode())
    digest.update(data)
    key = digest.hexdigest()
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    scope = scope_of_pixels(np.frombuffer(data, dtype=np.uint8).reshape(rgb.height, rgb.width, 3))
    with _lock:
        _cache[key] = scope
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return scope


def scene_measures(rgb: np.ndarray) -> dict[str, float]:
    """The measures `scope_of_pixels` bounds, of an (H, W, 3) uint8 image."""
    h, w = rgb.shape[:2]
    factor = max(1, -(-max(h, w) // SCALE))
    small = np.asarray(Image.fromarray(rgb).reduce(factor)) if factor > 1 else rgb
    wide = small.astype(np.int16)
    spread = (ndimage.maximum_filter(wide, size=(3, 3, 1)) - ndimage.minimum_filter(wide, size=(3, 3, 1))).max(-1)
    edge = spread > EDGE
    names = name_pixels(small)
    named = names >= 0
    near_named = ndimage.binary_dilation(named, iterations=2)
    lab = rgb_to_oklab(small)
    coloured = np.hypot(lab[..., 1], lab[..., 2]) >= MIN_CHROMA
    ground = ~near_named & ~edge
    grey = small.astype(np.float32).mean(-1)
    dark, spread_ = (float(np.percentile(grey[ground], 10)), _uneven(grey, ground)) if ground.any() else (255.0, 0.0)
    return {
        "edges": float(edge.mean()),
        "grey_edges": float((edge & ~near_named).mean()),
        "other_colours": float((coloured & ~named).mean()),
        "shading": _shading(wide, named & ~edge),
        "background": dark,
        "background_range": spread_,
    }


def _uneven(grey: np.ndarray, ground: np.ndarray) -> float:
    """2nd to 98th percentile of the background's grey levels around the plane fitted to them: a linear
    gradient is even (0), texture adds its amplitude, a photo's shading adds its tones."""
    ys, xs = np.nonzero(ground)
    values = grey[ys, xs]
    design = np.stack([xs, ys, np.ones_like(xs)], axis=1).astype(np.float32)
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    low, high = np.percentile(values - design @ coef, (2, 98))
    return float(high - low)


def _shading(pixels: np.ndarray, flat: np.ndarray) -> float:
    """Pooled RGB standard deviation within the connected flat regions (0 when there are none)."""
    labels, n = ndimage.label(flat)
    if n == 0:
        return 0.0
    index = np.arange(1, n + 1)
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.float64)
    variance = 0.0
    for channel in range(3):
        values = pixels[..., channel].astype(np.float64)
        mean = ndimage.sum_labels(values, labels, index) / counts
        square = ndimage.sum_labels(values * values, labels, index) / counts
        variance += float((np.maximum(square - mean**2, 0.0) * counts).sum())
    return float(np.sqrt(variance / (3 * counts.sum())))


def scope_of_pixels(rgb: np.ndarray) -> str | None:
    """`image_scope` of an (H, W, 3) uint8 array, uncached."""
    m = scene_measures(rgb)
    problems = []
    if m["grey_edges"] > MAX_GREY_EDGES:
        problems.append(f"{m['grey_edges']:.0%} of it is edges or texture away from any coloured shape")
    if m["shading"] > MAX_SHADING:
        problems.append("its coloured regions are shaded, not flat")
    if m["other_colours"] > MAX_OTHER_COLOURS:
        named = f"{', '.join(NAMES[:-1])} and {NAMES[-1]}"
        problems.append(f"{m['other_colours']:.0%} of it has colours other than {named} or greys")
    if m["background"] < MIN_BACKGROUND:
        problems.append("its background is dark, not the light-to-mid grey of a shapes scene")
    elif m["background_range"] > MAX_BACKGROUND_RANGE:
        problems.append("its background spans many grey tones, not one even grey")
    if m["edges"] > MAX_EDGES and not problems:
        problems.append(f"{m['edges']:.0%} of it is edges")
    if not problems:
        return None
    return f"the image does not look like a flat-shapes scene ({'; '.join(problems)})"
