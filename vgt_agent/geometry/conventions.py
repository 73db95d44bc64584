"""The coordinate conventions VLM families write, converted at the boundary to vgt's canonical 0..1000.

A model reads and writes coordinates in its own convention: Gemma3 as vgt teaches it and Qwen3-VL in 0..1000,
Molmo's points in 0..100, some models in 0..1, and Qwen2.5-VL in absolute pixels of the image *its processor
resized* (`smart_resize`: each side a multiple of 28, the area kept within min/max pixels). Everything vgt
stores and scores is canonical 0..1000 of the original image (`coords.py`); a convention converts through
the original image's pixels, so clamping, rounding and the never-empty box rule are `coords.py`'s own.

Text in a model's convention is rewritten by `format/coord_text.py` (only the coordinates inside `<obj>`
tags), so this module needs no parser.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vgt_agent.geometry.coords import (
    NORM,
    check_size,
    norm_from_pixel_box,
    norm_from_pixel_point,
    pixel_from_norm_box,
    pixel_from_norm_point,
)

# Qwen2.5-VL's released preprocessor_config.json: 14 px patches merged 2x2, min_pixels / max_pixels.
QWEN_FACTOR = 28
QWEN_MIN_PIXELS = 3136
QWEN_MAX_PIXELS = 12845056


class ConventionError(ValueError):
    """An unknown convention name, or an image the convention cannot describe (one line, for exit 2)."""


def smart_resize(height: int, width: int, factor: int = QWEN_FACTOR, min_pixels: int = QWEN_MIN_PIXELS,
                 max_pixels: int = QWEN_MAX_PIXELS) -> tuple[int, int]:
    """(height, width) Qwen2.5-VL's processor resizes an image to: sides multiples of `factor`, area within
    [min_pixels, max_pixels], aspect kept as closely as that allows (the arithmetic of transformers'
    `qwen2_vl.image_processing_qwen2_vl.smart_resize`, here so the conversion needs no model code)."""
    check_size(width, height)
    if max(height, width) / min(height, width) > 200:
        raise ConventionError(f"aspect ratio must be at most 200 for Qwen2.5-VL, got {width}x{height}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class Convention:
    """How one model family writes coordinates: a fixed range per image side (`extent`, e.g. 1000, 100, 1)
    written with `decimals` digits, or (`extent` None) absolute pixels of the Qwen2.5-VL-resized image."""

    name: str
    extent: float | None
    decimals: int = 0
    factor: int = QWEN_FACTOR
    min_pixels: int = QWEN_MIN_PIXELS
    max_pixels: int = QWEN_MAX_PIXELS

    def frame(self, width: int, height: int) -> tuple[float, float]:
        """The (x, y) value of the original image's right and bottom edge in this convention."""
        check_size(width, height)
        if self.extent is not None:
            return self.extent, self.extent
        resized_h, resized_w = smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)
        return float(resized_w), float(resized_h)

    def _pixels(self, values: Sequence[float], width: int, height: int) -> list[float]:
        fx, fy = self.frame(width, height)
        return [float(v) * (width / fx if i % 2 == 0 else height / fy) for i, v in enumerate(values)]

    def to_canonical(self, values: Sequence[float], width: int, height: int) -> tuple[int, ...]:
        """A point (x, y) or box (x1, y1, x2, y2) in this convention -> canonical 0..1000 ints."""
        px = self._pixels(values, width, height)
        if len(px) == 2:
            return norm_from_pixel_point(px[0], px[1], width, height)
        if len(px) == 4:
            return norm_from_pixel_box(px, width, height)
        raise ValueError(f"a point has 2 coordinates and a box 4, got {len(px)}")

    def from_canonical(self, values: Sequence[int], width: int, height: int) -> tuple[float, ...]:
        """Canonical 0..1000 -> this convention, rounded as the model writes it (ints when `decimals` is 0)."""
        if len(values) == 2:
            px: Sequence[float] = pixel_from_norm_point(values[0], values[1], width, height)
        elif len(values) == 4:
            px = pixel_from_norm_box(values, width, height)
        else:
            raise ValueError(f"a point has 2 coordinates and a box 4, got {len(values)}")
        fx, fy = self.frame(width, height)
        out = [v * (fx / width if i % 2 == 0 else fy / height) for i, v in enumerate(px)]
        return tuple(int(round(v)) if self.decimals == 0 else round(v, self.decimals) for v in out)

    def format(self, value: float) -> str:
        return str(int(round(value))) if self.decimals == 0 else f"{value:.{self.decimals}f}"

    def in_range(self, values: Sequence[float], width: int, height: int) -> bool:
        fx, fy = self.frame(width, height)
        return all(0 <= v <= (fx if i % 2 == 0 else fy) for i, v in enumerate(values))


CANONICAL = Convention("norm1000", extent=NORM)
CONVENTIONS: dict[str, Convention] = {c.name: c for c in (
    CANONICAL,
    Convention("unit", extent=1.0, decimals=3),  # 0..1
    Convention("percent", extent=100.0, decimals=1),  # 0..100 (Molmo's points)
    Convention("qwen2.5-vl-pixels", extent=None),  # absolute pixels of the processor-resized image
)}
# `config.model_type` -> the convention the family was trained to write.
FAMILY_CONVENTIONS: dict[str, str] = {
    "gemma3": "norm1000",  # vgt's own protocol, taught by SFT
    "qwen2_vl": "norm1000",
    "qwen2_5_vl": "qwen2.5-vl-pixels",
    "qwen3_vl": "norm1000",
    "qwen3_vl_moe": "norm1000",
    "molmo": "percent",
    "idefics3": "norm1000",  # SmolVLM: no native grounding, vgt's protocol
    "smolvlm": "norm1000",
}


def fitted(convention: Convention, image_processor: Mapping[str, Any] | None) -> Convention:
    """The convention in the frame the model's own image processor resizes to. Qwen2.5-VL's pixels follow its
    processor config (`patch_size` x `merge_size`, min/max pixels), which fine-tunes often lower to save memory;
    fixed ranges, and a model whose processor is not known, keep the released frame."""
    if convention.extent is not None or not image_processor:
        return convention
    size = image_processor.get("size") or {}
    factor = int(image_processor.get("patch_size") or 14) * int(image_processor.get("merge_size") or 2)
    min_pixels = image_processor.get("min_pixels") or size.get("shortest_edge") or convention.min_pixels
    max_pixels = image_processor.get("max_pixels") or size.get("longest_edge") or convention.max_pixels
    return dataclasses.replace(convention, factor=factor, min_pixels=int(min_pixels), max_pixels=int(max_pixels))


def get_convention(name: str) -> Convention:
    """The convention called `name` (a `--coords` value); ConventionError listing the names otherwise."""
    try:
        return CONVENTIONS[name.strip().lower()]
    except KeyError:
        raise ConventionError(f"--coords must be one of {', '.join(CONVENTIONS)}, not {name!r}") from None


def convention_for(model_type: str | None, override: str | None = None) -> Convention:
    """The `--coords` override, else the family's declared convention, else canonical 0..1000."""
    if override:
        return get_convention(override)
    return CONVENTIONS[FAMILY_CONVENTIONS.get((model_type or "").lower(), CANONICAL.name)]
