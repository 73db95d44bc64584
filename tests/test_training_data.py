"""TRL datasets from the store: variants, filters, the split by image, RL prompts and their references."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from world_traces import random_masks, store_world_traces, thought, world_samples

from vgt_agent.format import parse
from vgt_agent.geometry import encode_rle
from vgt_agent.prompts import VARIANT_PROMPTS
from vgt_agent.store import ImageRecord, MaskRecord, SampleRecord, TraceRecord, TraceStore
from vgt_agent.training import data
from vgt_agent.training.references import decode_references
from vgt_agent.training.rewards import grounding_reward


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("world")
    samples = world_samples(root, "world-tally", 5) + world_samples(root, "world-embspatial", 5)
    store = TraceStore.open(root / "traces.db")
    store_world_traces(store, samples)
    yield store, samples
    store.close()


def _text(message: dict) -> str:
    return "".join(p["text"] or "" for p in message["content"] if p["type"] == "text")


def test_sft_variants(world) -> None:
    store, samples = world
    for variant in [v for v in data.VARIANTS if v != "agent"]:  # `agent` traces come from `--via agent`, below
        ds = data.sft_dataset(store, variant)
        assert len(ds) == len(samples)
        system, user, assistant = ds[0]["messages"]
        assert _text(system) == VARIANT_PROMPTS[variant]
        assert [p["type"] for p in user["content"]] == ["image", "text"]
        assert assistant["role"] == "assistant" and isinstance(ds[0]["images"][0], Image.Image)
        targets = [_text(m[-1]) for m in ds["messages"]]
        if variant == "direct":
            assert sorted(targets) == sorted(f"\\boxed{{{s.answer}}}" for s in samples)
        elif variant == "plain":
            assert all(not parse(t).groundings and "<think>" in t for t in targets)
        else:
            assert any(parse(t).groundings for t in targets)
            assert all({g.kind for g in parse(t).groundings} <= {variant} for t in targets)
    choice_users = [_text(m[1]) for m in data.sft_dataset(store, "point")["messages"] if "relative to" in _text(m[1])]
    assert choice_users and all("A. " in u for u in choice_users)  # options reach the model


def test_filters_and_verified_only(world, tmp_path: Path) -> None:
    store, samples = world
    record = SampleRecord.from_sample(samples[1], ImageRecord.from_path(samples[1].image_path))
    store.start_run("synth", run_id="other-run")
    store.put_trace(TraceRecord("other-run", record, "point", completion=thought(samples[1], "point"),
                                answer="99", correct=False))
    try:
        assert len(data.sft_dataset(store, "point")) == len(samples)
        assert len(data.sft_dataset(store, "point", verified_only=False)) == len(samples) + 1
        assert len(data.sft_dataset(store, "point", run="other-run", verified_only=False)) == 1
        assert len(data.sft_dataset(store, "point", run="synth-test")) == len(samples)
        assert len(data.sft_dataset(store, "direct", run="other-run")) == 1  # the target is the gold anyway
        with pytest.raises(data.DataError, match="no verified point traces"):
            data.sft_dataset(store, "point", run="other-run")
        with pytest.raises(data.DataError, match="unknown variant"):
            data.sft_dataset(store, "agent-ish")
    finally:
        store.db.execute("delete from traces where run_id = 'other-run'")
        store.db.conn.commit()


def test_split_by_image_never_leaks(world) -> None:
    store, samples = world
    # a second question on the first image: both must land on the same side
    first = samples[0]
    image = ImageRecord.from_path(first.image_path)
    extra = SampleRecord("world", first.split, first.id + "-again", "How many shapes are there?", image, "3", "count")
    store.put_trace(TraceRecord("synth-test", extra, "point", completion="<think>x</think> \\boxed{3}", correct=True))
    ds = data.sft_dataset(store, "point")
    assert ds["image_hash"].count(image.hash) == 2
    for seed in range(5):
        train, held = data.split_by_image(ds, 0.3, seed)
        assert held is not None and len(train) + len(held) == len(ds)
        assert not set(train["image_hash"]) & set(held["image_hash"])
    assert data.split_by_image(ds, 0.3, 1)[1]["trace_id"] == data.split_by_image(ds, 0.3, 1)[1]["trace_id"]
    assert data.split_by_image(ds, 0.0)[1] is None
    with pytest.raises(data.DataError):
        data.split_by_image(ds, 1.0)
    store.db.execute("delete from traces where sample_id = ?", [extra.id])
    store.db.conn.commit()


def test_rl_rows_references_from_gold(world) -> None:
    store, samples = world
    rows = data.rl_rows_from_store(store, "point")
    assert len(rows) == len(samples)
    by_id = {r["sample_id"]: r for r in rows}
    for sample in samples:
        row = by_id[SampleRecord.from_sample(sample, ImageRecord.from_path(sample.image_path)).id]
        assert row["gold_answer"] == sample.answer and row["answer_type"] == sample.answer_type
        assert row["choices"] == list(sample.choices) and row["variant"] == "point"
        refs = decode_references(row["references"])
        assert sum(len(r.masks) for r in refs) == len(sample.gold_objects)
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        # the gold-built thoughts score perfectly against the references built the same way
        if refs:
            assert grounding_reward([thought(sample, "point")], [row["references"]]) == [1.0]
            assert grounding_reward([thought(sample, "box")], [row["references"]])[0] > 0.95
    from_samples = data.rl_rows_from_samples(samples, "point")  # straight from the dataset: same prompts
    assert {r["sample_id"] for r in from_samples} == set(by_id)
    assert all(r["references"] == by_id[r["sample_id"]]["references"] for r in from_samples)
    ds = data.rl_dataset(rows)
    assert set(ds.column_names) >= {"prompt", "image", "gold_answer", "answer_type", "choices", "references"}
    assert isinstance(ds[0]["image"], Image.Image)


def test_rl_references_fall_back_to_stored_masks(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), "white").save(path)
    sample = SampleRecord("photos", "test", "p1", "How many cups?", ImageRecord.from_path(path), "2", "count")
    masks = random_masks(np.random.default_rng(0), 3)
    records = [MaskRecord("cup", encode_rle(m), [0, 0, 1, 1], [0, 0], 0.9, "sam3", 0) for m in masks[:2]]
    records.append(MaskRecord("saucer", encode_rle(masks[2]), [0, 0, 1, 1], [0, 0], 0.8, "sam3", 1, selected=False))
    with TraceStore.open(tmp_path / "t.db") as store:
        store.start_run("synth", run_id="r")
        store.put_trace(TraceRecord("r", sample, "box", completion="<think>x</think> \\boxed{2}", correct=True,
                                    masks=records))
        rows = data.rl_rows_from_store(store, "box")
    refs = decode_references(rows[0]["references"])
    assert [(r.name, len(r.masks)) for r in refs] == [("cup", 2)]  # unselected candidates are not references


def test_rl_dataset_needs_rows() -> None:
    with pytest.raises(data.DataError):
        data.rl_dataset([])


def test_agent_variant_trains_the_tool_calling_trace(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vgt_agent.cli.main import app
    from vgt_agent.graphs.ask import chunks_text
    from vgt_agent.world.storage import make_split

    split = tmp_path / "train"
    make_split(split, "world-train", n=8)
    db = tmp_path / "t.db"
    result = CliRunner().invoke(app, ["synth", "--dataset", str(split), "--via", "agent", "--teacher", "world-oracle",
                                      "--db", str(db), "--json"])
    assert result.exit_code == 0, result.output
    with TraceStore.open(db) as store:
        traces = {t["id"]: t for t in store.traces(variant="agent")}
        (trace,) = list(traces.values())[:1]
        # an ask-log / eval "agent" trace must never become training data
        record = SampleRecord.from_sample(next(iter(world_samples(tmp_path, "world-tally", 1))),
                                          ImageRecord.from_path(trace["image_path"]))
        store.start_run("eval", run_id="eval-run")
        store.put_trace(TraceRecord("eval-run", record, "agent", completion="<think> x </think> \\boxed{1}",
                                    answer="1", correct=True))
        ds = data.sft_dataset(store, "agent")
        assert len(ds) == len(traces) > 0 and set(ds["trace_id"]) == set(traces)
        assert set(ds["variant"]) == {"agent"}
        for row in ds:  # the turns as stored (AgentCollator builds the views; tests/test_train_sft_agent.py)
            t = traces[row["trace_id"]]
            assert (row["question"], row["choices"], row["image_path"]) == (t["question"], t["choices"] or [],
                                                                            t["image_path"])
            assert row["chunks"] == [m for m in t["messages"] if m["role"] != "user"]
            assert chunks_text(row["chunks"]) == t["completion"] and "<ground>" in t["completion"]
            assert len(row["newlines"]) == sum(c["role"] == "tool" for c in row["chunks"])
        # which replies keep their "\n" is fixed per (seed, trace): the same rows on resume, others per seed
        assert data.sft_dataset(store, "agent")["newlines"] == ds["newlines"]
        assert data.sft_dataset(store, "agent", seed=1)["newlines"] != ds["newlines"]
        assert data.rl_prompt("How many?", (), "agent")[0]["content"][0]["text"] == data.SYSTEM_PROMPTS["agent"]
        with pytest.raises(data.DataError, match="unknown variant"):
            data.rl_prompt("How many?", (), "agents")


def test_a_qwen_pixel_model_is_taught_and_rewarded_in_its_own_convention(world, tmp_path: Path) -> None:
    """SFT targets written in Qwen2.5-VL's resized-image pixels; its GRPO completions read back to 0..1000 before
    the rewards score them (a family declared by config.json, or --coords)."""
    from vgt_agent.format.coord_text import to_canonical_text
    from vgt_agent.geometry.conventions import CANONICAL, get_convention
    from vgt_agent.training.coords import canonical_rewards, model_convention

    store, samples = world
    model_dir = tmp_path / "qwen"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    qwen = model_convention(str(model_dir))
    assert qwen.name == "qwen2.5-vl-pixels" and model_convention(str(model_dir), "norm1000") == CANONICAL
    plain, shown = data.sft_dataset(store, "point"), data.sft_dataset(store, "point", convention=qwen)
    rows = {r["id"]: r for r in store.traces(variant="point", correct=True, status="ok")}
    changed = 0
    for a, b, trace_id in zip(plain["messages"], shown["messages"], plain["trace_id"], strict=True):
        row = rows[trace_id]
        canonical, written = _text(a[-1]), _text(b[-1])
        back = parse(to_canonical_text(written, qwen, row["width"], row["height"])).groundings
        changed += canonical != written
        for g_c, g_w in zip(parse(canonical).groundings, back, strict=True):
            assert all(abs(p - q) <= 3 for c, w in zip(g_c.coords, g_w.coords, strict=True)
                       for p, q in zip(c, w, strict=True))  # round trip within the resize rounding
    assert changed  # world images are 448 px: Qwen sees them at 448, so 0..1000 and pixels differ
    # the system prompt speaks of the model's convention, in SFT rows and in RL prompts
    from vgt_agent.prompts import COORDINATES, coordinates_sentence

    for messages, expected in ((shown["messages"][0], coordinates_sentence(qwen)), (plain["messages"][0], COORDINATES)):
        system = _text(next(m for m in messages if m["role"] == "system"))
        assert expected in system and (expected == COORDINATES or COORDINATES not in system)
    prompts = data.rl_dataset(data.rl_rows_from_store(store, "point"), qwen)["prompt"]
    assert all(coordinates_sentence(qwen) in _text(p[0]) and COORDINATES not in _text(p[0]) for p in prompts)
    # rewards: a completion in Qwen pixels scores as the canonical one does, and keeps the function's name
    rl_rows = data.rl_rows_from_store(store, "point")
    row = next(r for r in rl_rows if decode_references(r["references"]))
    trace = next(t for t in rows.values() if t["sample_id"] == row["sample_id"])
    written = data.from_canonical_text(trace["completion"], qwen, row["width"], row["height"])
    (wrapped,) = canonical_rewards([grounding_reward], qwen)
    assert wrapped.__name__ == "grounding_reward"
    columns = {"references": [row["references"]], "width": [row["width"]], "height": [row["height"]]}
    assert wrapped([written], **columns) == pytest.approx(grounding_reward([trace["completion"]], [row["references"]]))
    assert canonical_rewards([grounding_reward], get_convention("norm1000")) == [grounding_reward]
