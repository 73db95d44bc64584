"""Dataset adapters: every real dataset's mapping on a tiny fixture in its upstream schema, the registry,
the offline behaviour of Hub loading, the world and local adapters, and sharding."""

from __future__ import annotations

import base64
import io
import json
import shutil
import time
from pathlib import Path

import datasets
import pytest
from PIL import Image

from vgt_agent.datasets import (
    DATASETS,
    DatasetUnavailable,
    get_dataset,
    list_datasets,
    load_samples,
    select,
)
from vgt_agent.datasets import hub as hub_mod
from vgt_agent.datasets.counting import map_pixmo_count
from vgt_agent.datasets.spatial import caption_question, map_multihopspatial, split_inline_options
from vgt_agent.datasets.spec import RowContext, SkipRow
from vgt_agent.sample import Sample

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
HUB_NAMES = [s.name for s in list_datasets() if s.source == "hub"]


def png(colour: str = "red", size: tuple[int, int] = (8, 6)) -> Image.Image:
    return Image.new("RGB", size, colour)


def jpeg_bytes(colour: str = "blue", size: tuple[int, int] = (8, 6)) -> bytes:
    buf = io.BytesIO()
    png(colour, size).save(buf, format="JPEG")
    return buf.getvalue()


def write_parquet(path: Path, rows: list[dict], features: datasets.Features) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(path))


def copy_fixture(name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    return root


# ------------------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------------------


def test_registry_covers_the_papers_datasets():
    expected = {
        "tallyqa",
        "tallybench",
        "pixmo-count",
        "countqa",
        "countbenchqa",
        "vsr",
        "vsr-random",
        "embspatial",
        "spatialmqa",
        "multihopspatial",
        "cvbench",
        "local",
        "world",
        "world-tally",
        "world-countqa",
        "world-vsr",
        "world-embspatial",
        "world-spatialmqa",
        "world-multihop",
        "world-train",
    }
    assert expected <= set(DATASETS)
    assert [s.name for s in list_datasets()] == list(DATASETS)
    for spec in list_datasets():
        assert spec.kind in ("counting", "spatial", "mixed")
        assert spec.description
        if spec.source in ("hub", "github"):
            assert spec.mapper is not None and spec.default_split in spec.splits
            assert all(split in spec.files for split in spec.splits), spec.name
        if spec.source == "hub":
            assert spec.hub_id and "/" in spec.hub_id
    assert get_dataset("vsr").hub_id == "cambridgeltl/vsr_zeroshot"
    assert get_dataset("world-tally").kind == "counting" and get_dataset("world-vsr").kind == "spatial"
    assert json.dumps(get_dataset("cvbench").summary())


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*tallybench"):
        load_samples("nope")
    with pytest.raises(ValueError, match="known datasets"):
        get_dataset("nope")


def test_unknown_split_and_bad_selection(tmp_path):
    with pytest.raises(ValueError, match="no split 'dev'.*train, validation, test"):
        load_samples("vsr", "dev", path=tmp_path)
    with pytest.raises(ValueError, match="shard"):
        load_samples("vsr", shard=(3, 3))
    with pytest.raises(ValueError, match="limit"):
        load_samples("vsr", limit=-1)
    with pytest.raises(FileNotFoundError, match="test.jsonl"):
        load_samples("vsr", path=tmp_path)


# ------------------------------------------------------------------------------------------------------------
# Hub loading: offline first, fail fast
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """Point both caches at empty folders, so a developer's real cache cannot satisfy the test."""
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    hub_mod.hub_reachable.cache_clear()
    yield
    hub_mod.hub_reachable.cache_clear()


@pytest.mark.parametrize("name", HUB_NAMES)
def test_uncached_hub_dataset_fails_fast_with_one_clear_line(name, empty_hf_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = get_dataset(name)
    start = time.monotonic()
    with pytest.raises(DatasetUnavailable) as err:
        load_samples(name)
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "\n" not in message
    assert f"dataset {name!r} ({spec.hub_id})" in message
    assert "download it on a machine with internet" in message and "path=" in message


def test_unknown_repo_fails_fast_without_forcing_offline(empty_hf_cache):
    start = time.monotonic()
    with pytest.raises(DatasetUnavailable, match="'ghost'.*vgt-tests/no-such-dataset"):
        hub_mod.load_hub_rows("ghost", "vgt-tests/no-such-dataset", "test")
    assert time.monotonic() - start < 10


def test_github_dataset_without_path_says_how_to_get_it():
    with pytest.raises(DatasetUnavailable, match="git clone https://github.com/ziyan-xiaoyu/SpatialMQA"):
        load_samples("spatialmqa")


class FakeHub:
    """Stands in for `datasets.load_dataset`: serves rows only in the modes it is told the data exists in."""

    def __init__(self, cached: bool, online: bool, error: Exception | None = None):
        self.cached, self.online, self.error, self.calls = cached, online, error, []

    def __call__(self, hub_id, **kwargs):
        offline = datasets.config.HF_HUB_OFFLINE
        self.calls.append(("offline" if offline else "online", hub_id, kwargs))
        if self.error is not None:
            raise self.error
        if (offline and self.cached) or (not offline and self.online):
            return [{"caption": "The cat is on the mat.", "label": 1, "image": "x.jpg"}]
        raise ConnectionError("Couldn't reach the Hub (OfflineModeIsEnabled)")


def test_cached_dataset_is_served_offline_without_probing(monkeypatch):
    fake = FakeHub(cached=True, online=False)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    monkeypatch.setattr(hub_mod, "hub_reachable", lambda: pytest.fail("must not probe when cached"))
    rows = hub_mod.load_hub_rows("vsr", "cambridgeltl/vsr_zeroshot", "test")
    assert rows[0]["label"] == 1
    assert fake.calls == [("offline", "cambridgeltl/vsr_zeroshot", {"split": "test"})]
    samples = list(load_samples("vsr"))
    assert samples[0].question == "Is the cat on the mat?" and samples[0].answer == "yes"


def test_uncached_dataset_downloads_when_hub_reachable(monkeypatch):
    import huggingface_hub.constants

    # the suite runs offline (tests/conftest.py); this test alone plays a user whose Hub is reachable
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    fake = FakeHub(cached=False, online=True)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    monkeypatch.setattr(hub_mod, "hub_reachable", lambda: True)
    before = datasets.config.HF_HUB_OFFLINE
    rows = hub_mod.load_hub_rows(
        "embspatial", "Phineas476/EmbSpatial-Bench", "test", data_files={"test": "embspatial_bench.json"}
    )
    assert len(rows) == 1
    assert [c[0] for c in fake.calls] == ["offline", "online"]
    assert fake.calls[1][2] == {"split": "test", "data_files": {"test": "embspatial_bench.json"}}
    assert before == datasets.config.HF_HUB_OFFLINE


def test_unreachable_hub_and_real_errors(monkeypatch):
    monkeypatch.setattr(datasets, "load_dataset", FakeHub(cached=False, online=True))
    monkeypatch.setattr(hub_mod, "hub_reachable", lambda: False)
    with pytest.raises(DatasetUnavailable, match=r"load_dataset\('HuggingFaceM4/the_cauldron', 'tallyqa'"):
        hub_mod.load_hub_rows("tallyqa", "HuggingFaceM4/the_cauldron", "train", config="tallyqa")
    monkeypatch.setattr(datasets, "load_dataset", FakeHub(True, True, error=ValueError("Unknown split")))
    with pytest.raises(ValueError, match="Unknown split"):
        hub_mod.load_hub_rows("vsr", "cambridgeltl/vsr_zeroshot", "test")


# ------------------------------------------------------------------------------------------------------------
# Counting datasets
# ------------------------------------------------------------------------------------------------------------


def test_tallyqa_cauldron(tmp_path):
    features = datasets.Features(
        {
            "images": datasets.Sequence(datasets.Image()),
            "texts": [
                {
                    "user": datasets.Value("string"),
                    "assistant": datasets.Value("string"),
                    "source": datasets.Value("string"),
                }
            ],
        }
    )
    rows = [
        {
            "images": [png("red")],
            "texts": [
                {"user": "How many dogs are there?\nAnswer briefly.", "assistant": "2", "source": "TallyQA"},
                {"user": "How many cats are on the sofa?", "assistant": "Answer: zero.", "source": "TallyQA"},
            ],
        },
        {
            "images": [png("blue")],
            "texts": [{"user": "How many birds?", "assistant": "many", "source": "TallyQA"}],
        },
    ]
    write_parquet(tmp_path / "tallyqa" / "train-00000-of-00001.parquet", rows, features)
    with pytest.warns(UserWarning, match="skipped 1 unreadable rows"):
        samples = list(load_samples("tallyqa", path=tmp_path))
    assert [(s.question, s.answer) for s in samples] == [
        ("How many dogs are there?", "2"),
        ("How many cats are on the sofa?", "0"),
    ]
    assert all(s.answer_type == "count" and s.split == "train" and s.dataset == "tallyqa" for s in samples)
    assert samples[0].load_image().getpixel((0, 0)) == (255, 0, 0)
    assert samples[0].id == "tallyqa-train-0-0"


def test_tallybench(tmp_path):
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "qa": [
                {
                    "question": datasets.Value("string"),
                    "answer": datasets.Value("int64"),
                    "is_simple": datasets.Value("bool"),
                }
            ],
        }
    )
    rows = [
        {
            "image": png("green"),
            "qa": [
                {"question": "How many people are there?", "answer": 4, "is_simple": True},
                {"question": "How many people are wearing hats?", "answer": 1, "is_simple": False},
            ],
        },
        {
            "image": png("blue"),
            "qa": [{"question": "How many zebras are there?", "answer": 12, "is_simple": True}],
        },
    ]
    write_parquet(tmp_path / "data" / "test-00000-of-00019.parquet", rows, features)
    samples = list(load_samples("tallybench", path=tmp_path))
    assert [s.answer for s in samples] == ["4", "1", "12"]
    assert [s.meta["is_simple"] for s in samples] == [True, False, True]
    assert samples[2].load_image().getpixel((0, 0)) == (0, 0, 255)
    assert samples[1].split == "test" and samples[1].id == "tallybench-test-0-1"


def test_pixmo_count_points_become_gold_objects(tmp_path):
    features = datasets.Features(
        {
            "image_url": datasets.Value("string"),
            "image_sha256": datasets.Value("string"),
            "count": datasets.Value("int32"),
            "points": datasets.Sequence({"x": datasets.Value("float32"), "y": datasets.Value("float32")}),
            "label": datasets.Value("string"),
        }
    )
    rows = [
        {
            "image_url": "https://example.com/a/photo.jpg",
            "image_sha256": "abc123",
            "count": 2,
            "points": {"x": [1.5, 5.0], "y": [2.0, 4.0]},
            "label": "boats",
        },
        {
            "image_url": "https://example.com/b.png",
            "image_sha256": "def456",
            "count": 3,
            "points": {"x": [], "y": []},
            "label": "people",
        },
    ]
    write_parquet(tmp_path / "data" / "train-00000-of-00001.parquet", rows, features)
    (tmp_path / "images").mkdir()
    png("yellow").save(tmp_path / "images" / "abc123.jpg")
    samples = list(load_samples("pixmo-count", path=tmp_path))
    first, second = samples
    assert first.question == "How many boats are there in the image?" and first.answer == "2"
    assert [g.meta["point"] for g in first.gold_objects] == [(1.5, 2.0), (5.0, 4.0)]
    assert all(g.role == "counted" and g.name == "boats" for g in first.gold_objects)
    assert first.load_image().size == (8, 6)
    assert first.meta["image_url"] == "https://example.com/a/photo.jpg"
    assert second.answer == "3" and second.gold_objects == ()
    assert second.image_path.endswith("def456.png")
    with pytest.raises(ValueError, match="def456.png"):
        second.load_image()
    # Other uploads store the points as a list of {"x", "y"} records; both layouts read the same.
    ctx = RowContext("pixmo-count", "train", tmp_path / "images")
    (listed,) = map_pixmo_count({**rows[0], "points": [{"x": 1.5, "y": 2.0}, {"x": 5.0, "y": 4.0}]}, 0, ctx)
    assert listed.gold_objects == first.gold_objects


def test_countqa_expands_questions(tmp_path):
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "questions": datasets.Sequence(datasets.Value("string")),
            "answers": datasets.Sequence(datasets.Value("string")),
            "is_focused": datasets.Value("bool"),
            "categories": datasets.Sequence(datasets.Value("string")),
        }
    )
    rows = [
        {
            "image": png("white"),
            "questions": ["How many jackets are there?", "How many hats and scarves?"],
            "answers": ["7", "12"],
            "is_focused": False,
            "categories": ["clothing"],
        },
        {
            "image": png("black"),
            "questions": ["How many spoons?"],
            "answers": ["0"],
            "is_focused": True,
            "categories": ["kitchenware"],
        },
    ]
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", rows, features)
    samples = list(load_samples("countqa", path=tmp_path))
    assert [(s.question, s.answer) for s in samples] == [
        ("How many jackets are there?", "7"),
        ("How many hats and scarves?", "12"),
        ("How many spoons?", "0"),
    ]
    assert samples[0].meta == {"is_focused": False, "categories": ["clothing"]}
    assert samples[0].image is samples[1].image


def test_countbenchqa(tmp_path):
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "text": datasets.Value("string"),
            "question": datasets.Value("string"),
            "number": datasets.Value("int32"),
        }
    )
    rows = [
        {
            "image": png("red"),
            "text": "Three kittens on a rug.",
            "question": "How many kittens are there?",
            "number": 3,
        },
        {
            "image": png("green"),
            "text": "Two cups.",
            "question": "How many cups are in the image?",
            "number": 2,
        },
    ]
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", rows, features)
    samples = list(load_samples("countbenchqa", path=tmp_path))
    assert [s.answer for s in samples] == ["3", "2"]
    assert samples[0].meta["caption"] == "Three kittens on a rug."


# ------------------------------------------------------------------------------------------------------------
# Spatial datasets
# ------------------------------------------------------------------------------------------------------------


def test_vsr_labels_become_yes_no_questions(tmp_path):
    root = copy_fixture("vsr", tmp_path)
    (root / "images").mkdir()
    png("red").save(root / "images" / "000000050403.jpg")
    samples = list(load_samples("vsr", path=root))
    assert [(s.question, s.answer) for s in samples] == [
        ("Is the teddy bear in front of the person?", "yes"),
        ("Are the cats behind the laptop?", "no"),
        ('Is this statement about the image true: "The bowl contains the apple."?', "yes"),
    ]
    assert samples[0].load_image().size == (8, 6)
    assert samples[0].meta["relation"] == "in front of" and samples[0].meta["image_url"].endswith("50403.jpg")
    assert all(s.answer_type == "yes_no" for s in samples)


@pytest.mark.parametrize(
    ("caption", "question"),
    [
        ("The cat is behind the laptop.", "Is the cat behind the laptop?"),
        ("The dogs are left of the bench", "Are the dogs left of the bench?"),
        ("The TV is above the fireplace.", "Is the TV above the fireplace?"),
        ("A person is at the edge of the bed.", "Is a person at the edge of the bed?"),
        (
            "The bowl contains the apple.",
            'Is this statement about the image true: "The bowl contains the apple."?',
        ),
    ],
)
def test_caption_question(caption, question):
    assert caption_question(caption) == question


def test_embspatial_base64_images_and_index_answers(tmp_path):
    b64 = base64.b64encode(jpeg_bytes("blue")).decode()
    rows = [
        {
            "question_id": "mp3d_8",
            "image": b64,
            "question": "'Which object is closest to the camera?'",
            "answer_options": ["sofa", "table", "lamp", "chair"],
            "answer": 2,
            "relation": "close",
            "data_source": "mp3d",
        },
        {
            "question_id": "ai2thor_3",
            "image": b64,
            "question": "What is above the sink?",
            "answer_options": ["mirror", "towel", "soap", "cup"],
            "answer": 0,
            "relation": "above",
            "data_source": "ai2thor",
        },
    ]
    (tmp_path / "embspatial_bench.json").write_text(json.dumps(rows))
    samples = list(load_samples("embspatial", path=tmp_path))
    assert [s.answer for s in samples] == ["C", "A"]
    assert samples[0].question == "Which object is closest to the camera?"
    assert samples[0].choices == ("sofa", "table", "lamp", "chair")
    assert samples[0].id == "embspatial-test-mp3d_8" and samples[0].meta["relation"] == "close"
    r, g, b = samples[1].load_image().getpixel((2, 2))
    assert b > 200 and r < 60


def test_spatialmqa_option_text_answers(tmp_path):
    root = copy_fixture("spatialmqa", tmp_path)
    samples = list(load_samples("spatialmqa", path=root))
    assert [s.answer for s in samples] == ["F", "B"]
    assert samples[0].choices[5] == "right of"
    assert samples[0].image_path.endswith("000000000933.jpg")
    assert samples[0].meta["image_url"] == "http://images.cocodataset.org/test2017/000000000933.jpg"


def test_multihopspatial_inline_options_and_boxes(tmp_path):
    root = copy_fixture("multihopspatial", tmp_path)
    (root / "data" / "images").mkdir()
    png("gray", (64, 48)).save(root / "data" / "images" / "000000397133.jpg")
    first, second = load_samples("multihopspatial", path=root)
    assert first.question == (
        "From the viewer's perspective, which object is to the left of the red mug? "
        "Please also give the bounding box of the answer object."
    )
    assert first.choices == ("green round container", "blue plate", "white spoon", "black knife")
    assert first.answer == "A" and first.id == "multihopspatial-test-mhs_0001"
    assert first.gold_objects[0].box == (10.0, 20.0, 40.0, 60.0)
    assert first.gold_objects[0].name == "green round container" and first.gold_objects[0].role == "target"
    assert first.load_image().size == (64, 48)
    assert second.question == "Which object is the largest among the objects on the table?"
    assert second.choices == ("lamp", "vase", "book", "cup") and second.answer == "C"
    assert second.gold_objects[0].box == (1.5, 2.5, 11.5, 14.5)
    assert second.meta["hop"] == "2-hop"


def test_multihopspatial_string_bbox_and_bad_options(tmp_path):
    ctx = RowContext("multihopspatial", "train", tmp_path)
    row = {
        "id": 7,
        "image_path": "x.jpg",
        "question": "Which? (a) one (b) two",
        "answer": "(b) two",
        "bbox": "[0, 0, 4, 5]",
    }
    (sample,) = map_multihopspatial(row, 0, ctx)
    assert sample.answer == "B" and sample.gold_objects[0].box == (0.0, 0.0, 4.0, 5.0)
    with pytest.raises(SkipRow):
        map_multihopspatial({**row, "answer": "(c) three"}, 0, ctx)
    with pytest.raises(SkipRow):
        split_inline_options("Which? (b) one (a) two")
    assert split_inline_options("No options here") == ("No options here", ())


def test_cvbench(tmp_path):
    features = datasets.Features(
        {
            "idx": datasets.Value("int32"),
            "type": datasets.Value("string"),
            "task": datasets.Value("string"),
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "choices": datasets.Sequence(datasets.Value("string")),
            "answer": datasets.Value("string"),
            "prompt": datasets.Value("string"),
            "filename": datasets.Value("string"),
            "source": datasets.Value("string"),
            "source_dataset": datasets.Value("string"),
        }
    )
    rows = [
        {
            "idx": 0,
            "type": "2D",
            "task": "Count",
            "image": png("red"),
            "question": "How many chairs are there?",
            "choices": ["1", "2", "3", "0"],
            "answer": "(C)",
            "prompt": "...",
            "filename": "img/2D/count/a.png",
            "source": "ADE20K",
            "source_dataset": "ADE20K Validation Set",
        },
        {
            "idx": 1,
            "type": "2D",
            "task": "Relation",
            "image": png("blue"),
            "question": "Is the lamp to the left or right of the bed?",
            "choices": ["left", "right"],
            "answer": "(B)",
            "prompt": "...",
            "filename": "img/2D/relation/b.png",
            "source": "COCO",
            "source_dataset": "COCO 2017 Validation Set",
        },
    ]
    write_parquet(tmp_path / "test_2d.parquet", rows, features)
    samples = list(load_samples("cvbench", path=tmp_path))
    assert [(s.answer, s.choices) for s in samples] == [("C", ("1", "2", "3", "0")), ("B", ("left", "right"))]
    assert samples[0].meta == {"task": "Count", "type": "2D", "source": "ADE20K"}
    assert samples[1].id == "cvbench-test-1"


# ------------------------------------------------------------------------------------------------------------
# World
# ------------------------------------------------------------------------------------------------------------


def test_world_existing_split_folder_is_loaded_not_regenerated(tmp_path):
    from vgt_agent.world.storage import make_split

    folder = tmp_path / "tally"
    make_split(folder, "world-tally", n=3)
    stamp = (folder / "info.json").stat().st_mtime_ns
    samples = list(load_samples("world-tally", path=folder))
    assert len(samples) == 3 and (folder / "info.json").stat().st_mtime_ns == stamp
    assert all(s.answer_type == "count" and s.split == "world-tally" for s in samples)
    assert samples[0].load_image().size == (448, 448)
    assert [s.id for s in load_samples("world", path=folder)] == [s.id for s in samples]
    assert [s.id for s in load_samples(str(folder))] == [s.id for s in samples]
    with pytest.raises(ValueError, match="single split"):
        load_samples("world-tally", "test", path=folder)
    with pytest.raises(ValueError, match="holds split 'world-tally'"):
        load_samples("world", "world-vsr", path=folder)
    with pytest.raises(FileNotFoundError, match="not a world split folder"):
        load_samples("world", path=tmp_path)


def test_world_split_generated_on_first_use_into_vgt_home(tmp_path, monkeypatch):
    import dataclasses

    from vgt_agent.world import splits

    # A 3-sample version of the split keeps the test fast; generation itself is the real one.
    monkeypatch.setitem(splits.SPLITS, "world-vsr", dataclasses.replace(splits.SPLITS["world-vsr"], n=3))
    monkeypatch.setenv("VGT_HOME", str(tmp_path / "home"))
    folder = tmp_path / "home" / "world" / "world-vsr"
    first = list(load_samples("world-vsr", limit=2))
    assert (folder / "info.json").is_file() and len(first) == 2
    assert first[0].answer in ("yes", "no") and first[0].gold_objects
    info = json.loads((folder / "info.json").read_text())
    info["generator_version"] = "stale"
    (folder / "info.json").write_text(json.dumps(info))
    again = list(load_samples("world-vsr", limit=2))
    assert json.loads((folder / "info.json").read_text())["generator_version"] != "stale"
    assert len(list(load_samples("world-vsr"))) == 3
    assert [s.question for s in again] == [s.question for s in first]


# ------------------------------------------------------------------------------------------------------------
# Local
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def local_folder(tmp_path) -> Path:
    root = copy_fixture("local", tmp_path)
    (root / "images").mkdir()
    png("red").save(root / "images" / "a.png")
    png("blue").save(root / "images" / "b.png")
    return root


def test_local_folder_and_jsonl(local_folder):
    samples = list(load_samples("local", path=local_folder))
    assert [(s.id, s.answer_type, s.answer) for s in samples] == [
        ("q1", "count", "3"),
        ("q2", "yes_no", "yes"),
        ("q3", "choice", "B"),
        ("q4", "text", "square"),
    ]
    assert samples[0].gold_objects[0].box == (1.0, 1.0, 3.0, 3.0)
    assert samples[1].load_image().getpixel((0, 0)) == (255, 0, 0)
    assert samples[3].meta == {"note": "free text"}
    from_file = list(load_samples("local", path=local_folder / "metadata.jsonl"))
    assert [s.image_path for s in from_file] == [s.image_path for s in samples]
    assert [s.id for s in load_samples(str(local_folder / "metadata.jsonl"))] == ["q1", "q2", "q3", "q4"]


def test_local_errors_name_the_line(tmp_path):
    with pytest.raises(ValueError, match="needs path="):
        load_samples("local")
    with pytest.raises(FileNotFoundError, match="metadata.jsonl"):
        load_samples("local", path=tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"question": "How many?", "answer": 2}\n{"question": "How many?", "answer": "lots",'
        ' "answer_type": "count"}\n'
    )
    with pytest.raises(ValueError, match=r"bad.jsonl:2: answer 'lots' is not a valid count"):
        list(load_samples("local", path=bad))
    bad.write_text('{"question": "Which?", "answer": "A", "answer_type": "choice"}\n')
    with pytest.raises(ValueError, match=":1: a choice question needs 'choices'"):
        list(load_samples("local", path=bad))
    bad.write_text("not json\n")
    with pytest.raises(ValueError, match=":1: invalid JSON"):
        list(load_samples("local", path=bad))


# ------------------------------------------------------------------------------------------------------------
# Sharding
# ------------------------------------------------------------------------------------------------------------


def _samples(n: int) -> list[Sample]:
    return [
        Sample(id=str(i), dataset="t", split="s", question="q", answer="1", answer_type="count")
        for i in range(n)
    ]


@pytest.mark.parametrize(("n", "shards"), [(10, 3), (7, 7), (5, 1), (2, 4)])
def test_shards_partition_the_samples(n, shards):
    parts = [[s.id for s in select(_samples(n), shard=(i, shards))] for i in range(shards)]
    assert sorted(sum(parts, []), key=int) == [str(i) for i in range(n)]
    assert parts[0] == [str(i) for i in range(0, n, shards)]


def test_shard_then_limit(local_folder):
    assert [s.id for s in load_samples("local", path=local_folder, shard=(1, 2))] == ["q2", "q4"]
    assert [s.id for s in load_samples("local", path=local_folder, shard=(0, 2), limit=1)] == ["q1"]
    assert [s.id for s in load_samples("local", path=local_folder, limit=0)] == []
    with pytest.raises(ValueError, match="0 <= i < n"):
        select(_samples(3), shard=(-1, 2))
