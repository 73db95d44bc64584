"""Behaviour of vgt_agent.geometry on drawn masks, hand-computed cases and brute-force references."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.ndimage import distance_transform_edt

from vgt_agent.geometry import (
    NORM,
    PointMatch,
    box_iou,
    box_iou_matrix,
    decode_rle,
    encode_rle,
    mask_iou,
    mask_iou_matrix,
    mask_to_box,
    mask_to_point,
    masks_to_boxes,
    match_points_to_masks,
    norm_from_pixel_box,
    norm_from_pixel_boxes,
    norm_from_pixel_point,
    norm_from_pixel_points,
    pixel_from_norm_box,
    pixel_from_norm_boxes,
    pixel_from_norm_point,
    pixel_from_norm_points,
    point_in_mask,
    points_in_masks,
    rle_area,
    union_box_iou,
)
from vgt_agent.geometry import masks as geometry_masks

SIZES = [(448, 448), (640, 480), (37, 1001)]  # (width, height)


# ---------------------------------------------------------------------------------------------- drawing


def blank(h: int = 40, w: int = 40) -> np.ndarray:
    return np.zeros((h, w), dtype=bool)


def rect(h: int, w: int, c0: int, r0: int, c1: int, r1: int) -> np.ndarray:
    """Mask with pixels cols c0..c1-1, rows r0..r1-1 set."""
    m = blank(h, w)
    m[r0:r1, c0:c1] = True
    return m


def ring(h: int = 40, w: int = 40, outer: int = 15, inner: int = 11) -> np.ndarray:
    rr, cc = np.mgrid[:h, :w]
    d2 = (rr - h / 2 + 0.5) ** 2 + (cc - w / 2 + 0.5) ** 2
    return (d2 <= outer**2) & (d2 > inner**2)


def l_shape(h: int = 40, w: int = 40) -> np.ndarray:
    m = blank(h, w)
    m[5:35, 5:11] = True  # vertical stroke
    m[29:35, 5:35] = True  # horizontal foot
    return m


def c_shape(h: int = 40, w: int = 40) -> np.ndarray:
    m = blank(h, w)
    m[5:35, 5:11] = True  # spine
    m[5:11, 5:35] = True  # top arm
    m[29:35, 5:35] = True  # bottom arm
    return m


def centroid_pixel(mask: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(mask)
    return int(round(cols.mean())), int(round(rows.mean()))


# ---------------------------------------------------------------------------------------------- normalisation


def test_norm_known_values() -> None:
    assert NORM == 1000
    assert norm_from_pixel_point(0, 0, 448, 448) == (0, 0)
    assert norm_from_pixel_point(448, 448, 448, 448) == (1000, 1000)
    assert norm_from_pixel_point(320, 120, 640, 480) == (500, 250)
    assert norm_from_pixel_point(-5, 2000, 640, 480) == (0, 1000)  # clamped
    assert pixel_from_norm_point(500, 250, 640, 480) == (320.0, 120.0)
    assert pixel_from_norm_point(1000, 1000, 37, 1001) == (37.0, 1001.0)
    assert pixel_from_norm_box((0, 0, 1000, 1000), 640, 480) == (0.0, 0.0, 640.0, 480.0)
    assert norm_from_pixel_box((64, 48, 320, 240), 640, 480) == (100, 100, 500, 500)


def test_norm_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        norm_from_pixel_point(1, 1, 0, 10)
    with pytest.raises(ValueError):
        norm_from_pixel_point(float("nan"), 1, 10, 10)
    with pytest.raises(ValueError):
        norm_from_pixel_box((5, 0, 4, 1), 10, 10)
    with pytest.raises(ValueError):
        norm_from_pixel_boxes([[5, 0, 4, 1]], 10, 10)
    with pytest.raises(ValueError):
        norm_from_pixel_points([[1, 2, 3]], 10, 10)


def test_norm_box_widens_collapsed_boxes_inside_range() -> None:
    # A 0.1-pixel box on a 4000-pixel image rounds to one value: it must still be a valid tag.
    assert norm_from_pixel_box((0, 0, 0.1, 0.1), 4000, 4000) == (0, 0, 1, 1)
    assert norm_from_pixel_box((3999.9, 3999.9, 4000, 4000), 4000, 4000) == (999, 999, 1000, 1000)
    assert norm_from_pixel_box((2000, 10, 2000.5, 10.5), 4000, 4000) == (500, 2, 501, 3)
    assert norm_from_pixel_box((5, 5, 5, 5), 10, 10) == (500, 500, 501, 501)  # zero-area input too
    got = norm_from_pixel_boxes([[0, 0, 0.1, 0.1], [3999.9, 3999.9, 4000, 4000], [5, 5, 5, 5]], 4000, 4000)
    assert got.tolist() == [[0, 0, 1, 1], [999, 999, 1000, 1000], [1, 1, 2, 2]]
    assert got.dtype == np.int64


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_norm_round_trip_of_every_pixel_centre(width: int, height: int) -> None:
    """A pixel centre survives pixel -> norm -> pixel when the side is < 1000 (error <= W/2000 < 0.5)."""
    cols = np.arange(width) + 0.5
    rows = np.arange(height) + 0.5
    pts = np.stack([np.resize(cols, max(width, height)), np.resize(rows, max(width, height))], axis=1)
    back = pixel_from_norm_points(norm_from_pixel_points(pts, width, height), width, height)
    err = np.abs(back - pts)
    assert np.all(err <= 0.5 * np.array([width, height]) / NORM + 1e-9)
    for axis, size in ((0, width), (1, height)):
        if size < NORM:
            assert np.array_equal(np.floor(back[:, axis]), np.floor(pts[:, axis]))


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_norm_box_round_trip(width: int, height: int) -> None:
    rng = np.random.default_rng(width * height)
    xs = np.sort(rng.uniform(0, width, size=(50, 2)), axis=1)
    ys = np.sort(rng.uniform(0, height, size=(50, 2)), axis=1)
    boxes = np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1)
    nboxes = norm_from_pixel_boxes(boxes, width, height)
    assert np.all(nboxes[:, 0] < nboxes[:, 2]) and np.all(nboxes[:, 1] < nboxes[:, 3])
    assert nboxes.min() >= 0 and nboxes.max() <= NORM
    back = pixel_from_norm_boxes(nboxes, width, height)
    tol = np.array([width, height, width, height]) / NORM  # half a unit of rounding, or one of widening
    assert np.all(np.abs(back - boxes) <= tol + 1e-9)
    for b, nb in zip(boxes, nboxes, strict=True):
        assert norm_from_pixel_box(b, width, height) == tuple(nb)
        expected = tuple(pixel_from_norm_boxes([nb], width, height)[0])
        assert pixel_from_norm_box(nb, width, height) == pytest.approx(expected)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 5000),
    st.integers(1, 5000),
    st.lists(st.tuples(st.floats(-100, 6000), st.floats(-100, 6000)), max_size=20),
)
def test_scalar_and_vector_normalisation_agree(width: int, height: int, pts: list) -> None:
    vec = norm_from_pixel_points(np.array(pts, dtype=float).reshape(-1, 2), width, height)
    assert vec.shape == (len(pts), 2)
    assert [tuple(v) for v in vec.tolist()] == [norm_from_pixel_point(x, y, width, height) for x, y in pts]
    back = pixel_from_norm_points(vec, width, height)
    scalar = [pixel_from_norm_point(nx, ny, width, height) for nx, ny in vec]
    assert [tuple(b) for b in back.tolist()] == scalar


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 5000),
    st.integers(1, 5000),
    st.lists(st.tuples(*[st.floats(0, 1, allow_nan=False)] * 4), max_size=10),
)
def test_scalar_and_vector_box_normalisation_agree(width: int, height: int, raw: list) -> None:
    boxes = [
        (min(a, b) * width, min(c, d) * height, max(a, b) * width, max(c, d) * height) for a, b, c, d in raw
    ]
    vec = norm_from_pixel_boxes(np.array(boxes, dtype=float).reshape(-1, 4), width, height)
    assert [tuple(v) for v in vec.tolist()] == [norm_from_pixel_box(b, width, height) for b in boxes]
    assert np.all(vec[:, 0] < vec[:, 2]) and np.all(vec[:, 1] < vec[:, 3])


# ---------------------------------------------------------------------------------------------- boxes


def test_mask_to_box_exact_pixel_edges() -> None:
    assert mask_to_box(rect(10, 10, 3, 4, 4, 5)) == (3.0, 4.0, 4.0, 5.0)  # single pixel
    assert mask_to_box(rect(10, 12, 0, 0, 12, 10)) == (0.0, 0.0, 12.0, 10.0)  # full image
    assert mask_to_box(rect(10, 12, 9, 2, 12, 10)) == (9.0, 2.0, 12.0, 10.0)  # touching right/bottom
    assert mask_to_box(l_shape()) == (5.0, 5.0, 35.0, 35.0)
    two_blobs = rect(20, 20, 1, 1, 3, 3) | rect(20, 20, 15, 10, 17, 19)
    assert mask_to_box(two_blobs) == (1.0, 1.0, 17.0, 19.0)
    with pytest.raises(ValueError):
        mask_to_box(blank())


def test_masks_to_boxes_matches_loop() -> None:
    masks = np.stack(
        [rect(30, 25, 3, 4, 4, 5), l_shape(30, 25), ring(30, 25, 10, 6), rect(30, 25, 0, 0, 25, 30)]
    )
    got = masks_to_boxes(masks)
    assert got.shape == (4, 4) and got.dtype == np.float64
    assert got.tolist() == [list(mask_to_box(m)) for m in masks]
    assert masks_to_boxes(np.zeros((0, 5, 5), bool)).shape == (0, 4)
    with pytest.raises(ValueError):
        masks_to_boxes(np.stack([rect(5, 5, 0, 0, 1, 1), blank(5, 5)]))


def test_box_iou_hand_cases() -> None:
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert box_iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert box_iou((0, 0, 1, 1), (1, 0, 2, 1)) == 0.0  # touching edges
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0  # degenerate: no area, no IoU
    assert box_iou((0, 0, 4, 4), (1, 1, 2, 2)) == pytest.approx(1 / 16)


def test_box_iou_matrix_matches_loop() -> None:
    rng = np.random.default_rng(0)
    a = np.sort(rng.uniform(0, 50, (7, 2, 2)), axis=1).transpose(0, 2, 1).reshape(7, 4)[:, [0, 2, 1, 3]]
    b = np.sort(rng.uniform(0, 50, (5, 2, 2)), axis=1).transpose(0, 2, 1).reshape(5, 4)[:, [0, 2, 1, 3]]
    mat = box_iou_matrix(a, b)
    assert mat.shape == (7, 5)
    loop = [[box_iou(x, y) for y in b] for x in a]
    np.testing.assert_allclose(mat, loop)
    assert box_iou_matrix(np.zeros((0, 4)), b).shape == (0, 5)


# ---------------------------------------------------------------------------------------------- union box IoU


def raster_union_iou(pred: np.ndarray, ref: np.ndarray, size: int) -> float:
    """Brute force on a unit grid: exact when all box edges are integers."""
    def paint(boxes: np.ndarray) -> np.ndarray:
        g = np.zeros((size, size), bool)
        for x1, y1, x2, y2 in boxes.astype(int):
            g[y1:y2, x1:x2] = True
        return g

    p, r = paint(pred), paint(ref)
    if not p.any() and not r.any():
        return 1.0
    return (p & r).sum() / (p | r).sum()


int_boxes = st.lists(
    st.tuples(st.integers(0, 24), st.integers(0, 24), st.integers(0, 24), st.integers(0, 24)).map(
        lambda t: (min(t[0], t[1]), min(t[2], t[3]), max(t[0], t[1]), max(t[2], t[3]))
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(int_boxes, int_boxes, st.sampled_from([1.0, 0.5, 0.37]))
def test_union_box_iou_matches_raster(pred: list, ref: list, scale: float) -> None:
    p = np.array(pred, dtype=float).reshape(-1, 4)
    r = np.array(ref, dtype=float).reshape(-1, 4)
    expected = raster_union_iou(p, r, 25)
    # IoU is scale invariant, so non-integer coordinates must give the same answer.
    assert union_box_iou(p * scale, r * scale) == pytest.approx(expected, abs=1e-12)
    assert union_box_iou(r * scale, p * scale) == pytest.approx(expected, abs=1e-12)


def test_union_box_iou_hand_cases() -> None:
    # Two overlapping pred boxes tiling the ref box exactly: overlap must not be double counted.
    assert union_box_iou([[0, 0, 6, 10], [4, 0, 10, 10]], [[0, 0, 10, 10]]) == 1.0
    # Union of pred 2x2 boxes overlapping in a 1x1 square: area 7; ref 3x3 contains it.
    assert union_box_iou([[0, 0, 2, 2], [1, 1, 3, 3]], [[0, 0, 3, 3]]) == pytest.approx(7 / 9)
    # Disjoint unions.
    assert union_box_iou([[0, 0, 1, 1], [2, 2, 3, 3]], [[5, 5, 6, 6], [1, 0, 2, 1]]) == 0.0
    # Same union from different boxes.
    assert union_box_iou([[0, 0, 2, 1], [0, 1, 2, 2]], [[0, 0, 1, 2], [1, 0, 2, 2]]) == 1.0
    # Half overlap.
    assert union_box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2]]) == pytest.approx(1 / 3)
    # Duplicated ref boxes change nothing.
    assert union_box_iou([[0, 0, 2, 2]], [[1, 0, 3, 2]] * 3) == pytest.approx(1 / 3)
    # Float edges.
    assert union_box_iou([[0.25, 0, 0.75, 1]], [[0, 0, 1, 1]]) == pytest.approx(0.5)


def test_union_box_iou_empty_conventions() -> None:
    assert union_box_iou(np.zeros((0, 4)), np.zeros((0, 4))) == 1.0
    assert union_box_iou([], []) == 1.0
    assert union_box_iou([[0, 0, 1, 1]], []) == 0.0
    assert union_box_iou([], [[0, 0, 1, 1]]) == 0.0
    assert union_box_iou([[3, 3, 3, 8]], [[0, 0, 1, 1]]) == 0.0  # degenerate pred counts as empty
    assert union_box_iou([[3, 3, 3, 8]], []) == 1.0


# ---------------------------------------------------------------------------------------------- points


def test_ring_point_is_on_ring_not_centroid() -> None:
    m = ring()
    c, r = mask_to_point(m)
    assert m[r, c]
    cc, cr = centroid_pixel(m)
    assert not m[cr, cc]
    assert mask_to_point(m) == (c, r)  # deterministic


@pytest.mark.parametrize("shape", [l_shape, c_shape])
def test_non_convex_point_is_inside_and_deep(shape) -> None:
    m = shape()
    c, r = mask_to_point(m)
    assert m[r, c]
    # Strokes are 6 px wide: the chosen pixel is in the middle of a stroke, not on its edge.
    assert m[r - 2 : r + 3, c - 2 : c + 3].all()
    cc, cr = centroid_pixel(m)
    assert not m[cr, cc]


def test_l_shape_point_is_at_the_corner_junction() -> None:
    # The junction of the two strokes is the only place a 6x6 square gets distance 3 from both ends.
    c, r = mask_to_point(l_shape())
    assert 5 <= c < 11 and 29 <= r < 35


def test_point_single_pixel_and_tie_breaks() -> None:
    assert mask_to_point(rect(10, 10, 7, 2, 8, 3)) == (7, 2)
    # 2x2 square: four equal maxima equidistant from their centroid -> lowest (row, col).
    assert mask_to_point(rect(10, 10, 3, 3, 5, 5)) == (3, 3)
    # 3x9 bar: ridge cols 1..7 of row 1 -> centre col 4.
    assert mask_to_point(rect(3, 9, 0, 0, 9, 3)) == (4, 1)
    # 3x10 bar: ridge cols 1..8 -> centre is between 4 and 5 -> lower col.
    assert mask_to_point(rect(3, 10, 0, 0, 10, 3)) == (4, 1)
    # Two equal separate squares: maxima centroid lies between them -> the earlier one.
    m = rect(9, 20, 1, 1, 6, 6) | rect(9, 20, 13, 1, 18, 6)
    assert mask_to_point(m) == (3, 3)
    with pytest.raises(ValueError):
        mask_to_point(blank())


def reference_point(mask: np.ndarray) -> tuple[int, int]:
    """The spec written out plainly: full-image EDT, exact-fraction tie-break, no cropping."""
    dist = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    maxima = [tuple(int(v) for v in rc) for rc in np.argwhere(dist == dist.max())]
    cr = Fraction(sum(r for r, _ in maxima), len(maxima))
    cc = Fraction(sum(c for _, c in maxima), len(maxima))
    r, c = min(maxima, key=lambda rc: ((rc[0] - cr) ** 2 + (rc[1] - cc) ** 2, rc))
    return c, r


@settings(max_examples=200, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 16), st.integers(1, 16))))
def test_mask_to_point_matches_reference(mask: np.ndarray) -> None:
    if not mask.any():
        return
    c, r = mask_to_point(mask)
    assert mask[r, c]
    assert (c, r) == reference_point(mask)


@pytest.mark.parametrize("shape", [ring, l_shape, c_shape])
def test_mask_to_point_matches_reference_on_drawn_shapes(shape) -> None:
    m = shape()
    assert mask_to_point(m) == reference_point(m)
    shifted = np.roll(m, (3, -4), axis=(0, 1))  # cropping must not change the answer's frame
    assert mask_to_point(shifted) == reference_point(shifted)


def test_mask_to_point_big_int_path_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    """Huge masks switch the tie-break to Python ints; force that path on small shapes."""
    shapes = [ring(), l_shape(), c_shape(), rect(3, 10, 0, 0, 10, 3), rect(10, 10, 3, 3, 5, 5)]
    expected = [mask_to_point(m) for m in shapes]
    monkeypatch.setattr(geometry_masks, "_INT64_SAFE", 0)
    assert [mask_to_point(m) for m in shapes] == expected


def test_mask_iou_matrix_fallback_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy < 2 uses a matmul (float64 past 2**24 pixels); big stacks chunk the popcount. Force each."""
    rng = np.random.default_rng(2)
    a, b = rng.random((3, 20, 30)) < 0.4, rng.random((4, 20, 30)) < 0.4
    expected = mask_iou_matrix(a, b)
    monkeypatch.setattr(geometry_masks, "_HAS_POPCOUNT", False)
    np.testing.assert_array_equal(mask_iou_matrix(a, b), expected)
    monkeypatch.setattr(geometry_masks, "_FLOAT32_EXACT", 0)
    np.testing.assert_array_equal(mask_iou_matrix(a, b), expected)
    monkeypatch.setattr(geometry_masks, "_HAS_POPCOUNT", True)
    monkeypatch.setattr(geometry_masks, "_POPCOUNT_CHUNK_WORDS", 1)  # one row of A per chunk
    np.testing.assert_array_equal(mask_iou_matrix(a, b), expected)


def test_point_counts_image_border_as_boundary() -> None:
    # Full-image mask: without border padding every pixel would be "infinitely" deep.
    assert mask_to_point(np.ones((9, 9), bool)) == (4, 4)
    assert mask_to_point(np.ones((5, 11), bool)) == (5, 2)
    # A blob touching the left border: the point keeps its distance from the border too.
    m = rect(20, 20, 0, 5, 7, 12)
    assert mask_to_point(m) == (3, 8)


def test_touching_objects_each_get_their_own_point() -> None:
    left = rect(20, 20, 2, 2, 10, 12)
    right = rect(20, 20, 10, 2, 18, 12)
    masks = np.stack([left, right])
    pts = np.array([np.add(mask_to_point(m), 0.5) for m in masks])
    assert points_in_masks(pts, masks).tolist() == [[True, False], [False, True]]
    # The shared edge x = 10 belongs to pixel column 10, i.e. the right object.
    assert points_in_masks([[10.0, 5.0], [9.999, 5.0]], masks).tolist() == [[False, True], [True, False]]
    assert match_points_to_masks(pts, masks).f1 == 1.0


def thick_shapes(h: int, w: int) -> list[np.ndarray]:
    """Shapes with strokes several pixels thick, scaled to the image."""
    s = max(4, min(h, w) // 8)
    shapes = [
        rect(h, w, 0, 0, s, s),  # top-left corner
        rect(h, w, w - s, h - s, w, h),  # bottom-right corner
        ring(h, w, outer=min(h, w) // 2 - 1, inner=max(1, min(h, w) // 2 - 1 - s)),
    ]
    lm = blank(h, w)
    lm[h // 4 : 3 * h // 4, w // 4 : w // 4 + s] = True
    lm[3 * h // 4 - s : 3 * h // 4, w // 4 : 3 * w // 4] = True
    shapes.append(lm)
    return shapes


@pytest.mark.parametrize(("width", "height"), [*SIZES, (999, 17), (12, 10)])
def test_point_survives_normalisation_pipeline(width: int, height: int) -> None:
    """mask_to_point -> norm -> pixel -> point_in_mask: the reward must credit the synthesised point."""
    for m in thick_shapes(height, width):
        c, r = mask_to_point(m)
        nx, ny = norm_from_pixel_point(c + 0.5, r + 0.5, width, height)
        x, y = pixel_from_norm_point(nx, ny, width, height)
        assert point_in_mask(x, y, m), (width, height, (c, r), (x, y))


def test_point_in_mask_edges_and_outside() -> None:
    m = rect(4, 5, 0, 0, 5, 4)  # full 4x5 image
    assert point_in_mask(0.0, 0.0, m)
    assert point_in_mask(4.999, 3.999, m)
    assert not point_in_mask(5.0, 1.0, m)  # x == W is outside
    assert not point_in_mask(1.0, 4.0, m)
    assert not point_in_mask(-0.01, 1.0, m)
    assert not point_in_mask(float("nan"), 1.0, m)
    single = rect(4, 5, 2, 1, 3, 2)
    assert point_in_mask(2.5, 1.5, single) and not point_in_mask(3.0, 1.5, single)


@settings(max_examples=100, deadline=None)
@given(
    arrays(bool, st.tuples(st.integers(0, 4), st.integers(1, 7), st.integers(1, 7))),
    st.lists(st.tuples(st.floats(-2, 9), st.floats(-2, 9)), max_size=8),
)
def test_points_in_masks_matches_scalar(masks: np.ndarray, pts: list) -> None:
    got = points_in_masks(np.array(pts, dtype=float).reshape(-1, 2), masks)
    assert got.shape == (len(pts), len(masks)) and got.dtype == bool
    assert got.tolist() == [[point_in_mask(x, y, m) for m in masks] for x, y in pts]


# ---------------------------------------------------------------------------------------------- mask IoU


def test_mask_iou_hand_cases() -> None:
    a = rect(10, 10, 0, 0, 4, 4)
    b = rect(10, 10, 2, 0, 6, 4)
    assert mask_iou(a, b) == pytest.approx(8 / 24)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(a, blank(10, 10)) == 0.0
    assert mask_iou(blank(10, 10), blank(10, 10)) == 0.0
    with pytest.raises(ValueError):
        mask_iou(a, blank(10, 11))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 5), st.integers(0, 5), st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**32))
def test_mask_iou_matrix_matches_loop(n: int, m: int, h: int, w: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.random((n, h, w)) < rng.random()
    b = rng.random((m, h, w)) < rng.random()
    if n:
        a[0] = False  # always include an empty mask
    mat = mask_iou_matrix(a, b)
    assert mat.shape == (n, m)
    np.testing.assert_allclose(mat, np.array([[mask_iou(x, y) for y in b] for x in a]).reshape(n, m))


def test_mask_iou_matrix_realistic_size() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((3, 448, 448)) < 0.3
    b = np.concatenate([a[:1], rng.random((2, 448, 448)) < 0.6])
    mat = mask_iou_matrix(a, b)
    assert mat[0, 0] == 1.0
    np.testing.assert_allclose(mat, [[mask_iou(x, y) for y in b] for x in a], rtol=1e-12)


# ---------------------------------------------------------------------------------------------- matching


def pixel_masks(contain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points on distinct pixels and masks that contain exactly the points ``contain`` says."""
    n, m = contain.shape
    pts = np.stack([np.arange(n) + 0.5, np.full(n, 0.5)], axis=1)
    masks = np.zeros((m, 1, max(n, 1) + 1), bool)
    masks[:, 0, :n] = contain.T
    return pts, masks


def test_matching_overlapping_masks_is_maximum() -> None:
    # Point A is in m0 and m1, point B only in m0: greedy A->m0 would leave B unmatched.
    pts, masks = pixel_masks(np.array([[True, True], [True, False]]))
    res = match_points_to_masks(pts, masks)
    assert set(res.pairs) == {(0, 1), (1, 0)}
    assert (res.tp, res.fp, res.fn, res.f1) == (2, 0, 0, 1.0)


def test_matching_extra_and_missing_points() -> None:
    masks = np.stack([rect(20, 20, 0, 0, 5, 5), rect(20, 20, 10, 10, 15, 15), rect(20, 20, 0, 15, 5, 20)])
    # Extra: two points in mask 0, one outside everything, one in mask 1; mask 2 missed.
    pts = [[1.5, 1.5], [3.5, 3.5], [8.5, 8.5], [12.5, 12.5]]
    res = match_points_to_masks(pts, masks)
    assert res.tp == 2 and res.fp == 2 and res.fn == 1
    assert res.f1 == pytest.approx(4 / 7)
    assert res.unmatched_masks == (2,)
    assert 2 in res.unmatched_points and 1 in {p for p, _ in res.pairs} | set(res.unmatched_points)
    assert (3, 1) in res.pairs
    # Missing: one point for three masks.
    res = match_points_to_masks([[12.5, 12.5]], masks)
    assert (res.pairs, res.unmatched_points, res.unmatched_masks) == (((0, 1),), (), (0, 2))
    assert res.f1 == pytest.approx(2 / 4)


def test_matching_empty_sets() -> None:
    masks = np.stack([rect(8, 8, 0, 0, 2, 2), rect(8, 8, 4, 4, 6, 6)])
    none = match_points_to_masks(np.zeros((0, 2)), np.zeros((0, 8, 8), bool))
    assert none == PointMatch(pairs=(), unmatched_points=(), unmatched_masks=())
    assert (none.tp, none.fp, none.fn, none.f1) == (0, 0, 0, 1.0)
    no_points = match_points_to_masks(np.zeros((0, 2)), masks)
    assert (no_points.tp, no_points.fp, no_points.fn, no_points.f1) == (0, 0, 2, 0.0)
    no_masks = match_points_to_masks([[1, 1], [5, 5]], np.zeros((0, 8, 8), bool))
    assert (no_masks.tp, no_masks.fp, no_masks.fn, no_masks.f1) == (0, 2, 0, 0.0)
    all_miss = match_points_to_masks([[7.5, 0.5]], masks)
    assert (all_miss.tp, all_miss.fp, all_miss.fn, all_miss.f1) == (0, 1, 2, 0.0)


def test_point_match_is_frozen() -> None:
    res = match_points_to_masks([[0.5, 0.5]], rect(2, 2, 0, 0, 1, 1)[None])
    with pytest.raises(AttributeError):
        res.pairs = ()  # type: ignore[misc]


def brute_max_matching(contain: np.ndarray) -> int:
    n, m = contain.shape
    best = 0
    for k in range(min(n, m), 0, -1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                if all(contain[i, j] for i, j in zip(rows, cols, strict=True)):
                    return k
    return best


@settings(max_examples=150, deadline=None)
@given(arrays(bool, st.tuples(st.integers(0, 5), st.integers(0, 5))))
def test_matching_is_a_valid_maximum_matching(contain: np.ndarray) -> None:
    pts, masks = pixel_masks(contain)
    res = match_points_to_masks(pts, masks)
    n, m = contain.shape
    assert res.tp == brute_max_matching(contain)
    assert all(contain[i, j] for i, j in res.pairs)
    assert len({i for i, _ in res.pairs}) == res.tp == len({j for _, j in res.pairs})
    assert sorted([i for i, _ in res.pairs] + list(res.unmatched_points)) == list(range(n))
    assert sorted([j for _, j in res.pairs] + list(res.unmatched_masks)) == list(range(m))
    assert res.tp + res.fp == n and res.tp + res.fn == m


# ---------------------------------------------------------------------------------------------- RLE


@settings(max_examples=150, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 30), st.integers(1, 30))))
def test_rle_round_trip(mask: np.ndarray) -> None:
    rle = encode_rle(mask)
    assert rle["size"] == list(mask.shape)
    assert isinstance(rle["counts"], str)
    rle = json.loads(json.dumps(rle))  # JSON-able and still decodable afterwards
    out = decode_rle(rle)
    assert out.dtype == bool and out.shape == mask.shape
    assert np.array_equal(out, mask)
    assert rle_area(rle) == int(mask.sum())


def test_rle_accepts_bytes_and_uncompressed_counts() -> None:
    m = ring(17, 23, 8, 4)
    rle = encode_rle(m)
    assert np.array_equal(decode_rle({"size": rle["size"], "counts": rle["counts"].encode()}), m)
    # Uncompressed COCO RLE: column-major run lengths starting with a background run.
    col_major = m.flatten(order="F")
    edges = np.flatnonzero(np.diff(col_major.astype(np.int8))) + 1
    runs = np.diff(np.concatenate([[0], edges, [col_major.size]])).tolist()
    if col_major[0]:
        runs = [0, *runs]
    raw = {"size": list(m.shape), "counts": runs}
    assert np.array_equal(decode_rle(raw), m)
    assert rle_area(raw) == int(m.sum())


def test_rle_of_non_contiguous_and_int_masks() -> None:
    m = l_shape()[::2, ::3]  # a strided view
    assert np.array_equal(decode_rle(encode_rle(m)), m)
    assert np.array_equal(decode_rle(encode_rle(m.astype(np.uint8) * 255)), m)
