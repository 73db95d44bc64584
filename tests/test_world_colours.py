"""Colour naming: CIELAB against scikit-image, names people give common shades, jittered shades that name back
through JPEG and blending."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from vgt_agent.world import colours
from vgt_agent.world.colours import NAMES, NONE, jitter_shade, name_colour, name_colours, name_pixels
from vgt_agent.world.palette import COLOURS


def test_rgb_to_lab_matches_scikit_image() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (500, 3), dtype=np.uint8)
    assert np.abs(colours.rgb_to_lab(rgb) - rgb2lab(rgb[None])[0]).max() < 0.02
    assert colours.rgb_to_lab(rgb.reshape(20, 25, 3)).shape == (20, 25, 3)
    lab = colours.rgb_to_lab(np.array([255, 255, 255]))
    assert abs(lab[0] - 100) < 1e-3 and abs(lab[1]) < 1e-2 and abs(lab[2]) < 1e-2


def test_oklab_round_trips() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (500, 3))
    assert np.abs(colours.oklab_to_rgb(colours.rgb_to_oklab(rgb)) - rgb).max() < 1e-6


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((30, 60, 200), "blue"), ((50, 90, 230), "blue"), ((0, 0, 255), "blue"), ((0, 0, 139), "blue"),
        ((65, 105, 225), "blue"), ((100, 149, 237), "blue"), ((255, 0, 0), "red"), ((139, 0, 0), "red"),
        ((165, 42, 42), "red"), ((0, 128, 0), "green"), ((0, 255, 0), "green"), ((34, 139, 34), "green"),
        ((255, 255, 0), "yellow"), ((255, 215, 0), "yellow"), ((255, 165, 0), "orange"),
        ((255, 140, 0), "orange"), ((128, 0, 128), "purple"), ((148, 0, 211), "purple"),
        ((128, 0, 255), "purple"),
        # Not a named colour: greys, whites, creams, pale tints, and hues between the names.
        ((211, 211, 211), None), ((128, 128, 128), None), ((245, 245, 220), None), ((255, 253, 208), None),
        ((240, 230, 200), None), ((200, 220, 240), None), ((255, 192, 203), None), ((0, 255, 255), None),
        ((0, 128, 128), None), ((255, 105, 180), None), ((0, 0, 0), None), ((255, 255, 255), None),
    ],
)
def test_names_people_give(rgb: tuple[int, int, int], name: str | None) -> None:
    assert name_colour(rgb) == name


def test_palette_names_itself_and_arrays_keep_their_shape() -> None:
    rgb = np.array([[COLOURS[n] for n in NAMES]] * 2)
    index, distance = name_colours(rgb)
    assert index.shape == distance.shape == (2, len(NAMES))
    assert (index == np.arange(len(NAMES))).all() and (distance < 1e-6).all()
    index, distance = name_colours(np.array([[128, 128, 128]]))
    assert index[0] == NONE and np.isinf(distance[0])


def test_pixel_table_agrees_with_exact_naming_on_palette_and_greys() -> None:
    image = np.zeros((len(NAMES) + 3, 8, 3), dtype=np.uint8)
    for i, n in enumerate(NAMES):
        image[i] = COLOURS[n]
    image[len(NAMES):] = [[225, 225, 220]], [[245, 245, 245]], [[200, 200, 205]]
    want, _ = name_colours(image)
    assert np.array_equal(name_pixels(image), want)
    assert (want[len(NAMES):] == NONE).all()


@pytest.mark.parametrize("name", NAMES)
def test_jittered_shades_name_back_with_margin(name: str) -> None:
    rng = np.random.default_rng(3)
    shades = np.array([jitter_shade(rng, name) for _ in range(200)])
    assert len({tuple(s) for s in shades}) > 150  # really jittered
    spread = np.ptp(colours.rgb_to_lab(shades), axis=0)
    assert spread[0] > 5 and np.hypot(*spread[1:]) > 10  # in lightness and in hue/chroma
    index, distance = name_colours(shades)
    assert (index == NAMES.index(name)).all()
    assert (distance <= colours.REJECT_DEGREES - colours.HUE_MARGIN).all()
    # 70% shade on a light grey background (an anti-aliased edge pixel) still names back.
    blend = np.rint(0.7 * shades + 0.3 * np.array([235, 235, 235]))
    assert (name_colours(blend)[0] == NAMES.index(name)).all()


def test_jittered_shades_survive_jpeg() -> None:
    rng = np.random.default_rng(4)
    tiles = np.zeros((8 * 16, 6 * 16, 3), dtype=np.uint8)
    names = [[NAMES[(r + c) % len(NAMES)] for c in range(6)] for r in range(8)]
    for r in range(8):
        for c in range(6):
            tiles[16 * r : 16 * r + 16, 16 * c : 16 * c + 16] = jitter_shade(rng, names[r][c])
    buffer = io.BytesIO()
    Image.fromarray(tiles).save(buffer, format="JPEG", quality=60)
    decoded = np.asarray(Image.open(buffer).convert("RGB"))
    got = name_pixels(decoded)
    for r in range(8):
        for c in range(6):
            core = got[16 * r + 4 : 16 * r + 12, 16 * c + 4 : 16 * c + 12]
            assert (core == NAMES.index(names[r][c])).mean() > 0.95


def test_jitter_is_seeded_and_rejects_unknown_names() -> None:
    a = [jitter_shade(np.random.default_rng(9), "green") for _ in range(3)]
    b = [jitter_shade(np.random.default_rng(9), "green") for _ in range(3)]
    assert a == b
    with pytest.raises(ValueError, match="unknown colour 'pink'"):
        jitter_shade(np.random.default_rng(0), "pink")


def test_naming_agrees_with_lab_hue_order_on_scikit_image_shades() -> None:
    """Shades made by another library (scikit-image's CIELAB -> sRGB), at each name's own CIELAB hue and a range of
    lightness and chroma, name back."""
    for name in NAMES:
        lab = rgb2lab(np.array([[COLOURS[name]]], dtype=np.uint8))[0, 0]
        hue = np.arctan2(lab[2], lab[1])
        chroma = np.hypot(lab[1], lab[2])
        grid = [(lab[0] + dl, chroma * k) for dl in (-8, 0, 8) for k in (0.8, 1.0)]
        shades = np.array([lab2rgb(np.array([[[L, c * np.cos(hue), c * np.sin(hue)]]]))[0, 0] for L, c in grid])
        rgb = np.rint(np.clip(shades, 0, 1) * 255)
        assert (name_colours(rgb)[0] == NAMES.index(name)).all(), name
