"""World styles: the canonical style pinned byte for byte, the varied style's domain randomisation."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage
from typer.testing import CliRunner

from vgt_agent import geometry
from vgt_agent.cli import world as world_cli
from vgt_agent.datasets.registry import DATASETS, load_samples
from vgt_agent.world.colours import NONE, name_colour, name_pixels
from vgt_agent.world.generate import make_sample
from vgt_agent.world.palette import COLOURS, SHAPES
from vgt_agent.world.render import render
from vgt_agent.world.scene import Attr, PlacementError, SceneSpec, make_scene
from vgt_agent.world.shapes import shape_coverage
from vgt_agent.world.splits import SPLITS
from vgt_agent.world.storage import make_split, read_rows
from vgt_agent.world.style import (
    SIZE_BANDS,
    TINY_FAMILIES,
    TINY_MIN_DIAMETER,
    Look,
    backdrop_pixels,
    draw_backdrop,
    encode_image,
)

# Computed before the varied style existed: the canonical world must never drift (shipped policy, tests).
CANONICAL_SAMPLES = [
    ("world-tally", 0, "63a218f1211f5b06"),
    ("world-tally", 7, "489f99b8300b9708"),
    ("world-countqa", 3, "a54199b0865f110d"),
    ("world-vsr", 2, "99caa0d9ab6006f7"),
    ("world-embspatial", 5, "afe9369fbda7a17a"),
    ("world-spatialmqa", 1, "ae41ac475ec11f38"),
    ("world-multihop", 4, "e5263ec74f18996a"),
    ("world-train", 0, "021158ebbbdbdc53"),
    ("world-train", 5, "1184e98e90c5ff79"),
]
CANONICAL_FOLDERS = [("world-countqa", "d4e42001df0dd206"), ("world-train", "aad7871785ebab22")]


@pytest.mark.parametrize(("split", "index", "digest"), CANONICAL_SAMPLES)
def test_canonical_sample_unchanged(split: str, index: int, digest: str) -> None:
    image, record = make_sample(split, index, style="canonical")
    got = hashlib.sha256(image.tobytes() + json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    assert got == digest


@pytest.mark.parametrize(("split", "digest"), CANONICAL_FOLDERS)
def test_canonical_folder_unchanged(tmp_path: Path, split: str, digest: str) -> None:
    out = tmp_path / split
    make_split(out, split, n=6, style="canonical")
    h = hashlib.sha256()
    for p in sorted((out / "images").iterdir()):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    h.update((out / "metadata.jsonl").read_bytes())
    assert h.hexdigest()[:16] == digest


# ------------------------------------------------------------------------------------------------------
# The varied style, checked on rendered samples and on the files as stored (JPEG included)
# ------------------------------------------------------------------------------------------------------

VARIED_SPLITS = ("world-train", "world-tally-varied", "world-countqa-varied", "world-multihop-varied")


@pytest.fixture(scope="module")
def varied() -> list[tuple[np.ndarray, dict]]:
    """(pixels as stored on disk, row) of varied samples from a counting, an occluded and a spatial split."""
    out = []
    for split in VARIED_SPLITS:
        for index in range(12):
            image, row = make_sample(split, index)
            look = row["style"]
            stored = Image.open(io.BytesIO(encode_image(image, look["format"], look["quality"])))
            assert stored.format == ("JPEG" if look["format"] == "jpeg" else "PNG")
            out.append((np.asarray(stored.convert("RGB")), row))
    return out


def _masks(row: dict) -> list[np.ndarray]:
    return [geometry.decode_rle(o["rle"]) for o in row["objects"]]


def test_varied_is_deterministic_and_differs_from_canonical() -> None:
    for split, index in [("world-tally-varied", 4), ("world-train", 9), ("world-vsr", 2)]:
        a_img, a_row = make_sample(split, index, style="varied")
        b_img, b_row = make_sample(split, index, style="varied")
        assert a_img.tobytes() == b_img.tobytes() and json.dumps(a_row) == json.dumps(b_row)
        c_img, _ = make_sample(split, index, style="canonical")
        assert c_img.size != a_img.size or c_img.tobytes() != a_img.tobytes()


def test_varied_looks_vary(varied: list[tuple[np.ndarray, dict]]) -> None:
    sizes = {(r["width"], r["height"]) for _, r in varied}
    assert len(sizes) >= 20 and any(w == h for w, h in sizes) and any(w != h for w, h in sizes)
    assert all(256 <= v <= 1024 for size in sizes for v in size)
    looks = [r["style"] for _, r in varied]
    assert {look["format"] for look in looks} == {"png", "jpeg"}
    assert {look["antialias"] for look in looks} == {True, False}
    assert all(60 <= look["quality"] <= 95 for look in looks if look["format"] == "jpeg")
    assert len({look["background"] for look in looks}) >= 5
    for pixels, row in varied:
        assert pixels.shape == (row["height"], row["width"], 3)
        assert row["file_name"].endswith(".jpg" if row["style"]["format"] == "jpeg" else ".png")


def test_shades_are_jittered_and_name_back(varied: list[tuple[np.ndarray, dict]]) -> None:
    shades: dict[str, set[tuple[int, ...]]] = {}
    for _, row in varied:
        for o in row["objects"]:
            assert name_colour(tuple(o["rgb"])) == o["colour"]
            shades.setdefault(o["colour"], set()).add(tuple(o["rgb"]))
    assert set(shades) == set(COLOURS)
    for colour, seen in shades.items():
        assert len(seen) >= 5 and seen != {COLOURS[colour]}


def test_sizes_spread_within_class_bands_and_tiny_only_where_size_is_never_asked(
    varied: list[tuple[np.ndarray, dict]],
) -> None:
    radii: dict[str, list[float]] = {}
    tiny = 0
    for _, row in varied:
        side = min(row["width"], row["height"])
        for o in row["objects"]:
            diameter = 2 * o["radius"] / side
            lo, hi = SIZE_BANDS[o["size"]]
            if diameter < lo - 1e-3:
                assert o["size"] == "small" and row["family"] in TINY_FAMILIES, row["id"]
                assert 2 * o["radius"] >= TINY_MIN_DIAMETER - 1e-2
                tiny += 1
            else:
                assert diameter <= hi + 1e-3, row["id"]
            radii.setdefault(o["size"], []).append(diameter)
    assert tiny >= 3
    assert all(max(v) - min(v) > 0.01 for v in radii.values())


def test_rotations_cover_the_symmetry_period(varied: list[tuple[np.ndarray, dict]]) -> None:
    tilts = [o["tilt"] for _, r in varied for o in r["objects"] if o["shape"] == "square"]
    assert min(tilts) < 20 and max(tilts) > 70 and all(0 <= t < 90 for t in tilts)


def test_masks_are_exact_and_align_with_the_stored_pixels(varied: list[tuple[np.ndarray, dict]]) -> None:
    """Each gold mask is one 4-connected piece, disjoint from the others, its box and point agree with it, and
    the mean colour of the stored pixels inside it (after JPEG) names the object's colour."""
    for pixels, row in varied:
        taken = np.zeros(pixels.shape[:2], dtype=bool)
        for o, m in zip(row["objects"], _masks(row), strict=True):
            assert ndimage.label(m)[1] == 1 and m.sum() == o["area"]
            assert not (taken & m).any()
            taken |= m
            assert list(geometry.mask_to_box(m)) == o["box"]
            assert list(geometry.mask_to_point(m)) == o["point"]
            mean = np.rint(pixels[m].mean(axis=0)).astype(int)
            assert name_colour(tuple(mean)) == o["colour"], (row["id"], o["id"])
            if row["style"]["format"] == "png" and not row["style"]["antialias"]:
                assert (pixels[m] == o["rgb"]).all()  # hard edges, lossless: every mask pixel is the shade


def test_antialiased_mask_is_the_half_coverage_set() -> None:
    """The mask is the >= 50% coverage set; against geometry: a circle's mask holds every pixel whose centre
    lies well inside the circle and none well outside; finer rasterisation agrees up to the odd edge pixel."""
    cx, cy, r = 40.3, 37.8, 21.7
    coverage, mask, x0, y0 = shape_coverage("circle", cx, cy, r, 0.0, 4)
    ys, xs = np.mgrid[: mask.shape[0], : mask.shape[1]]
    dist = np.hypot(xs + x0 + 0.5 - cx, ys + y0 + 0.5 - cy)
    assert mask[dist < r - 0.75].all() and not mask[dist > r + 0.75].any()
    assert abs(coverage.sum() - np.pi * r * r) < 0.01 * np.pi * r * r  # coverage integrates to the area
    for shape, tilt in [("circle", 0.0), ("star", 31.0), ("triangle", 100.0), ("ring", 0.0), ("hexagon", 17.0)]:
        coverage, mask, x0, y0 = shape_coverage(shape, cx, cy, r, tilt, 4)
        fine, fx0, fy0 = shape_coverage(shape, cx, cy, r, tilt, 12)[1:]
        assert (fx0, fy0) == (x0, y0) and coverage.min() >= 0.0 and coverage.max() <= 1.0
        assert np.mean(mask != fine) < 0.02
        assert ((coverage > 0) & (coverage < 1)).any()  # edges really are blended
        assert (mask == (coverage >= 0.5)).all() and ndimage.label(mask)[1] == 1


def _grown(a: np.ndarray, gap: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Mask `a` grown by `gap` pixels (8-connected steps), in a crop around it, and that crop's window."""
    rows, cols = np.nonzero(a)
    window = (
        slice(max(0, rows.min() - gap), rows.max() + gap + 1), slice(max(0, cols.min() - gap), cols.max() + gap + 1),
    )
    return ndimage.binary_dilation(a[window], structure=np.ones((3, 3)), iterations=gap), window


def test_same_colour_objects_never_touch_and_different_colours_do(varied: list[tuple[np.ndarray, dict]]) -> None:
    touching = 0
    for _, row in varied:
        masks = _masks(row)
        for a, oa in enumerate(row["objects"]):
            (wide, wide_at), (near, near_at) = _grown(masks[a], 3), _grown(masks[a], 1)
            for b in range(a + 1, len(masks)):
                if oa["colour"] == row["objects"][b]["colour"]:
                    assert not (wide & masks[b][wide_at]).any(), row["id"]
                elif (near & masks[b][near_at]).any():
                    touching += 1
    assert touching >= 10


def test_backdrops_name_no_colour() -> None:
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(40):
        bd = draw_backdrop(rng)
        kinds.add(bd.describe())
        pixels = backdrop_pixels(bd, 96, 64)
        assert (name_pixels(pixels) == NONE).all(), bd
    assert len(kinds) >= 6


# ------------------------------------------------------------------------------------------------------
# Splits, storage, datasets and the CLI
# ------------------------------------------------------------------------------------------------------


def test_every_benchmark_has_a_varied_twin() -> None:
    canonical = [s for s in SPLITS.values() if s.style == "canonical"]
    assert {"world-tally", "world-countqa", "world-vsr", "world-embspatial", "world-spatialmqa",
            "world-multihop"} <= {s.name for s in canonical}
    for s in canonical:
        twin = SPLITS[f"{s.name}-varied"]
        assert twin.style == "varied" and twin.families == s.families and twin.seed != s.seed
        assert DATASETS[twin.name].source == "world"
    assert SPLITS["world-train"].style == "varied"
    assert len({s.seed for s in SPLITS.values()}) == len(SPLITS)


def test_varied_folder_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "tally-varied"
    info = make_split(out, "world-tally-varied", n=6)
    assert info["style"] == "varied" and info["width"] is None and info["side_range"] == [256, 1024]
    assert json.loads((out / "info.json").read_text())["style"] == "varied"
    rows = list(read_rows(out))
    assert {r["file_name"].rsplit(".", 1)[1] for r in rows} == {"jpg", "png"}
    for row in rows:
        image, record = make_sample("world-tally-varied", row["index"])
        assert row == json.loads(json.dumps(record))
        with Image.open(out / row["file_name"]) as stored:
            assert stored.size == (row["width"], row["height"])
            if row["style"]["format"] == "png":
                assert np.array_equal(np.asarray(stored), np.asarray(image))
    samples = list(load_samples("world-tally-varied", path=out))
    assert [s.id for s in samples] == [f"world-tally-varied/{i:06d}" for i in range(6)]
    assert all(s.load_image().size == (s.meta["width"], s.meta["height"]) for s in samples)
    again = tmp_path / "again"
    make_split(again, "world-tally-varied", n=6)
    assert all((out / r["file_name"]).read_bytes() == (again / r["file_name"]).read_bytes() for r in rows)


def test_style_override_and_fixed_size(tmp_path: Path) -> None:
    info = make_split(tmp_path / "vsr", "world-vsr", n=3, style="varied", width=320, height=300)
    assert info["style"] == "varied" and (info["width"], info["height"]) == (320, 300)
    assert all((r["width"], r["height"]) == (320, 300) and "style" in r for r in read_rows(tmp_path / "vsr"))
    info = make_split(tmp_path / "train", "world-train", n=2, style="canonical")
    assert info["style"] == "canonical"
    assert all("style" not in r and r["file_name"].endswith(".png") for r in read_rows(tmp_path / "train"))
    with pytest.raises(ValueError, match="unknown style"):
        make_split(tmp_path / "bad", "world-vsr", n=1, style="sketchy")
    assert not (tmp_path / "bad").exists()


def test_cached_split_is_rebuilt_in_its_own_style(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vgt_agent.datasets import world as world_data
    from vgt_agent.world import storage

    folder = tmp_path / "world-vsr-varied"
    make_split(folder, "world-vsr-varied", n=2, style="canonical")
    made: list[str] = []
    monkeypatch.setattr(storage, "make_split", lambda out, split: made.append(split))
    world_data.ensure_split("world-vsr-varied", folder)
    assert made == ["world-vsr-varied"]  # a canonical folder does not stand in for the varied twin
    make_split(folder, "world-vsr-varied", n=2)
    world_data.ensure_split("world-vsr-varied", folder)
    assert made == ["world-vsr-varied"]


def test_cli_make_show_splits_with_styles(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "emb"
    res = runner.invoke(world_cli.app, ["make", "--out", str(out), "--split", "world-embspatial", "--n", "4",
                                        "--style", "varied", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["style"] == "varied" and sum(summary["files"].values()) == 4
    jpeg = next(r for r in read_rows(out) if r["file_name"].endswith(".jpg"))
    png = tmp_path / "show.png"
    res = runner.invoke(world_cli.app, ["show", str(out), str(jpeg["index"]), "--png", str(png)])
    assert res.exit_code == 0, res.output
    assert "varied: jpeg" in res.stdout and "shade" in res.stdout
    with Image.open(png) as shown:
        assert shown.size == (jpeg["width"], jpeg["height"])
    res = runner.invoke(world_cli.app, ["splits", "--json"])
    styles = {s["name"]: s["style"] for s in json.loads(res.stdout)}
    assert styles["world-tally"] == "canonical" and styles["world-tally-varied"] == "varied"
    assert styles["world-train"] == "varied"
    listed = {s["name"]: s for s in json.loads(res.stdout)}
    assert listed["world-tally"]["size"] == [448, 448] and listed["world-tally-varied"]["side_range"] == [256, 1024]
    res = runner.invoke(world_cli.app, ["make", "--out", str(tmp_path / "no"), "--split", "world-vsr",
                                        "--style", "sketchy"])
    assert res.exit_code == 2 and "Invalid value for '--style'" in res.output and not (tmp_path / "no").exists()


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), occlusion=st.booleans(), antialias=st.booleans(),
    tiny=st.booleans(), width=st.integers(256, 520), height=st.integers(256, 520),
)
def test_varied_scene_invariants_property(
    seed: int, n: int, occlusion: bool, antialias: bool, tiny: bool, width: int, height: int,
) -> None:
    """Any varied scene: visible masks disjoint, each one 4-connected piece, occluded objects >= 60% visible,
    same-colour objects apart, every shade naming its colour and painted where its mask is."""
    rng = np.random.default_rng(seed)
    attrs = tuple(Attr(SHAPES[int(rng.integers(6))], list(COLOURS)[int(rng.integers(6))]) for _ in range(n))
    look = Look(width, height, "png", 0, antialias, tiny)
    spec = SceneSpec(attrs, width=width, height=height, occlusion=occlusion, distractors=3, look=look)
    try:
        scene = make_scene(rng, spec)
    except PlacementError:
        return
    image, masks = render(scene)
    pixels = np.asarray(image)
    taken = np.zeros((height, width), dtype=bool)
    for o, m in zip(scene.objects, masks, strict=True):
        assert ndimage.label(m)[1] == 1 and not (taken & m).any()
        taken |= m
        assert o.visible_fraction >= 0.6 and name_colour(o.shade) == o.colour
        if not antialias:
            assert (pixels[m] == o.shade).all()
    for a, b in itertools.combinations(range(len(masks)), 2):
        if scene.objects[a].colour == scene.objects[b].colour:
            grown, window = _grown(masks[a], 3)
            assert not (grown & masks[b][window]).any()
