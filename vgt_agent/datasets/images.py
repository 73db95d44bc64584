"""Turning the many ways datasets store images into PIL images or file paths.

Hub datasets embed images as decoded PIL images, `{"bytes", "path"}` dicts (undecoded parquet), base64
strings (EmbSpatial's JSON) or not at all (VSR, SpatialMQA, PixMo-Count point at COCO / web URLs). The
last kind is looked up in one predictable folder so a user can fetch the files once and reuse them.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any

from PIL import Image

from vgt_agent.home import vgt_home


def image_dir(dataset: str) -> Path:
    """Where images of a dataset that ships no pixels are expected: `$VGT_HOME/images/<dataset>`."""
    return vgt_home() / "images" / dataset


def decode_image(value: Any) -> Image.Image | None:
    """A PIL image from an embedded value (PIL, bytes, base64 str, {"bytes","path"} dict); None if absent.

    A plain string that is not base64 image data is treated as absent (it is a file name, handled by the
    caller), so callers can pass whatever the column holds.
    """
    if value is None:
        return None
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):
        if value.get("bytes"):
            return decode_image(value["bytes"])
        if value.get("path") and Path(value["path"]).is_file():
            with Image.open(value["path"]) as im:
                im.load()
                return im
        return None
    if isinstance(value, (bytes, bytearray)):
        im = Image.open(io.BytesIO(value))
        im.load()
        return im
    if isinstance(value, str) and len(value) > 256:
        try:
            data = base64.b64decode(
                value.split(",", 1)[-1] if value.startswith("data:") else value, validate=True
            )
        except (binascii.Error, ValueError):
            return None
        return decode_image(data)
    return None


def first_image(value: Any) -> Image.Image | None:
    """The first image of a list-valued image column (The Cauldron's `images`), or a single image."""
    if isinstance(value, (list, tuple)):
        return decode_image(value[0]) if value else None
    return decode_image(value)


def external_image_path(directory: Path, file_name: str) -> Path:
    """Where a named (not embedded) image is: `directory/file_name`, or a same-stem file of another type.

    The returned path may not exist yet; `Sample.load_image` then fails naming it, which tells the user
    exactly which file to fetch.
    """
    path = directory / file_name
    if path.exists():
        return path
    stem = Path(file_name).stem
    if directory.is_dir():
        for candidate in sorted(directory.glob(f"{stem}.*")):
            return candidate
    return path
