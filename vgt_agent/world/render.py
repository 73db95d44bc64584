"""Turn a Scene into pixels: background, then grey distractors, then objects in drawing order.

Distractors go under the objects so they never change an object's mask. In the canonical style nothing is
anti-aliased, so every object pixel is exactly its palette colour; a varied scene paints each object in its
own shade, blended by coverage where its edges are anti-aliased (its mask is then the >= 50% coverage set).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from vgt_agent.world.palette import COLOURS
from vgt_agent.world.scene import Background, Scene, WorldObject
from vgt_agent.world.style import Backdrop, backdrop_pixels


def background_pixels(bg: Background | Backdrop, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 background; textures only mix `tone` and `tone2`-like greys, never a palette colour."""
    if isinstance(bg, Backdrop):
        return backdrop_pixels(bg, width, height)
    tone = np.array(bg.tone, dtype=np.int16)
    if bg.kind == "plain":
        return np.broadcast_to(tone.astype(np.uint8), (height, width, 3)).copy()
    if bg.kind == "noise":
        rng = np.random.default_rng(bg.seed)
        offset = rng.integers(-bg.period, bg.period + 1, size=(height, width, 1), dtype=np.int16)
        return np.clip(tone + offset, 0, 255).astype(np.uint8)
    ys, xs = np.ogrid[:height, :width]
    if bg.kind == "stripes":
        coord = xs + ys if bg.direction == 2 else xs if bg.direction == 1 else ys
        second = np.broadcast_to((coord // bg.period) % 2 == 1, (height, width))
    elif bg.kind == "checker":
        second = (ys // bg.period + xs // bg.period) % 2 == 1
    else:
        raise ValueError(f"unknown background kind {bg.kind!r}")
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[...] = np.array(bg.tone, dtype=np.uint8)
    out[second] = np.array(bg.tone2, dtype=np.uint8)
    return out


def render(scene: Scene) -> tuple[Image.Image, list[np.ndarray]]:
    """The RGB image and each object's visible mask (image-sized bool arrays, in object order)."""
    image = Image.fromarray(background_pixels(scene.background, scene.width, scene.height))
    if scene.distractors:
        draw = ImageDraw.Draw(image)
        for d in scene.distractors:
            grey = (d.grey, d.grey, d.grey)
            if d.kind == "line":
                draw.line(list(d.xy), fill=grey, width=d.width)
            else:
                cx, cy, r = d.xy
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=grey)
    pixels = np.array(image)
    if isinstance(scene.background, Backdrop):
        pixels = _paint_shades(pixels, scene.objects)
    else:
        for o in scene.objects:
            h, w = o.full.shape
            pixels[o.y0 : o.y0 + h, o.x0 : o.x0 + w][o.full] = COLOURS[o.colour]
    masks = [o.image_mask(scene.height, scene.width) for o in scene.objects]
    return Image.fromarray(pixels), masks


def _paint_shades(pixels: np.ndarray, objects: list[WorldObject]) -> np.ndarray:
    """Objects in their own shades (in place), hard-edged ones by mask, anti-aliased ones blended by coverage
    within their own window."""
    for o in objects:
        h, w = o.full.shape
        window = pixels[o.y0 : o.y0 + h, o.x0 : o.x0 + w]
        if o.coverage is None:
            window[o.full] = o.shade
            continue
        alpha = o.coverage[..., None]
        blended = window * (1.0 - alpha) + np.array(o.shade, dtype=np.float32) * alpha
        window[...] = np.rint(blended)
    return pixels
