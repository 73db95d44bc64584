"""Opening user images safely and as a viewer shows them: the one way vgt turns an image file into pixels.

A model, a grounder, a stored image record and a drawn picture must all see the same upright RGB image,
or points land in the wrong frame. So every decoder goes through `to_rgb`: EXIF orientation applied, the
first frame of an animation, 16-bit and float grayscale scaled to 8 bits (not clipped to white), CMYK
converted (through its embedded ICC profile when there is one), and transparency flattened on white.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageCms, ImageOps

MAX_PIXELS = 64_000_000  # ~8000 x 8000; beyond this a "photo" is a decompression bomb or a mistake
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_SRGB = ImageCms.createProfile("sRGB")


def _to_8_bits(image: Image.Image) -> Image.Image:
    """Grayscale deeper than 8 bits as 8-bit "L": 16-bit values scaled by 255/65535 as a viewer does; 32-bit
    integers that stay within 16 bits likewise, others stretched min..max; floats in 0..1 scaled by 255,
    others stretched."""
    values = np.asarray(image).astype(np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode.startswith("I;16") or (image.mode == "I" and low >= 0 and high <= 65535):
        scaled = values / 257
    elif image.mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255
    else:
        scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
    return Image.fromarray(np.clip(np.round(scaled), 0, 255).astype(np.uint8), "L")


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if icc:
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(image, profile, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: the plain conversion below
    return image.convert("RGB")


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; a broken EXIF block is ignored, as viewers ignore it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # PIL's "Corrupt EXIF data" notes, on stderr otherwise
            return ImageOps.exif_transpose(image) or image
    except (OSError, ValueError, SyntaxError, TypeError, KeyError, struct.error):
        return image


def upright_size(image: Image.Image) -> tuple[int, int]:
    """The (width, height) `to_rgb` gives an opened image, from its header alone (EXIF orientations 5-8 turn
    it a quarter): what an image record stores without decoding the pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            orientation = image.getexif().get(ExifTags.Base.Orientation)
    except (OSError, ValueError, SyntaxError, TypeError, KeyError, struct.error):
        orientation = None
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def to_rgb(image: Image.Image) -> Image.Image:
    """An opened image as a new RGB image, the way a viewer shows it (see the module docstring); an animation
    is left at its first frame."""
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    image = _upright(image)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _to_8_bits(image)
    elif image.mode == "CMYK":
        image = _cmyk_to_rgb(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat.alpha_composite(rgba)
        return flat.convert("RGB")
    return image.convert("RGB")


def load_image(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image at `path` as upright RGB (`to_rgb`), fully decoded; ValueError with a one-line reason otherwise."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"image not found: {p}")
    if not p.is_file():
        raise ValueError(f"not a file: {p}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # PIL's notes on damaged metadata: the pixels are read
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ValueError(f"image too large: {p} is {width}x{height} (limit {max_pixels:,} pixels)")
                im.load()
                return to_rgb(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"image too large: {p} ({e})") from e
    except (OSError, SyntaxError) as e:
        raise ValueError(f"cannot read image {p}: {type(e).__name__}: {e}") from e
