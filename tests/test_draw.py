"""Annotated pictures, checked on the pixels of real renders of scenes drawn here with PIL (not by vgt's world)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image, ImageDraw
from pycocotools import mask as coco

from vgt_agent.cli.trace_png import (
    MIN_SIDE,
    nothing_found,
    picture_path_problem,
    trace_caption,
    trace_marks,
    trace_picture,
    write_trace_png,
)
from vgt_agent.draw import (
    HALO,
    PALETTE,
    REJECTED_COLOUR,
    Mark,
    Style,
    add_caption,
    annotate,
    draw_marks,
    phrase_colours,
)

BACKGROUND = (205, 205, 200)
YELLOW = (240, 210, 40)
RED = (200, 30, 30)
BLUE = (30, 60, 200)


def scene(size: int = 256) -> tuple[Image.Image, dict[str, list[np.ndarray]]]:
    """Flat shapes on a plain background, with each object's mask taken from its own colour."""
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    s = size / 256
    for cx, cy in ((60, 70), (190, 60), (120, 180)):
        draw.ellipse([(cx - 22) * s, (cy - 22) * s, (cx + 22) * s, (cy + 22) * s], fill=YELLOW)
    draw.rectangle([200 * s, 170 * s, 236 * s, 206 * s], fill=RED)
    pixels = np.asarray(image)
    masks: dict[str, list[np.ndarray]] = {}
    for name, colour in (("yellow", YELLOW), ("red", RED)):
        labels, n = _components((pixels == colour).all(axis=2))
        masks[name] = [labels == i for i in range(1, n + 1)]
    return image, masks


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    from scipy import ndimage

    return ndimage.label(mask)


def rle(mask: np.ndarray) -> dict:
    """COCO RLE made by pycocotools itself, as a store row holds it."""
    r = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(r["size"]), "counts": r["counts"].decode("ascii")}


def norm_point(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return [round((xs.mean() + 0.5) / w * 1000), round((ys.mean() + 0.5) / h * 1000)]


def trace_row(image_path: Path, objects: dict[str, list[np.ndarray]], **extra) -> dict:
    """A store row of an ask trace: a tool call for yellow circles, then the model's own numbered points."""
    yellow = objects["yellow"]
    points = [norm_point(m) for m in yellow]
    groundings = [{"idx": 0, "phrase": "yellow circles", "kind": "point", "coords": points, "source": "tool",
                   "verified": None}]
    groundings += [{"idx": i + 1, "phrase": "yellow circles", "kind": "point", "coords": [p], "source": "model",
                    "verified": True} for i, p in enumerate(points)]
    row = {
        "id": "0123456789abcdef", "image_path": str(image_path), "question": "How many yellow circles are there?",
        "answer": "3", "gold_answer": "3", "correct": True, "status": "ok", "reason": "answered", "error": None,
        "backend": "openai", "model": "stub-vlm", "grounder": "world", "choices": [],
        "messages": [{"role": "assistant", "content": "<think> <ground> yellow circles </ground>"},
                     {"role": "tool", "content": "\n<obj> yellow circles | ... </obj>\n"}],
        "groundings": groundings,
        "masks": [{"grounding_idx": 0, "rle": rle(m), "selected": True} for m in yellow],
    }
    return row | extra


def overlaps(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def test_outline_keeps_the_objects_own_colour() -> None:
    image, masks = scene()
    mask = masks["yellow"][0]
    out = np.asarray(annotate(image, [Mark("yellow circle", masks=[mask])]))
    assert out.shape == np.asarray(image).shape
    assert (out[mask] == YELLOW).all()  # every pixel of the object as it was: outlined, not tinted
    from scipy import ndimage

    ring = ndimage.binary_dilation(mask, iterations=2) & ~mask
    assert ((out[ring] == PALETTE[0]).all(axis=1)).mean() > 0.9  # the outline hugs the object, in its colour
    far = ~ndimage.binary_dilation(mask, iterations=12)
    labelled = np.zeros_like(mask)
    drawing = draw_marks(image, [Mark("yellow circle", masks=[mask])])
    for label in drawing.labels:
        x1, y1, x2, y2 = (round(v) for v in label.box)
        labelled[y1:y2, x1:x2] = True
    untouched = far & ~labelled
    assert (out[untouched] == np.asarray(image)[untouched]).all()  # nothing else changed


def test_trace_picture_numbers_the_thoughts_points_and_adds_a_caption(tmp_path: Path) -> None:
    image, masks = scene()
    path = tmp_path / "scene.png"
    image.save(path)
    drawing = trace_picture(trace_row(path, masks), image)
    k = drawing.scale
    assert k == -(-MIN_SIDE // 256) and drawing.caption_top == 256 * k
    out = np.asarray(drawing.image)
    assert out.shape[0] > drawing.caption_top + 40 and out.shape[1] == 256 * k
    # the badges carry 1..3 in the order the model wrote its points, each on its circle
    assert [b.number for b in drawing.badges] == [1, 2, 3]
    for badge, mask in zip(drawing.badges, masks["yellow"], strict=True):
        x, y = badge.centre
        assert mask[int(y // k), int(x // k)]
        r = Style.for_size(256 * k, 256 * k).badge
        patch = out[int(y - r / 2):int(y + r / 2), int(x - r / 2):int(x + r / 2)]
        ink = (np.abs(patch.astype(int) - PALETTE[0]).sum(axis=2) > 150).mean()
        assert 0.03 < ink < 0.7  # the number's glyph on the badge's fill
    # the caption band: white, below the picture, with dark text on several lines
    band = out[drawing.caption_top + 3:]
    dark = (band.sum(axis=2) < 300).any(axis=1)
    assert dark.sum() > 30 and (band[:, :, 0] > 240).mean() > 0.8
    lines = [line.text for line in trace_caption(trace_row(path, masks), trace_marks(trace_row(path, masks),
                                                                                        256, 256)[1])]
    assert lines[0] == "Q: How many yellow circles are there?" and lines[1].startswith("A: 3 · gold 3 · correct")
    assert any("grounder world found 3" in t and "points 1-3, all 3 verified" in t for t in lines)
    assert lines[-1] == "backend openai · model stub-vlm · grounder world · trace 01234567"


def test_the_yellow_objects_pixels_are_unchanged_in_a_trace_picture(tmp_path: Path) -> None:
    image, masks = scene()
    path = tmp_path / "scene.png"
    image.save(path)
    row = trace_row(path, masks)
    row["groundings"] = row["groundings"][:1]  # the tool's reply only: outlines and badges
    drawing = trace_picture(row, image)
    k = drawing.scale
    out = np.asarray(drawing.image)[: drawing.caption_top]
    r = Style.for_size(256 * k, 256 * k).badge
    for mask, badge in zip(masks["yellow"], drawing.badges, strict=True):
        big = np.kron(mask, np.ones((k, k), dtype=bool))
        yy, xx = np.nonzero(big)
        away = np.hypot(xx - badge.centre[0], yy - badge.centre[1]) > r + 2
        assert (out[yy[away], xx[away]] == YELLOW).all()


def test_labels_stay_inside_the_frame_and_apart_even_when_crowded() -> None:
    image, masks = scene(256)
    all_masks = masks["yellow"] + masks["red"]
    marks = [Mark(f"a rather long phrase naming object number {i} in detail", masks=[m], points=[(10.0, 10.0)])
             for i, m in enumerate(all_masks * 3)]
    marks.append(Mark("[bold red]markup[/] and \x1b[31mescapes\x1b[0m " + "x" * 500, points=[(255.0, 255.0)]))
    drawing = draw_marks(image, marks)
    w, h = drawing.image.size
    assert len(drawing.labels) + len(drawing.dropped) == len(marks) and drawing.labels
    for label in drawing.labels:
        x1, y1, x2, y2 = label.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert "\x1b" not in label.text
    for a, b in itertools.combinations(drawing.labels, 2):
        assert not overlaps(a.box, b.box), (a.text, b.text)


def test_labels_sit_beside_their_objects_not_over_them() -> None:
    image, masks = scene(448)
    objects = masks["yellow"] + masks["red"]
    names = ["yellow circle A", "yellow circle B", "yellow circle C", "red square"]
    drawing = draw_marks(image, [Mark(n, masks=[m]) for n, m in zip(names, objects, strict=True)])
    assert len(drawing.labels) == 4
    boxes = []
    for m in objects:
        ys, xs = np.nonzero(m)
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    for label in drawing.labels:
        assert not any(overlaps(label.box, b) for b in boxes), label.text  # clear of every object
        own = boxes[label.mark]
        gap = max(own[0] - label.box[2], label.box[0] - own[2], own[1] - label.box[3], label.box[1] - own[3])
        assert gap < 20  # and next to its own
    # the label is drawn: its fill colour is in the picture where the layout says
    out = np.asarray(drawing.image)
    for label in drawing.labels:
        x1, y1, x2, y2 = (round(v) for v in label.box)
        colour = PALETTE[label.mark]
        assert (np.abs(out[y1 + 1:y2 - 1, x1 + 1:x2 - 1].astype(int) - colour).sum(axis=2) < 10).mean() > 0.4


def test_unverified_groundings_are_dashed_red_and_verified_ones_are_not() -> None:
    image, _ = scene()
    box = (100.0, 100.0, 180.0, 160.0)
    bad = np.asarray(annotate(image, [Mark("guess", boxes=[box], verified=False)]))
    good = np.asarray(annotate(image, [Mark("found", boxes=[box], verified=True)]))
    top_bad, top_good = bad[99, 100:180], good[99, 100:180]
    red = (top_bad == REJECTED_COLOUR).all(axis=1)
    assert 0.2 < red.mean() < 0.8  # dashed: red runs with gaps
    assert not (top_good == REJECTED_COLOUR).all(axis=1).any()
    assert (top_good == PALETTE[0]).all(axis=1).mean() > 0.9  # solid, in the mark's colour
    points = [(60.0, 200.0)]
    unverified = draw_marks(image, [Mark("", points=points, numbers=[7], verified=False)])
    verified = draw_marks(image, [Mark("", points=points, numbers=[7], verified=True)])
    near = np.s_[185:215, 45:75]
    assert ((np.asarray(unverified.image)[near] == REJECTED_COLOUR).all(axis=2)).sum() > 20
    assert not ((np.asarray(verified.image)[near] == REJECTED_COLOUR).all(axis=2)).any()


def test_a_model_grounding_that_did_not_verify_is_named_in_the_legend(tmp_path: Path) -> None:
    image, masks = scene()
    path = tmp_path / "scene.png"
    image.save(path)
    row = trace_row(path, masks)
    row["groundings"].append({"idx": 4, "phrase": "blue star", "kind": "box", "coords": [[100, 100, 300, 300]],
                              "source": "model", "verified": False})
    marks, groups = trace_marks(row, 256, 256)
    assert marks[-1].label == "blue star (not verified)" and marks[-1].numbers == [4]
    lines = trace_caption(row, groups)
    line = next(x for x in lines if x.text.startswith("blue star"))
    assert "the model's box 4, 0 of 1 verified" in line.text and line.dashed_swatch
    drawing = trace_picture(row, image)
    k = drawing.scale
    edge = np.asarray(drawing.image)[round(25.6 * k) - 2, round(26 * k):round(76 * k)]
    assert (edge == REJECTED_COLOUR).all(axis=1).any()


def test_nothing_found_gets_a_clear_note(tmp_path: Path) -> None:
    image, _ = scene()
    path = tmp_path / "scene.png"
    image.save(path)
    row = trace_row(path, {"yellow": []}, question="How many orange stars are there?", answer="0",
                    gold_answer="0", groundings=[], masks=[],
                    messages=[{"role": "assistant", "content": "<think> <ground> orange stars </ground>"},
                              {"role": "tool", "content": "\nNo orange stars found.\n"},
                              {"role": "assistant", "content": "total 0 </think> \\boxed{0}"}])
    assert nothing_found(row) == ["orange stars"]
    lines = trace_caption(row, [])
    note = next(x for x in lines if "nothing found" in x.text)
    assert note.text == "nothing found for 'orange stars' (grounder world)" and note.colour == REJECTED_COLOUR
    drawing = trace_picture(row, image)
    out = np.asarray(drawing.image)
    k = drawing.scale
    enlarged = np.asarray(image.resize((256 * k, 256 * k), Image.Resampling.NEAREST))
    assert (out[: drawing.caption_top] == enlarged).all()  # nothing was drawn on the picture itself...
    band = out[drawing.caption_top:]
    red_text = (np.abs(band.astype(int) - REJECTED_COLOUR).sum(axis=2) < 60).sum()
    assert red_text > 100  # ...and the note is in the caption, in red
    assert out.shape[0] > drawing.caption_top  # not an unchanged copy of the input


def test_sizes_from_small_to_large_stay_readable() -> None:
    small, large = Style.for_size(256, 256), Style.for_size(1024, 1024)
    assert large.font_size > small.font_size and large.line > small.line and large.badge > small.badge
    for size in (256, 1024):
        image, masks = scene(size)
        drawing = draw_marks(image, [Mark("yellow circles", masks=masks["yellow"], points=[(5.0, 5.0)],
                                          numbers=[1])], min_side=MIN_SIDE)
        assert max(drawing.image.size) >= MIN_SIDE
        assert drawing.scale == (1 if size >= MIN_SIDE else -(-MIN_SIDE // size))
        height = drawing.labels[0].box[3] - drawing.labels[0].box[1]
        assert 16 <= height <= 0.06 * max(drawing.image.size) + 12  # text neither tiny nor huge
        assert drawing.badges[0].centre[0] >= Style.for_size(*drawing.image.size).badge  # kept in the frame


def test_caption_wraps_long_text_inside_the_band() -> None:
    image, _ = scene()
    drawing = draw_marks(image, [])
    from vgt_agent.draw import CaptionLine

    short = add_caption(drawing, [CaptionLine("Q: short")])
    long = add_caption(drawing, [CaptionLine("Q: " + "word " * 200), CaptionLine("z" * 400)])
    assert long.image.height > short.image.height + 5 * (short.image.height - 256)
    band = np.asarray(long.image)[256 + 3:]
    assert (band[:, -3:] == 255).all()  # no text ran off the right edge


def test_phrase_colours_match_by_phrase() -> None:
    colours = phrase_colours(["Red circle", "blue square", "red  circle", "green star"])
    assert colours[0] == colours[2] != colours[1] and len({colours[0], colours[1], colours[3]}) == 3


def test_a_photo_like_image_still_gets_clear_labels() -> None:
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (300, 420, 3), dtype=np.uint8)
    image = Image.fromarray(texture)
    mask = np.zeros((300, 420), dtype=bool)
    mask[100:180, 150:260] = True
    drawing = draw_marks(image, [Mark("cup", masks=[mask]), Mark("saucer", boxes=[(20.0, 20.0, 120.0, 90.0)])])
    assert len(drawing.labels) == 2 and not overlaps(drawing.labels[0].box, drawing.labels[1].box)
    out = np.asarray(drawing.image)
    assert (out[mask] == texture[mask]).all()
    halo = (out == HALO).all(axis=2).sum()
    assert halo > 100  # the dark halo keeps the outline visible on any background


def test_write_trace_png_refuses_a_bad_path_and_writes_nothing(tmp_path: Path) -> None:
    image, masks = scene()
    path = tmp_path / "scene.png"
    image.save(path)
    row = trace_row(path, masks)
    for bad in (tmp_path / "picture.notanimage", tmp_path / "missing" / "p.png", tmp_path):
        assert picture_path_problem(bad)
        with pytest.raises(typer.Exit) as e:
            write_trace_png(row, bad)
        assert e.value.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.png"]
    out = tmp_path / "ok.jpg"
    write_trace_png(row, out)
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.height > im.width
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.jpg", "scene.png"]


def test_coordinates_off_the_image_and_mismatched_masks_do_not_break_the_picture(tmp_path: Path) -> None:
    image, masks = scene()
    path = tmp_path / "scene.png"
    image.save(path)
    row = trace_row(path, masks)
    row["groundings"].append({"idx": 4, "phrase": "edge", "kind": "point", "coords": [[1000, 1000], [0, 0]],
                              "source": "model", "verified": False})
    row["masks"].append({"grounding_idx": 0, "rle": rle(np.ones((10, 10), dtype=bool)), "selected": True})
    drawing = trace_picture(row, image)
    w = drawing.image.width
    for badge in drawing.badges:
        assert 0 <= badge.centre[0] <= w and 0 <= badge.centre[1] <= drawing.caption_top
    assert [b.number for b in drawing.badges] == [1, 2, 3, 4, 5]


def _store_with_a_miss(tmp_path: Path) -> tuple[Path, str]:
    from vgt_agent.store import ImageRecord, SampleRecord, TraceRecord, TraceStore

    image, _ = scene()
    image.save(tmp_path / "scene.png")
    record = ImageRecord.from_path(tmp_path / "scene.png")
    db = tmp_path / "t.db"
    messages = [{"role": "assistant", "content": "<think> <ground> orange stars </ground>"},
                {"role": "tool", "content": "\nNo orange stars found.\n"},
                {"role": "assistant", "content": "total 0 </think> \\boxed{0}"}]
    with TraceStore.open(db) as store:
        run = store.start_run("ask", backend="openai", model="stub-vlm", grounder="world")
        sample = SampleRecord("adhoc", "", "k", "How many orange stars are there?", record, "0", "count")
        trace_id = store.put_trace(TraceRecord(run, sample, "agent", messages=messages, answer="0", correct=True,
                                               backend="openai", model="stub-vlm", grounder="world"))
    return db, trace_id


def test_traces_show_png_through_the_cli_and_a_real_store(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vgt_agent.cli.main import app

    db, trace_id = _store_with_a_miss(tmp_path)
    runner = CliRunner()
    png = tmp_path / "out.png"
    result = runner.invoke(app, ["traces", "show", trace_id, "--db", str(db), "--png", str(png)])
    assert result.exit_code == 0, result.output
    with Image.open(png) as im:
        out = np.asarray(im.convert("RGB"))
    k = out.shape[1] // 256
    band = out[256 * k:]
    assert band.shape[0] > 60 and (np.abs(band.astype(int) - REJECTED_COLOUR).sum(axis=2) < 60).sum() > 100
    before = sorted(p.name for p in tmp_path.iterdir())
    for bad in ("out.txt", "nowhere/out.png"):
        result = runner.invoke(app, ["traces", "show", trace_id, "--db", str(db), "--png", str(tmp_path / bad)])
        assert result.exit_code == 2 and "cannot write" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.slow
def test_ask_save_on_a_world_image_with_the_shipped_policy(tmp_path: Path) -> None:
    """The README's first command: a world image, vgt-tiny, `--save`; the picture is numbered and captioned."""
    import json

    from typer.testing import CliRunner

    from vgt_agent.cli.main import app
    from vgt_agent.tiny.recipe import shipped_weights

    if shipped_weights() is None:
        pytest.skip("the shipped vgt-tiny weights are not in this checkout")
    runner = CliRunner()
    world = tmp_path / "world"
    made = runner.invoke(app, ["world", "make", "--out", str(world), "--split", "world-tally", "--n", "3"])
    assert made.exit_code == 0, made.output
    rows = [json.loads(line) for line in (world / "metadata.jsonl").read_text().splitlines()]
    row = rows[2]
    png = tmp_path / "answer.png"
    result = runner.invoke(app, ["ask", str(world / row["file_name"]), row["question"], "--save", str(png),
                                 "--db", str(tmp_path / "t.db"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{"):])
    with Image.open(png) as im:
        picture = np.asarray(im.convert("RGB"))
    k = picture.shape[1] // row["width"]
    assert picture.shape[0] > row["height"] * k + 40  # a caption band
    model_points = sum(len(g["coords"]) for g in out["groundings"] if g["source"] == "model")
    shown = trace_picture(json.loads(runner.invoke(app, ["traces", "show", out["trace_id"], "--db",
                                                         str(tmp_path / "t.db"), "--json"]).output),
                          Image.open(world / row["file_name"]))
    assert out["correct"] is True and model_points == int(out["answer"])
    assert [b.number for b in shown.badges] == list(range(1, int(out["answer"]) + 1))  # the thought's 1 ... n


def test_ask_refuses_a_save_path_it_cannot_write_before_running(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vgt_agent.cli.main import app

    image, _ = scene()
    image.save(tmp_path / "scene.png")
    db = tmp_path / "t.db"
    for bad in ("answer.txt", "nowhere/answer.png"):
        result = CliRunner().invoke(app, ["ask", str(tmp_path / "scene.png"), "How many yellow circles are there?",
                                          "--save", str(tmp_path / bad), "--db", str(db)])
        assert result.exit_code == 2 and "cannot write" in result.output
    assert not db.exists()  # no run was started
