"""Opening user images safely: one clear error for missing, unreadable, non-image or oversized files."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image

MAX_PIXELS = 64_000_000  # ~8000 x 8000; beyond this a "photo" is a decompression bomb or a mistake


def load_image(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image at `path` as RGB, fully decoded; ValueError with a one-line reason otherwise."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"image not found: {p}")
    if not p.is_file():
        raise ValueError(f"not a file: {p}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ValueError(f"image too large: {p} is {width}x{height} (limit {max_pixels:,} pixels)")
                im.load()
                return im.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"image too large: {p} ({e})") from e
    except (OSError, SyntaxError) as e:
        raise ValueError(f"cannot read image {p}: {type(e).__name__}: {e}") from e
