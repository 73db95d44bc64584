"""Concept parsing, the WorldGrounder (hand-drawn and generated scenes) and the GoldGrounder."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from vgt_agent import geometry
from vgt_agent.grounders import GoldGrounder, WorldGrounder, shapefit
from vgt_agent.sample import GoldObject
from vgt_agent.world.concepts import describe, parse_concept
from vgt_agent.world.palette import COLOURS, SIZES
from vgt_agent.world.storage import load_split, make_split

SIDE = 448
GREY = (225, 225, 220)

# --------------------------------------------------------------------------------------------------------
# Concept parsing
# --------------------------------------------------------------------------------------------------------

OBJECTS = [
    ("red", "circle", "large"), ("red", "square", "small"), ("blue", "circle", "medium"),
    ("blue", "star", "small"), ("green", "star", "large"), ("yellow", "ring", "medium"),
    ("purple", "hexagon", "medium"), ("orange", "triangle", "small"),
]


NOT_RED_BLUE = {"green", "yellow", "purple", "orange"}


def _hits(phrase: str) -> set[str]:
    concept = parse_concept(phrase)
    assert concept.ok, concept.error
    return {describe(c, s) for c, s, z in OBJECTS if concept.matches(c, s, z)}


@pytest.mark.parametrize(
    ("phrase", "expected"),
    [
        ("red circle", {"red circle"}),
        ("red circles", {"red circle"}),
        ("Red Circles.", {"red circle"}),
        ("blue shapes", {"blue circle", "blue star"}),
        ("triangle", {"orange triangle"}),
        ("the large green star", {"green star"}),
        ("the small green star", set()),
        ("stars", {"blue star", "green star"}),
        ("shapes that are not blue", {describe(c, s) for c, s, _ in OBJECTS if c != "blue"}),
        ("non-blue circles", {"red circle"}),
        ("circles that are not red", {"blue circle"}),
        ("objects", {describe(c, s) for c, s, _ in OBJECTS}),
        ("all yellow things", {"yellow ring"}),
        ("red and blue circles", {"red circle", "blue circle"}),
        ("red circles and blue stars", {"red circle", "blue star"}),
        ("circles or rings", {"red circle", "blue circle", "yellow ring"}),
        ("objects other than stars", {describe(c, s) for c, s, _ in OBJECTS if s != "star"}),
        ("shapes except red or blue ones", {describe(c, s) for c, s, _ in OBJECTS if c in NOT_RED_BLUE}),
        ("medium-sized shapes", {"blue circle", "yellow ring", "purple hexagon"}),
        ("big things", {"red circle", "green star"}),
        ("violet hexes", {"purple hexagon"}),
        ("donuts", {"yellow ring"}),
        ("discs", {"red circle", "blue circle"}),
        ("2 small red squares", {"red square"}),
    ],
)
def test_concept_table(phrase: str, expected: set[str]) -> None:
    assert _hits(phrase) == expected


def test_concept_plural_and_superlative() -> None:
    assert parse_concept("red circles").plural and not parse_concept("the red circle").plural
    assert parse_concept("all shapes").plural and not parse_concept("a star").plural
    largest = parse_concept("the largest blue shape")
    assert largest.extreme == "largest" and largest.matches("blue", "star", "small")
    items = [("a", 1), ("b", 3), ("c", 2)]
    assert largest.select(items, key=lambda i: (i[1],)) == [("b", 3)]
    assert parse_concept("smallest").select(items, key=lambda i: (i[1],)) == [("a", 1)]
    assert parse_concept("circles").select(items, key=lambda i: (i[1],)) == items


def test_concept_rank_along_an_axis() -> None:
    at = {"a": (500, 100), "b": (100, 900), "c": (300, 400)}
    items = list(at)
    for phrase, picked in (("leftmost circle", ["b"]), ("second leftmost circle", ["c"]), ("rightmost", ["a"]),
                           ("third topmost shape", ["b"]), ("second bottommost red shape", ["c"]),
                           ("third rightmost circle", ["b"])):
        concept = parse_concept(phrase)
        assert concept.ok and concept.select(items, key=lambda i: (0,), position=at.__getitem__) == picked, phrase
    assert parse_concept("fourth leftmost circle").unknown == ("fourth",)
    assert parse_concept("second circle").unknown == ("second",)  # an ordinal needs an order
    assert parse_concept("second leftmost circle").select(["a"], key=lambda i: (0,), position=at.__getitem__) == []
    with pytest.raises(ValueError, match="position"):
        parse_concept("leftmost circle").select(items, key=lambda i: (0,))


@pytest.mark.parametrize(
    ("phrase", "unknown"),
    [
        ("red dog", ("dog",)),
        ("the red circle on the left", ("on", "left")),
        ("grey lines", ("grey", "lines")),
        ("sdfkj qq", ("sdfkj", "qq")),
    ],
)
def test_unknown_words_are_named(phrase: str, unknown: tuple[str, ...]) -> None:
    concept = parse_concept(phrase)
    assert not concept.ok and concept.unknown == unknown
    assert all(f"'{w}'" in concept.error for w in unknown)
    assert not concept.matches("red", "circle", "small")


@pytest.mark.parametrize("phrase", ["", "   ", "???", "the", "a, an; the", None, 42])
def test_empty_or_garbage_concepts(phrase: object) -> None:
    concept = parse_concept(phrase)  # type: ignore[arg-type]
    assert not concept.ok and concept.error


# --------------------------------------------------------------------------------------------------------
# Hand-drawn scenes
# --------------------------------------------------------------------------------------------------------


def _radius(size: str) -> float:
    return SIZES[size] * SIDE / 2


def _vertices(n: int, cx: float, cy: float, r: float, start_deg: float, inner: float = 0.0):
    """Regular n-gon, or with `inner` a 2n-vertex star, in Pillow pixel-centre coordinates."""
    pts = []
    count = 2 * n if inner else n
    for i in range(count):
        a = math.radians(start_deg) + 2 * math.pi * i / count
        rad = r * inner if inner and i % 2 else r
        pts.append((cx - 0.5 + rad * math.cos(a), cy - 0.5 + rad * math.sin(a)))
    return pts


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, colour: str, size: str, cx: float, cy: float,
               angle: float = 0.0, background: tuple[int, int, int] = GREY) -> None:
    """Draw one world-style object by hand (not with the world generator)."""
    r, fill = _radius(size), COLOURS[colour]
    x, y = cx - 0.5, cy - 0.5
    if shape in ("circle", "ring"):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
        if shape == "ring":
            h = 0.55 * r
            draw.ellipse([x - h, y - h, x + h, y + h], fill=background)
    elif shape == "star":
        draw.polygon(_vertices(5, cx, cy, r, -90 + angle, inner=0.45), fill=fill)
    else:
        n = {"triangle": 3, "square": 4, "hexagon": 6}[shape]
        draw.polygon(_vertices(n, cx, cy, r, -90 + angle + (45 if n == 4 else 0)), fill=fill)


def canvas(texture: bool = False) -> Image.Image:
    if not texture:
        return Image.new("RGB", (SIDE, SIDE), GREY)
    rng = np.random.default_rng(7)
    pixels = np.full((SIDE, SIDE, 3), GREY, dtype=np.int16) + rng.integers(-12, 13, (SIDE, SIDE, 1))
    pixels[::16] -= 20  # stripes
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for i in range(6):  # grey distractor lines and dots
        draw.line([(10 + 70 * i, 5), (400 - 50 * i, 440)], fill=(150, 150, 150), width=2)
        draw.ellipse([30 + 60 * i, 300, 34 + 60 * i, 304], fill=(120, 120, 120))
    return image


def labels(result) -> list[str]:
    return [i.label for i in result]


@pytest.fixture(scope="module")
def grounder() -> WorldGrounder:
    return WorldGrounder()


def test_every_shape_and_size_on_a_plain_background(grounder: WorldGrounder) -> None:
    image = canvas()
    draw = ImageDraw.Draw(image)
    shapes = ["circle", "square", "triangle", "star", "hexagon", "ring"]
    for i, shape in enumerate(shapes):
        for j, size in enumerate(SIZES):
            draw_shape(draw, shape, list(COLOURS)[i], size, 50 + 70 * i, 70 + 120 * j, angle=4.0 * j)
    regions = grounder.segment(image)
    assert len(regions) == 18
    assert sorted((r.shape, r.size) for r in regions) == sorted((s, z) for s in shapes for z in SIZES)
    assert all(r.label == f"{r.colour} {r.shape}" and 0 < r.score <= 1 for r in regions)


def test_ring_hole_is_a_ring_not_a_circle(grounder: WorldGrounder) -> None:
    image = canvas()
    draw = ImageDraw.Draw(image)
    draw_shape(draw, "ring", "blue", "large", 150, 200)
    draw_shape(draw, "circle", "blue", "large", 300, 200)
    rings = grounder.ground(image, "blue ring")
    assert labels(rings) == ["blue ring"]
    mask = rings[0].mask
    assert ndimage.label(~mask)[1] == 2  # the hole is a second background component
    assert geometry.point_in_mask(*rings[0].point, mask)  # the point lies on the band, not in the hole
    assert labels(grounder.ground(image, "blue circles")) == ["blue circle"]


def test_partial_occlusion_keeps_shapes(grounder: WorldGrounder) -> None:
    image = canvas()
    draw = ImageDraw.Draw(image)
    # Each first object is partly covered by the second, drawn on top of it.
    draw_shape(draw, "circle", "red", "large", 110, 110)
    draw_shape(draw, "square", "blue", "medium", 150, 140)
    draw_shape(draw, "hexagon", "green", "large", 320, 110, angle=8)
    draw_shape(draw, "triangle", "yellow", "medium", 355, 70)
    draw_shape(draw, "star", "purple", "large", 110, 320)
    draw_shape(draw, "circle", "orange", "small", 75, 330)
    draw_shape(draw, "ring", "orange", "large", 320, 320)
    draw_shape(draw, "square", "purple", "small", 352, 300, angle=10)
    pixels = np.asarray(image)
    for phrase in ["red circle", "blue square", "green hexagon", "yellow triangle", "purple star",
                   "orange circle", "orange ring", "purple square"]:
        result = grounder.ground(image, phrase)
        assert len(result) == 1, phrase
        colour = COLOURS[phrase.split()[0]]
        exact = (pixels == colour).all(axis=2)
        assert geometry.mask_iou(result[0].mask, exact & result[0].mask) == 1.0
    assert len(grounder.ground(image, "objects")) == 8


def test_touching_objects_of_different_colours(grounder: WorldGrounder) -> None:
    image = canvas()
    draw = ImageDraw.Draw(image)
    r = _radius("medium")
    apothem = r * math.cos(math.pi / 4)
    draw_shape(draw, "square", "green", "medium", 200, 200)
    draw_shape(draw, "square", "red", "medium", 200 + 2 * apothem, 200)  # shares the green's right edge
    draw_shape(draw, "circle", "blue", "medium", 200, 200 + apothem + r)  # touches the green's bottom
    assert sorted(labels(grounder.ground(image, "shapes"))) == ["blue circle", "green square", "red square"]


def test_textured_background_and_distractors(grounder: WorldGrounder) -> None:
    image = canvas(texture=True)
    draw = ImageDraw.Draw(image)
    draw_shape(draw, "star", "orange", "medium", 120, 120, angle=-7)
    draw_shape(draw, "triangle", "purple", "small", 300, 150, angle=12)
    draw_shape(draw, "hexagon", "yellow", "small", 220, 380)
    found = sorted(labels(grounder.ground(image, "things")))
    assert found == ["orange star", "purple triangle", "yellow hexagon"]
    assert len(grounder.ground(image, "circles")) == 0


def test_instances_are_consistent_and_ordered(grounder: WorldGrounder) -> None:
    image = canvas()
    draw = ImageDraw.Draw(image)
    draw_shape(draw, "circle", "red", "small", 300, 60)
    draw_shape(draw, "circle", "red", "large", 100, 300)
    draw_shape(draw, "circle", "red", "medium", 60, 60)
    result = grounder.ground(image, "red circles")
    assert len(result) == 3
    keys = [(-i.score, i.box[1], i.box[0]) for i in result]
    assert keys == sorted(keys)
    assert result.presence == max(i.score for i in result)
    for inst in result:
        assert inst.box == geometry.mask_to_box(inst.mask)
        assert inst.point == geometry.mask_to_point(inst.mask)
        assert inst.mask.shape == (SIDE, SIDE) and inst.mask.dtype == bool
    largest = grounder.ground(image, "the largest red circle")
    assert len(largest) == 1 and largest[0].box[1] > 200
    smallest = grounder.ground(image, "smallest circle")
    assert len(smallest) == 1 and smallest[0].box[0] > 250
    assert len(grounder.ground(image, "the large red circle")) == 1
    ranked = [grounder.ground(image, f"{nth} leftmost red circle") for nth in ("", "second", "third")]
    assert [len(r) for r in ranked] == [1, 1, 1]
    assert [r[0].box[0] for r in ranked] == sorted(i.box[0] for i in result)
    assert [r[0].box[1] for r in (grounder.ground(image, f"{nth} topmost circle") for nth in ("", "third"))] == [
        min(i.box[1] for i in result), max(i.box[1] for i in result)]


def test_fit_finds_the_centre_of_a_hidden_object(grounder: WorldGrounder) -> None:
    image = canvas()
    draw = ImageDraw.Draw(image)
    draw_shape(draw, "circle", "red", "large", 150.3, 160.7)
    draw_shape(draw, "square", "blue", "medium", 185, 175)  # hides ~30% of the circle, centroid moves
    red = next(r for r in grounder.segment(image) if r.colour == "red")
    assert red.shape == "circle" and red.size == "large"
    cx, cy = red.fits[0].center  # the radius is fitted too, so the hidden side leaves ~1 px of play
    assert math.hypot(cx - 150.3, cy - 160.7) < 1.5 and abs(red.fits[0].radius - _radius("large")) < 1.0
    ys, xs = np.nonzero(red.mask)
    assert math.hypot(xs.mean() + 0.5 - 150.3, ys.mean() + 0.5 - 160.7) > 3.0


def test_regions_that_are_no_world_shape_stay_anonymous(grounder: WorldGrounder) -> None:
    image = canvas()
    ImageDraw.Draw(image).rectangle([50, 200, 400, 212], fill=COLOURS["green"])
    result = grounder.ground(image, "green shapes")
    assert labels(result) == ["green shape"] and result[0].score <= 0.05
    assert len(grounder.ground(image, "green squares")) == 0


def test_empty_image_and_unknown_concepts(grounder: WorldGrounder) -> None:
    empty = grounder.ground(canvas(), "red circles")
    assert len(empty) == 0 and empty.presence == 0.0 and empty.reason is None
    image = canvas()
    draw_shape(ImageDraw.Draw(image), "circle", "red", "small", 100, 100)
    unknown = grounder.ground(image, "red dog")
    assert len(unknown) == 0 and "'dog'" in unknown.reason and unknown.presence == 0.0
    assert grounder.ground(image, "").reason


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=40) | st.lists(st.sampled_from(
    ["red", "blue", "circle", "circles", "not", "and", "or", "the", "largest", "shapes", "left", "", "-"]
)).map(" ".join))
def test_any_text_never_crashes(grounder: WorldGrounder, text: str) -> None:
    image = canvas()
    draw_shape(ImageDraw.Draw(image), "circle", "red", "small", 100, 100)
    result = grounder.ground(image, text)
    assert result.concept == text
    assert (result.reason is None) == parse_concept(text).ok
    assert all(0 < i.score <= 1 for i in result)


def test_segmentation_cache_is_reused_and_bounded() -> None:
    g = WorldGrounder(cache_size=2)
    images = [canvas() for _ in range(3)]
    for k, image in enumerate(images):
        draw_shape(ImageDraw.Draw(image), "star", "green", "medium", 100 + 100 * k, 100)
    for phrase in ["green star", "stars", "objects", "green shapes", "red circle"]:
        g.ground(images[0], phrase)
    assert g.segmentations == 1
    g.ground(images[0].copy(), "stars")  # same pixels, another object: still cached
    assert g.segmentations == 1
    g.ground(images[1], "stars")
    g.ground(images[2], "stars")
    assert g.segmentations == 3
    g.ground(images[0], "stars")  # evicted (least recently used) by the bound of 2
    assert g.segmentations == 4


def test_a_concept_fits_only_the_colours_it_can_match() -> None:
    image = canvas()
    draw = ImageDraw.Draw(image)
    for k, (colour, shape) in enumerate([("red", "circle"), ("red", "star"), ("blue", "square"), ("green", "ring")]):
        draw_shape(draw, shape, colour, "medium", 80 + 90 * k, 150)
    lazy = WorldGrounder()
    assert sorted(labels(lazy.ground(image, "red shapes"))) == ["red circle", "red star"]
    (seen,) = lazy._cache.values()
    assert {c.colour for c in seen.components if c.region is not None} == {"red"}
    eager = WorldGrounder()
    eager.segment(image)  # everything fitted up front
    for phrase in ["circles", "shapes that are not blue", "largest shape", "blue or green shapes", "red star"]:
        got, want = lazy.ground(image, phrase), eager.ground(image, phrase)
        assert [(i.label, i.box, i.point, i.score) for i in got] == [(i.label, i.box, i.point, i.score) for i in want]
    assert [r.label for r in lazy.segment(image)] == [r.label for r in eager.segment(image)]


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (3, 2), (40, 33)])
def test_fit_evidence_morphology_matches_scipy(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    box = np.ones((3, 3), bool)
    for density in (0.2, 0.6, 0.95):
        mask = rng.random(shape) < density
        assert np.array_equal(shapefit._dilate(mask), ndimage.binary_dilation(mask, structure=box))
        assert np.array_equal(shapefit._erode(mask), ndimage.binary_erosion(mask, structure=box, border_value=0))


def test_non_world_images_do_not_crash(grounder: WorldGrounder) -> None:
    rng = np.random.default_rng(0)
    palette = np.array(list(COLOURS.values()) + [GREY] * 6, dtype=np.uint8)
    pixels = palette[rng.integers(len(palette), size=(64, 96))]
    pixels[10:40, 20:60] = COLOURS["red"]
    regions = grounder.segment(Image.fromarray(pixels))
    assert any(r.colour == "red" and r.area >= 30 * 40 for r in regions)
    for region in regions:
        assert region.box == geometry.mask_to_box(region.mask) and 0 < region.score <= 1
    confetti = grounder.ground(Image.fromarray(pixels), "shapes")  # no flat-shapes scene: said, not guessed
    assert len(confetti) == 0 and "does not look like a flat-shapes scene" in confetti.reason
    assert grounder.ground(Image.new("L", (30, 20), 128), "objects").instances == []


# --------------------------------------------------------------------------------------------------------
# Generated splits and the GoldGrounder
# --------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = tmp_path_factory.mktemp("splits")
    out = []
    for split, n in (("world-countqa", 20), ("world-tally", 6), ("world-train", 10)):
        make_split(root / split, split, n=n)
        out += list(load_split(root / split))
    return out


def _matched(gold: list[np.ndarray], pred: list[np.ndarray]) -> int:
    if not gold or not pred:
        return 0
    iou = geometry.mask_iou_matrix(np.stack(gold), np.stack(pred))
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return int((iou[rows, cols] >= 0.9).sum())


def test_world_grounder_meets_targets_on_generated_splits(samples: list) -> None:
    g = WorldGrounder()
    gold_total = pred_total = matched = 0
    occluded = 0
    for sample in samples:
        image = sample.load_image()
        objects = sample.meta["objects"]
        occluded += sum(o["visible_fraction"] < 1 for o in objects)
        masks = [geometry.decode_rle(o["rle"]) for o in objects]
        queries = {f"{o['colour']} {o['shape']}" for o in objects}
        queries |= {f"{o['colour']} shapes" for o in objects}
        for q in queries:
            colour, kind = q.split()
            gold = [m for o, m in zip(objects, masks, strict=True)
                    if o["colour"] == colour and kind in ("shapes", o["shape"])]
            pred = [i.mask for i in g.ground(image, q)]
            gold_total, pred_total = gold_total + len(gold), pred_total + len(pred)
            matched += _matched(gold, pred)
    assert occluded >= 10  # the check covers occlusion, not only clean scenes
    assert matched / gold_total >= 0.98 and matched / pred_total >= 0.98


def test_gold_grounder_returns_the_scene_graph_objects(samples: list) -> None:
    for sample in samples[:8]:
        gold = GoldGrounder(sample)
        image = sample.load_image()
        objects = sample.meta["objects"]
        for o in objects:
            result = gold.ground(image, f"{o['colour']} {o['shape']}s")
            expected = [x for x in objects if (x["colour"], x["shape"]) == (o["colour"], o["shape"])]
            assert len(result) == len(expected) and result.presence == 1.0
            got = sorted(tuple(i.box) for i in result)
            assert got == sorted(tuple(float(v) for v in x["box"]) for x in expected)
            for inst in result:
                assert inst.point == geometry.mask_to_point(inst.mask) and inst.score == 1.0
        everything = gold.ground(image, "objects")
        assert len(everything) == len(objects)
        assert len(gold.ground(image, "red dog")) == 0 and gold.ground(image, "red dog").reason


def test_gold_and_world_grounders_agree(samples: list) -> None:
    world = WorldGrounder()
    for sample in samples[:6]:
        gold, image = GoldGrounder(sample), sample.load_image()
        for phrase in ["shapes that are not blue", "circles", "large shapes", "red or green stars", "rings"]:
            a, b = gold.ground(image, phrase), world.ground(image, phrase)
            assert len(a) == len(b) == _matched([i.mask for i in a], [i.mask for i in b]), phrase


def test_gold_grounder_from_named_gold_objects_only() -> None:
    circle = np.zeros((40, 50), dtype=bool)
    circle[5:15, 5:15] = True
    objects = [
        GoldObject("red circle", rle=geometry.encode_rle(circle)),
        GoldObject("dog", box=(20.0, 10.0, 30.0, 30.0)),
        GoldObject("cat"),  # neither mask nor box: cannot be grounded
    ]
    gold = GoldGrounder(gold_objects=objects)
    assert gold.size == (50, 40)
    reds = gold.ground(None, "red circles")
    assert len(reds) == 1 and np.array_equal(reds[0].mask, circle) and reds[0].label == "red circle"
    dogs = gold.ground(Image.new("RGB", (50, 40)), "the dogs")
    assert len(dogs) == 1 and dogs[0].box == (20.0, 10.0, 30.0, 30.0)
    assert len(gold.ground(None, "cat")) == 0
    assert len(gold.ground(None, "blue squares")) == 0
    wrong_size = gold.ground(Image.new("RGB", (100, 80)), "red circle")
    assert len(wrong_size) == 0 and "100x80" in wrong_size.reason
