"""Coordinate conventions: Qwen2.5-VL's resize arithmetic against transformers' own processor, round trips per
convention, the `<obj>` text rewrite (and what it must leave alone), and rewards scored in canonical 0..1000."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image, ImageDraw
from transformers import Qwen2VLImageProcessor
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

from vgt_agent.format import parse
from vgt_agent.format.coord_text import from_canonical_text, to_canonical_text
from vgt_agent.geometry.conventions import (
    CANONICAL,
    CONVENTIONS,
    QWEN_MAX_PIXELS,
    QWEN_MIN_PIXELS,
    ConventionError,
    convention_for,
    get_convention,
    smart_resize,
)
from vgt_agent.grounding_scores import ReferenceObject, sample_grounding_score
from vgt_agent.training.references import references_json
from vgt_agent.training.rewards import grounding_reward

QWEN = get_convention("qwen2.5-vl-pixels")
SIZES = [(1400, 1050), (640, 480), (1, 1), (37, 3), (3000, 40), (8000, 6000), (199, 7001), (28, 28), (1023, 767)]


@pytest.mark.parametrize(("min_pixels", "max_pixels"), [(QWEN_MIN_PIXELS, QWEN_MAX_PIXELS), (3136, 1003520),
                                                        (256 * 28 * 28, 1280 * 28 * 28)])
def test_smart_resize_is_transformers_arithmetic(min_pixels, max_pixels):
    rng = random.Random(0)
    sizes = SIZES + [(rng.randint(1, 9000), rng.randint(1, 9000)) for _ in range(400)]
    for width, height in sizes:
        if max(width, height) / min(width, height) > 200:
            with pytest.raises(ConventionError, match="aspect ratio"):
                smart_resize(height, width, 28, min_pixels, max_pixels)
            continue
        assert smart_resize(height, width, 28, min_pixels, max_pixels) == hf_smart_resize(
            height, width, factor=28, min_pixels=min_pixels, max_pixels=max_pixels), (width, height)


@pytest.mark.parametrize(("width", "height"), [(1400, 1050), (333, 501), (4000, 3000)])
def test_qwen_frame_is_what_the_real_processor_feeds_the_model(width, height):
    """Qwen2.5-VL's processor (the Qwen2-VL image processor it uses) on a real image: grid x 14 px = the frame."""
    processor = Qwen2VLImageProcessor(min_pixels=QWEN_MIN_PIXELS, max_pixels=QWEN_MAX_PIXELS)
    grid = processor(images=Image.new("RGB", (width, height), "gray"), return_tensors="np")["image_grid_thw"][0]
    assert QWEN.frame(width, height) == (grid[2] * processor.patch_size, grid[1] * processor.patch_size)


def canonical_samples(rng: np.random.Generator, n: int) -> list[tuple[int, ...]]:
    points = [tuple(int(v) for v in rng.integers(0, 1001, 2)) for _ in range(n)]
    boxes = []
    for _ in range(n):
        x1, x2 = sorted(rng.choice(1001, 2, replace=False))
        y1, y2 = sorted(rng.choice(1001, 2, replace=False))
        boxes.append((int(x1), int(y1), int(x2), int(y2)))
    return points + boxes


@pytest.mark.parametrize("name", ["norm1000", "unit", "percent"])
def test_fixed_range_conventions_round_trip_exactly(name):
    convention, rng = get_convention(name), np.random.default_rng(1)
    for width, height in SIZES[:6]:
        for canonical in canonical_samples(rng, 100):
            shown = convention.from_canonical(canonical, width, height)
            assert convention.in_range(shown, width, height)
            assert convention.to_canonical(shown, width, height) == canonical


def test_qwen_pixels_round_trip_within_one_resized_pixel():
    """0..1000 -> resized pixels -> 0..1000 loses at most half a resized pixel plus half a unit; resized pixels
    -> 0..1000 -> pixels is exact whenever a side has fewer than 1000 resized pixels."""
    rng = np.random.default_rng(2)
    for width, height in [(1400, 1050), (640, 480), (4000, 3000), (300, 900)]:
        fx, fy = QWEN.frame(width, height)
        tolerance = np.array([500 / fx, 500 / fy] * 2) + 0.5 + 1e-9  # half a resized pixel, then rounding
        for canonical in canonical_samples(rng, 100):
            back = QWEN.to_canonical(QWEN.from_canonical(canonical, width, height), width, height)
            error = np.abs(np.subtract(back, canonical))
            assert np.all(error <= tolerance[: len(canonical)]), (width, height, canonical, back)
        if fx < 1000 and fy < 1000:
            for _ in range(100):
                pixel = (int(rng.integers(0, fx + 1)), int(rng.integers(0, fy + 1)))
                assert QWEN.from_canonical(QWEN.to_canonical(pixel, width, height), width, height) == pixel


def test_text_rewrite_touches_only_obj_coordinates():
    percent = get_convention("percent")
    text = ("<think>At [10, 20] I see <obj> red cup | [50.0, 25.5]; [100, 100] </obj>, then "
            "<obj> big box | [10,10,20,20] </obj> and <ground> mug </ground>.</think> \\boxed{2}")
    out = to_canonical_text(text, percent, 640, 480)
    assert out == ("<think>At [10, 20] I see <obj> red cup | [500, 255]; [1000, 1000] </obj>, then "
                   "<obj> big box | [100, 100, 200, 200] </obj> and <ground> mug </ground>.</think> \\boxed{2}")
    assert [g.coords for g in parse(out).groundings] == [((500, 255), (1000, 1000)), ((100, 100, 200, 200),)]
    assert from_canonical_text(out, percent, 640, 480) == (
        "<think>At [10, 20] I see <obj> red cup | [50.0, 25.5]; [100.0, 100.0] </obj>, then "
        "<obj> big box | [10.0, 10.0, 20.0, 20.0] </obj> and <ground> mug </ground>.</think> \\boxed{2}")
    assert to_canonical_text(text, CANONICAL, 640, 480) is text


@pytest.mark.parametrize("bad", ["[120.5, 20]", "[-1, 5]", "[1, 2, 3]", "[a, b]", "[nan, 1]", "[1e999, 2]",
                                 "[60, 60, 50, 70]", "[]"])
def test_text_rewrite_leaves_bad_brackets_for_the_parser(bad):
    """Out of range (percent > 100), negative, wrong arity, not numbers, inverted: left as written, so the
    parser still flags the tag rather than a clamp turning it into a valid one."""
    text = f"<think><obj> cup | {bad} </obj></think>"
    assert to_canonical_text(text, get_convention("percent"), 640, 480) == text


def test_families_declare_their_convention_and_coords_overrides():
    assert convention_for("qwen2_5_vl") is QWEN
    assert convention_for("qwen3_vl").name == convention_for("gemma3").name == "norm1000"
    assert convention_for("molmo").name == "percent"
    assert convention_for("some_new_vlm") is CANONICAL
    assert convention_for("qwen2_5_vl", override="norm1000") is CANONICAL
    assert set(CONVENTIONS) == {"norm1000", "unit", "percent", "qwen2.5-vl-pixels"}
    with pytest.raises(ConventionError, match="--coords must be one of norm1000, unit, percent, qwen2.5-vl-pixels"):
        convention_for("gemma3", override="pixels")


def scene() -> tuple[np.ndarray, str]:
    """A 1400x1050 photo-sized image with one cup drawn as a filled rectangle, and its reference payload.

    Qwen2.5-VL sees it resized to 1400 x 1064 (1050 is not a multiple of 28), so its pixel coordinates are
    not the original image's."""
    image = Image.new("L", (1400, 1050), 0)
    ImageDraw.Draw(image).rectangle((280, 0, 699, 524), fill=255)  # PIL's rectangle includes both corners
    mask = np.asarray(image) > 0
    payload = references_json([{"name": "cup", "rles": [_rle(mask)]}], 1050, 1400)
    return mask, payload


def _rle(mask: np.ndarray) -> dict:
    from vgt_agent.geometry import encode_rle

    return encode_rle(mask)


def test_a_correct_qwen_pixel_box_scores_one_and_read_as_0_1000_would_not():
    mask, payload = scene()
    assert hf_smart_resize(1050, 1400, min_pixels=QWEN_MIN_PIXELS, max_pixels=QWEN_MAX_PIXELS) == (1064, 1400)
    # the cup's box [280, 0, 700, 525) in the original, as Qwen2.5-VL writes it on its 1400 x 1064 input
    written = "<think>The cup: <obj> cup | [280, 0, 700, 532] </obj>.</think> \\boxed{1}"
    canonical = to_canonical_text(written, QWEN, 1400, 1050)
    assert "[200, 0, 500, 500]" in canonical
    converted, raw = grounding_reward([canonical, written], [payload, payload])
    assert converted == pytest.approx(1.0)
    assert raw < 0.5  # the same numbers taken as 0..1000: the IoU-stuck-low of a coordinate mismatch
    reference = ReferenceObject("cup", mask[None])
    assert sample_grounding_score(parse(canonical).groundings, [reference], canonical) == pytest.approx(1.0)


def test_molmo_percent_points_score_after_conversion():
    mask, payload = scene()
    written = "<think><obj> cup | [35.0, 25.0] </obj></think> \\boxed{1}"  # the cup's middle, in 0..100
    converted, raw = grounding_reward([to_canonical_text(written, get_convention("percent"), 1400, 1050), written],
                                      [payload, payload])
    assert converted == pytest.approx(1.0) and raw == 0.0
