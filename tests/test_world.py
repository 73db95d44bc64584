"""The embedded world: determinism, exact masks, independently recomputed answers, storage and CLI."""

from __future__ import annotations

import io
import json
import math
import re
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
from vgt_agent.world.generate import make_sample
from vgt_agent.world.palette import COLOURS, SHAPES, SIZES
from vgt_agent.world.render import render
from vgt_agent.world.scene import Attr, PlacementError, SceneSpec, make_scene
from vgt_agent.world.splits import SPLITS
from vgt_agent.world.storage import load_split, make_split

EIGHT = np.ones((3, 3), dtype=bool)
BASE_SPLITS = [name for name in SPLITS if not name.endswith("-varied")]  # their twins: tests/test_world_style.py


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def samples() -> list[tuple[np.ndarray, dict]]:
    """A spread of canonical samples from every split (train covers every family twice over)."""
    out = []
    for name in BASE_SPLITS:
        for index in range(16 if name == "world-train" else 8):
            image, record = make_sample(name, index, style="canonical")
            out.append((np.asarray(image), record))
    return out


# ------------------------------------------------------------------------------------------------------
# Determinism
# ------------------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_and_metadata() -> None:
    for name, index in [("world-tally", 3), ("world-countqa", 5), ("world-multihop", 1), ("world-train", 7)]:
        a_img, a_rec = make_sample(name, index)
        b_img, b_rec = make_sample(name, index)
        assert _png(a_img) == _png(b_img)
        assert json.dumps(a_rec) == json.dumps(b_rec)


def test_seed_override_and_splits_differ() -> None:
    digests = set()
    for name in BASE_SPLITS:
        for index in range(3):
            digests.add(_png(make_sample(name, index)[0]))
    assert len(digests) == 3 * len(BASE_SPLITS)  # benchmark images never equal train images
    assert len({spec.seed for spec in SPLITS.values()}) == len(SPLITS)
    assert _png(make_sample("world-vsr", 0, seed=7)[0]) != _png(make_sample("world-vsr", 0)[0])


def test_custom_image_size() -> None:
    image, record = make_sample("world-vsr", 2, width=320, height=256)
    assert image.size == (320, 256) and (record["width"], record["height"]) == (320, 256)
    for o in record["objects"]:
        assert o["rle"]["size"] == [256, 320]


# ------------------------------------------------------------------------------------------------------
# Masks agree with pixels
# ------------------------------------------------------------------------------------------------------


def _check_masks(pixels: np.ndarray, objects: list[dict]) -> None:
    masks = [geometry.decode_rle(o["rle"]) for o in objects]
    h, w = pixels.shape[:2]
    taken = np.zeros((h, w), dtype=bool)
    for o, m in zip(objects, masks, strict=True):
        assert m.shape == (h, w) and m.any()
        assert not (taken & m).any(), "visible masks overlap"
        taken |= m
        assert (pixels[m] == COLOURS[o["colour"]]).all(), "a mask pixel is not its object's colour"
        assert ndimage.label(m)[1] == 1, "a visible mask is not one 4-connected piece"
        assert o["visible_fraction"] >= 0.6 - 1e-9
        assert o["area"] == int(m.sum())
        assert tuple(o["box"]) == geometry.mask_to_box(m)
        assert tuple(o["point"]) == geometry.mask_to_point(m)
        assert m[o["point"][1], o["point"][0]]
        assert o["shape"] in SHAPES and o["size"] in SIZES
    for colour, rgb in COLOURS.items():
        exact = (pixels == rgb).all(axis=2)
        same = [m for o, m in zip(objects, masks, strict=True) if o["colour"] == colour]
        union = np.logical_or.reduce(same) if same else np.zeros((h, w), dtype=bool)
        assert (exact == union).all(), f"{colour} pixels outside the {colour} objects"
        # Segmentation by colour + 8-connected components recovers exactly the instances.
        labels, n = ndimage.label(exact, structure=EIGHT)
        assert n == len(same)
        for m in same:
            assert len(np.unique(labels[m])) == 1 and (labels == labels[m][0]).sum() == m.sum()


def test_masks_agree_with_pixels(samples: list[tuple[np.ndarray, dict]]) -> None:
    for pixels, record in samples:
        _check_masks(pixels, record["objects"])
        for g in record["gold_objects"]:
            o = record["objects"][g["object_id"]]
            assert g["rle"] == o["rle"] and g["box"] == o["box"] and g["point"] == o["point"]


def test_same_colour_objects_keep_a_gap(samples: list[tuple[np.ndarray, dict]]) -> None:
    for _, record in samples:
        masks = [geometry.decode_rle(o["rle"]) for o in record["objects"]]
        for colour in COLOURS:
            ids = [i for i, o in enumerate(record["objects"]) if o["colour"] == colour]
            for i in ids:
                grown = ndimage.binary_dilation(masks[i], structure=EIGHT, iterations=2)
                for j in ids:
                    assert j == i or not (grown & masks[j]).any(), "same-colour objects closer than 3 px"


def test_occlusion_happens_and_stays_partial() -> None:
    records = [make_sample("world-countqa", i)[1] for i in range(12)]
    fractions = [o["visible_fraction"] for r in records for o in r["objects"]]
    assert min(fractions) >= 0.6 and any(f < 1.0 for f in fractions)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), occlusion=st.booleans(), texture=st.booleans())
def test_scene_invariants_property(seed: int, n: int, occlusion: bool, texture: bool) -> None:
    rng = np.random.default_rng(seed)
    attrs = tuple(Attr(SHAPES[int(rng.integers(6))], list(COLOURS)[int(rng.integers(6))]) for _ in range(n))
    spec = SceneSpec(attrs, width=256, height=224, occlusion=occlusion, texture=texture, distractors=5)
    try:
        scene = make_scene(rng, spec)
    except PlacementError:
        return
    image, masks = render(scene)
    objects = [
        {"colour": o.colour, "shape": o.shape, "size": o.size, "rle": geometry.encode_rle(m), "area": o.area,
         "box": list(o.box), "point": list(o.point), "visible_fraction": o.visible_fraction}
        for o, m in zip(scene.objects, masks, strict=True)
    ]
    _check_masks(np.asarray(image), objects)


def test_make_scene_rejects_bad_specs() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        make_scene(rng, SceneSpec((Attr("blob", "red"),)))
    crowded = tuple(Attr("circle", "red", "large") for _ in range(60))
    with pytest.raises(PlacementError):
        make_scene(rng, SceneSpec(crowded, width=128, height=128, tries=20))


# ------------------------------------------------------------------------------------------------------
# Answers, recomputed by an independent solver from the scene graph alone
# ------------------------------------------------------------------------------------------------------

NOUN = r"((?:small |medium |large )?\w+ \w+)"


def _resolve(phrase: str, objects: list[dict]) -> dict:
    words = phrase.split()
    size = words[0] if len(words) == 3 else None
    colour, shape = words[-2], words[-1]
    hits = [
        o for o in objects
        if o["colour"] == colour and o["shape"] == shape and (size is None or o["size"] == size)
    ]
    assert len(hits) == 1, f"referring expression {phrase!r} is not unique ({len(hits)} matches)"
    return hits[0]


def _where(a: dict, b: dict) -> tuple[float, float]:
    return a["center"][0] - b["center"][0], a["center"][1] - b["center"][1]


def _letter(choices: list[str], option: str) -> str:
    return "ABCD"[choices.index(option)]


def solve(record: dict) -> tuple[str, dict[str, set[int]]]:
    """(answer, object ids per role) from the question text and the scene graph."""
    q, objs, choices = record["question"], record["objects"], record["choices"]
    if m := re.fullmatch(r"How many shapes are not (\w+)\?", q):
        ids = {o["id"] for o in objs if o["colour"] != m[1]}
        return str(len(ids)), {"counted": ids}
    if m := re.fullmatch(r"How many (\w+) (\w+)s are there\?", q):
        ids = {o["id"] for o in objs if o["colour"] == m[1] and o["shape"] == m[2]}
        return str(len(ids)), {"counted": ids}
    if m := re.fullmatch(r"How many (\w+)s are there\?", q):
        ids = {o["id"] for o in objs if o["shape"] == m[1]}
        return str(len(ids)), {"counted": ids}
    if m := re.fullmatch(
        r"Is the (second |third |)(leftmost|rightmost|topmost|bottommost) (\w+(?: shape)?) (?:to the )?"
        r"(\w+) or (\w+) (?:of )?the " + NOUN + r"\?", q
    ):
        kind = m[3].split()
        members = [o for o in objs if (o["colour"] if kind[-1] == "shape" else o["shape"]) == kind[0]]
        axis = 0 if m[2] in ("leftmost", "rightmost") else 1
        members.sort(key=lambda o: o["center"][axis], reverse=m[2] in ("rightmost", "bottommost"))
        target = members[{"": 0, "second ": 1, "third ": 2}[m[1]]]
        anchor = _resolve(m[6], objs)
        dx, dy = _where(target, anchor)
        rel = ("left" if dx < 0 else "right") if axis == 1 else ("above" if dy < 0 else "below")
        assert [m[4], m[5]] == choices
        refs = {o["id"] for o in members} - {target["id"]}
        return _letter(choices, rel), {"target": {target["id"]}, "anchor": {anchor["id"]}, "reference": refs}
    relation = r" (to the left of|to the right of|above|below) the "
    if m := re.fullmatch(r"Is the " + NOUN + relation + NOUN + r"\?", q):
        a, b = _resolve(m[1], objs), _resolve(m[3], objs)
        dx, dy = _where(a, b)
        truth = {"to the left of": dx < 0, "to the right of": dx > 0, "above": dy < 0, "below": dy > 0}[m[2]]
        return ("yes" if truth else "no"), {"target": {a["id"]}, "anchor": {b["id"]}}
    if m := re.fullmatch(r"Where is the " + NOUN + r" relative to the " + NOUN + r"\?", q):
        a, b = _resolve(m[1], objs), _resolve(m[2], objs)
        dx, dy = _where(a, b)
        rel = ("left" if dx < 0 else "right") if abs(dx) > abs(dy) else ("above" if dy < 0 else "below")
        return _letter(choices, rel), {"target": {a["id"]}, "anchor": {b["id"]}}
    if m := re.fullmatch(f"Which is closer to the {NOUN}: the {NOUN} or the {NOUN}\\?", q):
        z, x, y = (_resolve(m[i], objs) for i in (1, 2, 3))
        near, far = sorted((x, y), key=lambda o: math.dist(o["center"], z["center"]))
        assert choices == [f"the {m[2]}", f"the {m[3]}"]
        option = choices[[x["id"], y["id"]].index(near["id"])]
        roles = {"target": {near["id"]}, "alternative": {far["id"]}, "anchor": {z["id"]}}
        return _letter(choices, option), roles
    if m := re.fullmatch(r"Which is (larger|smaller): the (\w+ \w+) or the (\w+ \w+)\?", q):
        x, y = _resolve(m[2], objs), _resolve(m[3], objs)
        small, big = sorted((x, y), key=lambda o: geometry.rle_area(o["rle"]))
        target, other = (big, small) if m[1] == "larger" else (small, big)
        option = choices[[x["id"], y["id"]].index(target["id"])]
        return _letter(choices, option), {"target": {target["id"]}, "alternative": {other["id"]}}
    raise AssertionError(f"solver does not understand {q!r}")


# The families this solver reads; the reworded families (paraphrase.py, attributes.py) have their own tests.
SOLVED_FAMILIES = frozenset({
    "count_colour_shape", "count_not_colour", "count_shape", "relation_yes_no", "relation_choice", "closer",
    "larger", "kth_relation",
})


def test_answers_recomputed_independently(samples: list[tuple[np.ndarray, dict]]) -> None:
    seen = set()
    for _, record in samples:
        if record["family"] not in SOLVED_FAMILIES:
            continue
        answer, roles = solve(record)
        assert answer == record["answer"], record["question"]
        got: dict[str, set[int]] = {}
        for g in record["gold_objects"]:
            got.setdefault(g["role"], set()).add(g["object_id"])
        assert got == {r: ids for r, ids in roles.items() if ids}, record["question"]
        seen.add(record["family"])
        expected_type = {"count": r"\d+", "yes_no": "yes|no", "choice": "[A-D]"}[record["answer_type"]]
        assert re.fullmatch(expected_type, record["answer"])
        assert (record["answer_type"] == "choice") == bool(record["choices"])
    assert seen == SOLVED_FAMILIES


def test_answer_distributions_are_spread() -> None:
    tally = [make_sample("world-tally", i)[1]["answer"] for i in range(40)]
    assert "0" in tally and len(set(tally)) >= 6
    vsr = [make_sample("world-vsr", i)[1]["answer"] for i in range(20)]
    assert {"yes", "no"} <= set(vsr)
    emb = [make_sample("world-embspatial", i)[1]["answer"] for i in range(20)]
    assert len(set(emb)) >= 3
    assert max(len(make_sample("world-tally", i)[1]["objects"]) for i in range(40)) >= 15


def test_ambiguous_references_get_a_size() -> None:
    """Whenever a question names an object with a size, its colour+shape alone would be ambiguous."""
    for i in range(40):
        record = make_sample("world-train", i)[1]
        for _size, colour, shape in re.findall(r"the (small|medium|large) (\w+) (\w+)", record["question"]):
            same = [o for o in record["objects"] if o["colour"] == colour and o["shape"] == shape]
            assert len(same) >= 2


# ------------------------------------------------------------------------------------------------------
# Storage
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "train"
    make_split(out, "world-train", n=10, style="canonical")
    return out


def test_split_folder_layout(split_dir: Path) -> None:
    info = json.loads((split_dir / "info.json").read_text())
    assert {k: info[k] for k in ("split", "n", "seed", "width", "height")} == {
        "split": "world-train", "n": 10, "seed": SPLITS["world-train"].seed, "width": 448, "height": 448,
    }
    assert info["style"] == "canonical"
    assert "generator_version" in info
    rows = [json.loads(line) for line in (split_dir / "metadata.jsonl").read_text().splitlines()]
    assert [r["file_name"] for r in rows] == [f"images/{i:06d}.png" for i in range(10)]
    assert len({tuple(r) for r in rows}) == 1  # identical key sets
    for i, row in enumerate(rows):
        image, record = make_sample("world-train", i, style="canonical")
        assert row == json.loads(json.dumps(record))
        assert (split_dir / row["file_name"]).is_file()
        assert np.array_equal(np.asarray(Image.open(split_dir / row["file_name"])), np.asarray(image))


def test_datasets_imagefolder_round_trip(split_dir: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("imagefolder", data_dir=str(split_dir), split="train")
    assert len(ds) == 10
    rows = [json.loads(line) for line in (split_dir / "metadata.jsonl").read_text().splitlines()]
    for item, row in zip(ds, rows, strict=True):
        assert isinstance(item["image"], Image.Image) and item["image"].size == (448, 448)
        assert (item["id"], item["answer"], item["choices"]) == (row["id"], row["answer"], row["choices"])
        assert [g["object_id"] for g in item["gold_objects"]] == [g["object_id"] for g in row["gold_objects"]]
        assert item["objects"][0]["rle"] == row["objects"][0]["rle"]


def test_load_split(split_dir: Path) -> None:
    samples = list(load_split(split_dir))
    assert [s.id for s in samples] == [f"world-train/{i:06d}" for i in range(10)]
    for s in samples:
        assert s.dataset == "world" and s.split == "world-train"
        assert s.load_image().size == (448, 448)
        assert {"family", "objects", "index"} <= set(s.meta)
        for g in s.gold_objects:
            obj = s.meta["objects"][g.meta["object_id"]]
            assert g.rle == obj["rle"] and g.box == tuple(float(v) for v in obj["box"]) and g.role
            assert geometry.decode_rle(g.rle).any()


def test_make_split_overwrites_cleanly_and_never_leaves_partials(tmp_path: Path) -> None:
    out = tmp_path / "vsr"
    make_split(out, "world-vsr", n=4)
    (out / "images" / "stale.png").write_bytes(b"x")
    make_split(out, "world-vsr", n=2)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000000.png", "000001.png"]
    assert len((out / "metadata.jsonl").read_text().splitlines()) == 2

    def interrupt(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt):
        make_split(fresh, "world-vsr", n=5, progress=interrupt)
    assert not fresh.exists()
    with pytest.raises(KeyboardInterrupt):
        make_split(out, "world-vsr", n=5, progress=interrupt)
    assert len((out / "metadata.jsonl").read_text().splitlines()) == 2  # the old split is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vsr"]

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        make_split(precious, "world-vsr", n=1)
    assert (precious / "notes.txt").read_text() == "keep me"
    with pytest.raises(KeyError):
        make_split(tmp_path / "x", "world-nope", n=1)


# ------------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------------


def test_cli_make_show_and_splits(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "emb"
    res = runner.invoke(world_cli.app, ["make", "--out", str(out), "--split", "world-embspatial", "--n", "3"])
    assert res.exit_code == 0, res.output
    assert "3 samples" in res.output and "relation_choice" in res.output
    args = ["make", "--out", str(out), "--split", "world-tally", "--n", "2", "--json"]
    res = runner.invoke(world_cli.app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["n"] == 2 and summary["families"] == {"count_colour_shape": 2}

    png = tmp_path / "show.png"
    res = runner.invoke(world_cli.app, ["show", str(out), "1", "--png", str(png)])
    assert res.exit_code == 0, res.output
    assert "How many" in res.output and "scene objects" in res.output
    assert Image.open(png).size == (448, 448)
    res = runner.invoke(world_cli.app, ["show", str(out), "0", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["id"] == "world-tally/000000"

    res = runner.invoke(world_cli.app, ["splits", "--json"])
    assert res.exit_code == 0 and {s["name"] for s in json.loads(res.stdout)} == set(SPLITS)
    res = runner.invoke(world_cli.app, ["splits"])
    assert res.exit_code == 0 and "world-tally" in res.output


@pytest.mark.parametrize(
    "args",
    [
        ["make", "--out", "{tmp}/bad", "--split", "world-nope"],
        ["make", "--out", "{tmp}/bad", "--split", "world-vsr", "--n", "0"],
        ["make", "--out", "{tmp}/bad", "--split", "world-vsr", "--seed", "-3"],
        ["make", "--out", "{tmp}/precious", "--split", "world-vsr", "--n", "1"],
        ["show", "{tmp}/missing", "0"],
        ["show", "{tmp}/ok", "5"],
        ["show", "{tmp}/ok", "--", "-1"],
    ],
)
def test_cli_bad_input_exits_2(tmp_path: Path, args: list[str]) -> None:
    make_split(tmp_path / "ok", "world-vsr", n=2)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    res = CliRunner().invoke(world_cli.app, [a.format(tmp=tmp_path) for a in args])
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "bad").exists()
    assert sorted(p.name for p in (tmp_path / "precious").iterdir()) == ["notes.txt"]
    assert res.output.count("error:") == 1
