"""`images.load_image` / `to_rgb` beyond the faults: damaged metadata, float and 32-bit grayscale, bombs."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgt_agent.images import load_image, to_rgb


def test_a_damaged_exif_block_is_ignored_silently(tmp_path: Path) -> None:
    """Random bytes in a JPEG's EXIF: the pixels still load, unrotated, with no warning on stderr."""
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "camera"
    rng = random.Random(0)
    for i in range(100):
        raw = bytearray(exif.tobytes())
        for _ in range(rng.randint(1, 6)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        path = tmp_path / f"{i}.jpg"
        Image.new("RGB", (8, 4), (200, 0, 0)).save(path, exif=bytes(raw))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            image = load_image(path)
        assert image.mode == "RGB" and image.size in ((8, 4), (4, 8))


@pytest.mark.parametrize(("mode", "values", "expected"), [
    ("F", [0.0, 0.5, 1.0], [0, 128, 255]),  # floats in 0..1: scaled by 255
    ("F", [-2.0, 0.0, 2.0], [0, 128, 255]),  # other floats: stretched
    ("I", [0, 32896, 65535], [0, 128, 255]),  # 32-bit holding 16-bit values: as 16-bit
    ("I", [-100, 0, 100], [0, 128, 255]),  # other 32-bit: stretched
])
def test_deep_grayscale_is_scaled_not_clipped(mode: str, values: list[float], expected: list[int]) -> None:
    array = np.array([values], dtype=np.float32 if mode == "F" else np.int32)
    rgb = np.asarray(to_rgb(Image.fromarray(array, mode)))
    assert rgb[0, :, 0].tolist() == expected and (rgb[..., 0] == rgb[..., 2]).all()


def test_a_decompression_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("L", (3000, 3000)).save(path)
    with pytest.raises(ValueError, match="too large"):
        load_image(path, max_pixels=1_000_000)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_record_size_is_the_decoded_size_for_every_exif_orientation(orientation: int, tmp_path: Path) -> None:
    from vgt_agent.store import ImageRecord

    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (30, 10), (10, 200, 10)).save(path, exif=exif.tobytes())
    record = ImageRecord.from_path(path)
    assert (record.width, record.height) == load_image(path).size == ((10, 30) if orientation >= 5 else (30, 10))
