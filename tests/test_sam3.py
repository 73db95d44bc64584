"""SAM3 grounder, offline CLIP tokenizer and tiny SAM3, on a tiny random model (no weights can be fetched)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.models.sam3.modeling_sam3 import Sam3MaskDecoderOutput

from vgt_agent.geometry import mask_to_box, mask_to_point
from vgt_agent.grounders import clip_tokenizer
from vgt_agent.grounders.clip_tokenizer import VOCAB_SIZE, build_clip_tokenizer
from vgt_agent.grounders.sam3 import (
    FeatureCache,
    Sam3CheckpointError,
    Sam3Grounder,
    Sam3PackageGrounder,
    image_key,
)
from vgt_agent.grounders.sam3_tiny import build_tiny_sam3

QUERIES = 5
H, W = 120, 160  # deliberately not square: catches (x, y) / (row, col) swaps


def random_image(seed: int, size: tuple[int, int] = (W, H), mode: str = "RGB") -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels).convert(mode)


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_sam3(seed=0, num_queries=QUERIES)


@pytest.fixture
def make_grounder(tiny):
    def make(**kwargs) -> Sam3Grounder:
        model, processor = tiny
        return Sam3Grounder("tiny", model=model, processor=processor, **kwargs)

    return make


@contextmanager
def count_calls(module: torch.nn.Module) -> Iterator[list[int]]:
    calls = [0]
    handle = module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        yield calls
    finally:
        handle.remove()


def direct_forward(tiny, image: Image.Image, text: str):
    """The plain transformers path (pixel_values, no cache): the reference the grounder must match."""
    model, processor = tiny
    inputs = processor(images=image, text=text, return_tensors="pt")
    with torch.inference_mode():
        return model(**{k: v for k, v in inputs.items() if k != "original_sizes"})


# ---- offline CLIP tokenizer ----------------------------------------------------------------------


def test_clip_tokenizer_has_real_clip_ids():
    tok = build_clip_tokenizer()
    assert len(tok) == VOCAB_SIZE == 49408
    assert tok("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok("A  photo of a DOG")["input_ids"] == [49406, 320, 1125, 539, 320, 1929, 49407]
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (49406, 49407, 49407)
    padded = tok("red cup", padding="max_length", max_length=8)
    assert padded["input_ids"][-1] == 49407 and padded["attention_mask"] == [1, 1, 1, 1, 0, 0, 0, 0]


def test_clip_tokenizer_missing_file_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_clip_tokenizer(tmp_path / "nope.txt.gz")
    monkeypatch.setattr(clip_tokenizer.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="not installed.*pip install --no-deps open_clip"):
        build_clip_tokenizer()


# ---- tiny model ----------------------------------------------------------------------------------


def test_tiny_text_prompted_forward_shapes(tiny):
    out = direct_forward(tiny, random_image(0), "red cup")
    assert out.pred_masks.shape == (1, QUERIES, 32, 32)  # 224 px / 14 px patches * FPN scale 2
    assert out.pred_boxes.shape == (1, QUERIES, 4)
    assert out.pred_logits.shape == (1, QUERIES)
    assert out.presence_logits.shape == (1, 1)


def test_tiny_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a, _ = build_tiny_sam3(seed=7)
    assert torch.equal(torch.rand(1), expected)
    b, _ = build_tiny_sam3(seed=7)
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    assert all(torch.equal(x, y) for x, y in pairs)


def test_tiny_saves_and_reloads_offline_as_a_checkpoint(tiny, tmp_path, make_grounder):
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = Sam3Grounder(tmp_path, score_threshold=0.0)
    assert loaded.name == f"sam3:{tmp_path}"
    assert loaded.processor.tokenizer("a photo of a cat")["input_ids"][:3] == [49406, 320, 1125]
    image = random_image(1)
    got, want = loaded.ground(image, "cup"), make_grounder(score_threshold=0.0).ground(image, "cup")
    assert [i.score for i in got] == pytest.approx([i.score for i in want])


# ---- the grounder --------------------------------------------------------------------------------


def test_ground_returns_image_sized_masks_with_geometry_from_the_mask(tiny, make_grounder):
    image = random_image(2)
    result = make_grounder(score_threshold=0.0).ground(image, "  red   cup ")
    assert result.concept == "  red   cup " and result.reason is None
    assert len(result) > 0
    for inst in result:
        assert inst.mask.dtype == bool and inst.mask.shape == (H, W) and inst.mask.any()
        assert inst.box == mask_to_box(inst.mask)
        assert inst.point == mask_to_point(inst.mask)
        assert inst.label == "red cup"
    scores = [i.score for i in result]
    assert scores == sorted(scores, reverse=True)
    presence = torch.sigmoid(direct_forward(tiny, image, "red cup").presence_logits).item()
    assert result.presence == pytest.approx(presence, abs=1e-5)


def test_scores_on_cached_features_match_the_plain_forward(tiny, make_grounder):
    image = random_image(3)
    result = make_grounder(score_threshold=0.0, mask_threshold=0.0).ground(image, "laptop")
    out = direct_forward(tiny, image, "laptop")
    want = (out.pred_logits.sigmoid() * out.presence_logits.sigmoid())[0]
    assert len(result) == QUERIES  # mask threshold 0: no mask is empty, so every query is an instance
    assert [i.score for i in result] == pytest.approx(sorted(want.tolist(), reverse=True), abs=1e-5)


def test_score_and_presence_thresholds_filter(tiny, make_grounder):
    image = random_image(4)
    out = direct_forward(tiny, image, "mug")
    scores = (out.pred_logits.sigmoid() * out.presence_logits.sigmoid())[0]
    middle = float(scores.median())
    assert len(make_grounder(score_threshold=0.0, mask_threshold=0.0).ground(image, "mug")) == QUERIES
    assert len(make_grounder(score_threshold=1.0).ground(image, "mug")) == 0
    kept = make_grounder(score_threshold=middle, mask_threshold=0.0).ground(image, "mug")
    assert len(kept) == int((scores > middle).sum()) and all(i.score > middle for i in kept)
    absent = make_grounder(score_threshold=0.0, presence_threshold=1.0).ground(image, "mug")
    assert len(absent) == 0
    assert absent.presence == pytest.approx(out.presence_logits.sigmoid().item(), abs=1e-5)


def test_a_mask_blob_lands_at_its_place_in_the_original_image(tiny, make_grounder):
    """Only query 0 has a mask (rows 4-12, cols 20-28 of the 32x32 map); the others are empty and dropped."""
    model, _ = tiny
    logits = torch.full((1, QUERIES, 32, 32), -20.0)
    logits[0, 0, 4:12, 20:28] = 20.0

    def replace(module, args, output):
        return Sam3MaskDecoderOutput(pred_masks=logits.clone(), semantic_seg=output.semantic_seg)

    handle = model.mask_decoder.register_forward_hook(replace)
    try:
        result = make_grounder(score_threshold=0.0).ground(random_image(5), "ball")
    finally:
        handle.remove()
    assert len(result) == 1
    x1, y1, x2, y2 = result[0].box
    assert (x1, y1, x2, y2) == pytest.approx((20 * W / 32, 4 * H / 32, 28 * W / 32, 12 * H / 32), abs=2)
    col, row = result[0].point
    assert abs(col - 24 * W / 32) <= 2 and abs(row - 8 * H / 32) <= 2


def test_vision_encoder_runs_once_per_image_for_many_concepts(tiny, make_grounder):
    model, _ = tiny
    grounder = make_grounder(score_threshold=0.0)
    first, second = random_image(6), random_image(7)
    with count_calls(model.vision_encoder) as calls:
        for concept in ("cup", "laptop", "cup left of the laptop", "red mug"):
            grounder.ground(first, concept)
        assert calls[0] == 1
        grounder.ground(first.copy(), "pen")  # another object with the same pixels shares the features
        assert calls[0] == 1
        grounder.ground(second, "cup")
        grounder.ground(second, "laptop")
        assert calls[0] == 2
    assert (grounder.cache.hits, grounder.cache.misses) == (5, 2)


def test_feature_cache_is_a_bounded_lru(tiny, make_grounder):
    model, _ = tiny
    grounder = make_grounder(cache_size=2)
    a, b, c = (random_image(10 + i) for i in range(3))
    with count_calls(model.vision_encoder) as calls:
        for image in (a, b, a, c):  # a is used again before c arrives, so b is the one evicted
            grounder.ground(image, "cup")
        assert calls[0] == 3 and len(grounder.cache) == 2
        assert image_key(a) in grounder.cache and image_key(b) not in grounder.cache
        grounder.ground(b, "cup")
        assert calls[0] == 4 and len(grounder.cache) == 2
    uncached = make_grounder(cache_size=0)
    with count_calls(model.vision_encoder) as calls:
        uncached.ground(a, "cup")
        uncached.ground(a, "mug")
        assert calls[0] == 2 and len(uncached.cache) == 0


def test_feature_cache_unit():
    cache: FeatureCache[int] = FeatureCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # refreshes a
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2 and (cache.hits, cache.misses) == (3, 1)
    with pytest.raises(ValueError):
        FeatureCache(-1)


def test_image_key_is_a_content_hash():
    assert image_key(random_image(1)) == image_key(random_image(1))
    assert image_key(random_image(1)) != image_key(random_image(2))
    assert image_key(random_image(1, mode="L")) != image_key(random_image(1, mode="L").convert("RGB"))


def test_non_rgb_images_and_odd_phrases(make_grounder):
    grounder = make_grounder(score_threshold=0.0)
    for mode in ("L", "RGBA", "P"):
        result = grounder.ground(random_image(8, mode=mode), "cup")
        assert all(inst.mask.shape == (H, W) for inst in result)
    long_phrase = " ".join(["very"] * 60 + ["big", "cup"])  # longer than SAM3's 32-token text context
    assert grounder.ground(random_image(8), long_phrase).reason is None
    empty = grounder.ground(random_image(8), "   ")
    assert len(empty) == 0 and empty.reason == "empty concept phrase"


def test_dtype_and_device_arguments():
    model, processor = build_tiny_sam3(seed=1)  # its own model: the grounder casts it in place
    grounder = Sam3Grounder("tiny", model=model, processor=processor, dtype="bfloat16", score_threshold=0.0)
    assert next(grounder.model.parameters()).dtype == torch.bfloat16
    result = grounder.ground(random_image(9), "cup")
    assert len(result) > 0 and all(0.0 <= i.score <= 1.0 for i in result)
    with pytest.raises(ValueError, match="--dtype must be one of"):
        Sam3Grounder("tiny", model=model, processor=processor, dtype="float99")
    with pytest.raises(ValueError, match="float16 on the CPU"):
        Sam3Grounder("tiny", model=model, processor=processor, device="cpu", dtype=torch.float16)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            Sam3Grounder("tiny", model=model, processor=processor, device="cuda")


def test_factory_loads_sam3_where_the_placement_says(tiny, tmp_path):
    from vgt_agent.devices import Placement
    from vgt_agent.grounders.factory import make_grounder as factory_grounder

    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    grounder = factory_grounder("sam3", sam3_checkpoint=str(tmp_path), placement=Placement("cpu", "bfloat16"))
    assert grounder.placement.label == "cpu/bfloat16"
    assert {p.dtype for p in grounder.model.parameters()} == {torch.bfloat16}
    seen = []
    handle = grounder.model.vision_encoder.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((args[0] if args else kwargs["pixel_values"]).dtype),
        with_kwargs=True)
    try:
        assert grounder.ground(random_image(40), "cup").reason is None
    finally:
        handle.remove()
    assert seen == [torch.bfloat16]


def test_default_placement_follows_the_environment(monkeypatch):
    model, processor = build_tiny_sam3(seed=1)
    monkeypatch.setenv("VGT_DEVICE", "cpu")
    monkeypatch.setenv("VGT_DTYPE", "bfloat16")
    grounder = Sam3Grounder("tiny", model=model, processor=processor)
    assert grounder.placement.label == "cpu/bfloat16"
    assert {p.dtype for p in grounder.model.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in grounder.model.parameters()} == {"cpu"}


# ---- batched grounding ---------------------------------------------------------------------------


def assert_same_results(got, want, *, atol: float = 1e-5) -> None:
    """Same instances in the same order: masks equal, scores close, geometry equal."""
    assert got.concept == want.concept and got.reason == want.reason
    assert len(got) == len(want)
    assert got.presence == pytest.approx(want.presence, abs=atol) if want.presence is not None else True
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a.mask, b.mask)
        assert a.score == pytest.approx(b.score, abs=atol)
        assert (a.box, a.point, a.label) == (b.box, b.point, b.label)


def one_at_a_time(tiny, image: Image.Image, concept: str, **kwargs):
    """The reference: a fresh uncached grounder, one phrase per forward."""
    model, processor = tiny
    return Sam3Grounder("tiny", model=model, processor=processor, cache_size=0, **kwargs).ground(image, concept)


CONCEPTS = ["cup", "  red   laptop ", "", "cup left of the laptop", "a " * 40 + "mug", "pen", "cup"]


def test_ground_many_matches_one_at_a_time_in_one_vision_pass(tiny, make_grounder):
    model, _ = tiny
    image = random_image(20)
    grounder = make_grounder(score_threshold=0.0, mask_threshold=0.0, phrase_batch=4)
    with count_calls(model.vision_encoder) as vision, count_calls(model.detr_decoder) as decoder:
        many = grounder.ground_many(image, CONCEPTS)
    assert vision[0] == 1
    assert decoder[0] == 2  # six non-empty phrases, four per forward
    assert len(many) == len(CONCEPTS)
    assert many[2].reason == "empty concept phrase" and len(many[2]) == 0
    for concept, got in zip(CONCEPTS, many, strict=True):
        assert_same_results(got, one_at_a_time(tiny, image, concept, score_threshold=0.0, mask_threshold=0.0))
    # and against the plain transformers forward (pixel_values + the processor's own text), not vgt's code
    out = direct_forward(tiny, image, "pen")
    want = (out.pred_logits.sigmoid() * out.presence_logits.sigmoid())[0]
    assert [i.score for i in many[5]] == pytest.approx(sorted(want.tolist(), reverse=True), abs=1e-5)


def test_ground_batch_matches_one_at_a_time_over_several_images(tiny, make_grounder):
    model, _ = tiny
    a, b, c = random_image(21), random_image(22, mode="L"), random_image(23, size=(90, 200))
    jobs = [(a, ["cup", "pen"]), (b, ["laptop"]), (a.copy(), ["mug", ""]), (c, ["cup", "red cup", "ball"]),
            (b, [])]
    grounder = make_grounder(score_threshold=0.3, image_batch=2, phrase_batch=3, cache_size=1)
    with count_calls(model.vision_encoder) as vision:
        batched = grounder.ground_batch(jobs)
    assert vision[0] == 2  # three distinct images, two per vision-encoder batch; a's copy shares a's features
    assert [len(r) for r in batched] == [2, 1, 2, 3, 0]
    for (image, concepts), results in zip(jobs, batched, strict=True):
        for concept, got in zip(concepts, results, strict=True):
            want = one_at_a_time(tiny, image, concept, score_threshold=0.3)
            assert_same_results(got, want)
            assert all(inst.mask.shape == (image.height, image.width) for inst in got)
    assert len(grounder.cache) == 1
    with count_calls(model.vision_encoder) as vision:
        grounder.ground_batch([(c, ["cup"])])  # the last image encoded is the one the size-1 cache kept
    assert vision[0] == 0
    with pytest.raises(ValueError, match="phrase_batch"):
        make_grounder(phrase_batch=0)


def test_batched_images_match_single_images_in_bfloat16_closely():
    """In bfloat16 the batched vision pass may round differently from a batch of one: scores stay close."""
    model, processor = build_tiny_sam3(seed=2)
    grounder = Sam3Grounder("tiny", model=model, processor=processor, dtype="bfloat16", score_threshold=0.0,
                            mask_threshold=0.0, cache_size=0, image_batch=3)
    images = [random_image(30 + i) for i in range(3)]
    batched = grounder.ground_batch([(image, ["cup"]) for image in images])
    for image, (got,) in zip(images, batched, strict=True):
        want = grounder.ground(image, "cup")
        assert len(got) == len(want) == QUERIES
        assert sorted(i.score for i in got) == pytest.approx(sorted(i.score for i in want), abs=0.02)


# ---- checkpoints and the optional sam3-package backend -------------------------------------------


def test_missing_checkpoint_is_a_clear_one_line_error(tmp_path):
    for checkpoint in (str(tmp_path / "no-such-sam3"), "vgt-tests/no-such-sam3-checkpoint", "./sam3-weights"):
        with pytest.raises(Sam3CheckpointError) as err:
            Sam3Grounder(checkpoint)
        message = str(err.value)
        assert checkpoint in message and "hf download facebook/sam3" in message and "\n" not in message
    with pytest.raises(ValueError, match="both model and processor"):
        Sam3Grounder("tiny", model=build_tiny_sam3()[0])


def test_package_backend_fails_clearly_without_its_extra_or_cuda(tmp_path):
    """The sam3-package backend cannot run here (no CUDA); only its refusals are testable."""
    if importlib.util.find_spec("sam3") is None:
        with pytest.raises(ImportError, match=r"vgt\[sam3\]"):
            Sam3PackageGrounder(tmp_path / "sam3.pt")
    elif not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="needs CUDA"):
            Sam3PackageGrounder(tmp_path / "sam3.pt", device="cuda")
    else:
        with pytest.raises(Sam3CheckpointError, match="hf download"):
            Sam3PackageGrounder(Path(tmp_path) / "missing.pt")


# ---- shared batches across threads, and synthesis's prefetch --------------------------------------


def test_batching_grounder_shares_forwards_across_threads_and_matches_one_at_a_time(tiny, make_grounder):
    import threading

    from vgt_agent.grounders.batching import BatchingGrounder

    model, _ = tiny
    jobs = [(random_image(50 + i, size=(W + 10 * i, H)), ["cup", "pen"][: 1 + i % 2]) for i in range(4)]
    batching = BatchingGrounder(make_grounder(score_threshold=0.3, cache_size=0, image_batch=4), max_images=4,
                                wait_s=1.0)
    got: dict[int, list] = {}
    start = threading.Barrier(len(jobs))

    def call(i: int) -> None:
        start.wait()
        got[i] = batching.ground_many(*jobs[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(jobs))]
    with count_calls(model.vision_encoder) as vision:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sum(batching.batches) == len(jobs) and max(batching.batches) > 1  # threads shared inner calls
    assert vision[0] == len(batching.batches)  # one vision-encoder pass per shared batch
    for i, (image, concepts) in enumerate(jobs):
        for concept, result in zip(concepts, got[i], strict=True):
            assert_same_results(result, one_at_a_time(tiny, image, concept, score_threshold=0.3))
    assert_same_results(batching.ground(jobs[0][0], "cup"), got[0][0])
    batching.close()


def test_batching_grounder_hands_an_inner_error_to_each_caller():
    from vgt_agent.grounders.batching import BatchingGrounder

    class Broken:
        name = "broken"

        def ground_batch(self, jobs):
            raise RuntimeError("device lost")

    batching = BatchingGrounder(Broken())
    with pytest.raises(RuntimeError, match="device lost"):
        batching.ground(random_image(1), "cup")
    with pytest.raises(ValueError, match="max_images"):
        BatchingGrounder(Broken(), max_images=0)
    batching.close()


def test_synthesis_prefetches_a_samples_phrases_in_one_pass_with_the_same_outcome(tiny, make_grounder, tmp_path):
    """The grounding agent grounds every object's first phrase in one `ground_many` call; the agent's outcome
    (masks, steps, status) equals the run without the prefetch."""
    from vgt_agent.synthesis.grounding_agent import GroundingAgent
    from vgt_agent.synthesis.objects import NeededObject
    from vgt_agent.synthesis.world_policy import WorldRulePolicy
    from vgt_agent.synthesis.world_scene import WorldScene
    from vgt_agent.world.storage import load_split, make_split

    model, _ = tiny
    make_split(tmp_path / "tally", "world-tally", n=1, seed=3)
    sample = next(iter(load_split(tmp_path / "tally")))
    image = Image.open(sample.image_path).convert("RGB")
    objects = [NeededObject(f"{o.colour} {o.shape}s", role="counted") for o in WorldScene(sample).objects[:3]]

    def outcomes(prefetch: bool) -> tuple[list, int]:
        grounder = make_grounder(score_threshold=0.0, mask_threshold=0.0, cache_size=0)
        agent = GroundingAgent(grounder, WorldRulePolicy(WorldScene(sample)))
        with count_calls(model.vision_encoder) as vision:
            if prefetch:
                agent.prefetch(image, objects)
            runs = [agent.run(image, o) for o in objects]
        return [(g.status, [m.to_dict() for m in g.masks], [{k: s[k] for k in ("tool", "params", "result")}
                                                          for s in g.steps]) for g in runs], vision[0]

    (plain, plain_passes), (fetched, fetched_passes) = outcomes(False), outcomes(True)
    assert fetched == plain
    assert fetched_passes < plain_passes  # the first phrases shared one vision pass


def test_synth_with_sam3_stores_the_same_at_any_concurrency(tiny, tmp_path, monkeypatch):
    """`vgt synth --grounder sam3`: samples in flight share the one SAM3's batches (and each sample prefetches
    its phrases); what is stored equals the one-sample-at-a-time run. The tiny SAM3 is random, so its
    thresholds are lowered for it to find (random) instances that the traces then carry."""
    import sqlite3

    from typer.testing import CliRunner

    from vgt_agent.cli.main import app
    from vgt_agent.world.storage import make_split

    model, processor = tiny
    model.save_pretrained(tmp_path / "sam3")
    processor.save_pretrained(tmp_path / "sam3")
    make_split(tmp_path / "tally", "world-tally", n=4, seed=8)
    import vgt_agent.synthesis.pipeline as pipeline

    built = []

    def low_threshold_sam3(name, **kwargs):
        assert name == "sam3"
        grounder = Sam3Grounder(tmp_path / "sam3", score_threshold=0.0, mask_threshold=0.0, cache_size=0)
        batches, inner = [], grounder.ground_batch

        def ground_batch(jobs):
            batches.append(len(jobs))
            return inner(jobs)

        grounder.ground_batch = ground_batch
        built.append(batches)
        return grounder

    monkeypatch.setattr(pipeline, "make_grounder", low_threshold_sam3)

    def stored(concurrency: int) -> list[tuple]:
        db = tmp_path / f"c{concurrency}.db"
        result = CliRunner().invoke(app, ["synth", "--dataset", str(tmp_path / "tally"), "--db", str(db), "--grounder",
                                          "sam3", "--sam3-checkpoint", str(tmp_path / "sam3"), "--device", "cpu",
                                          "--concurrency", str(concurrency), "--json"])
        assert result.exit_code in (0, 1), result.output  # random SAM3 masks reject most traces: that is fine
        conn = sqlite3.connect(db)
        try:
            rows = conn.execute("select t.sample_id, t.variant, t.attempt, t.status, t.reason, t.completion, "
                                "t.grounder, t.meta, m.concept, m.rle from traces t left join masks m "
                                "on m.trace_id = t.id order by 1, 2, 3, m.idx").fetchall()
        finally:
            conn.close()
        out = []
        for *head, meta, concept, rle in rows:  # the grounding agent's transcript, its timings aside
            steps = [[{k: v for k, v in step.items() if k != "s"} for step in g["steps"]]
                     for g in json.loads(meta).get("grounding", [])]
            out.append((*head, steps, concept, rle))
        return out

    one, four = stored(1), stored(4)
    assert len(built) == 2  # one SAM3 per run, shared by its samples in flight
    assert max(built[0]) == 1 and max(built[1]) > 1  # with 4 samples in flight, requests shared forwards
    results = [step["result"] for row in one for steps in row[7] for step in steps if step["tool"] == "segment_phrase"]
    assert one == four and any("mask(s) for" in r for r in results)  # the same SAM3 outcomes, step by step
