"""vgt-tiny: the world-oracle teacher is right through the real ask graph, its traces become exact training
views, and the shipped weights answer `vgt ask` with no backend flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from vgt_agent.backends.world_oracle import WorldOracleBackend, next_chunk, read_question, tool_results
from vgt_agent.cli.main import app
from vgt_agent.grounders.shuffled_gold import ShuffledGoldGrounder
from vgt_agent.store import TraceStore
from vgt_agent.tiny.agent_runs import BENCHMARKS, run_split
from vgt_agent.tiny.recipe import NAME, WEIGHTS_DIR, build_policy, shipped_weights
from vgt_agent.training.agent_examples import IGNORE, build_example, check_views
from vgt_agent.world.generate import make_sample
from vgt_agent.world.storage import load_split, make_split

runner = CliRunner()


@pytest.fixture(scope="module")
def world_samples(tmp_path_factory) -> list:
    """Four samples of each held-out benchmark split and of world-train (all eight families)."""
    root = tmp_path_factory.mktemp("world")
    samples = []
    for split in (*BENCHMARKS, "world-train"):
        make_split(root / split, split, n=4)
        samples += list(load_split(root / split))
    return samples


@pytest.mark.parametrize(("question", "kind", "phrases"), [
    ("How many red circles are there?", "count", ("red circles",)),
    ("How many shapes are not blue?", "count", ("shapes that are not blue",)),
    ("Is the large red star above the blue ring?", "relation", ("large red star", "blue ring")),
    ("Where is the red circle relative to the blue square? Options: A. below B. above C. right D. left. "
     "Answer with the letter.", "where", ("red circle", "blue square")),
    ("Which is closer to the green star: the red circle or the blue square?", "closer",
     ("green star", "red circle", "blue square")),
    ("Which is smaller: the red circle or the blue square?", "larger",
     ("red circle", "blue square", "the smallest of the red circle and the blue square")),
    ("Is the second leftmost circle above or below the green square?", "kth",
     ("second leftmost circle", "green square")),
    ("Is the bottommost red shape to the left or right of the green square?", "kth",
     ("bottommost red shape", "green square")),
])
def test_oracle_reads_every_family(question: str, kind: str, phrases: tuple[str, ...]) -> None:
    q = read_question(question)
    assert (q.kind, q.phrases) == (kind, phrases)
    if kind == "where":
        assert q.options == ("below", "above", "right", "left")


def test_oracle_reads_tool_replies_not_its_own_tags() -> None:
    prefill = ("<think> <ground> red circles </ground>\n<obj> red circles | [1, 2]; [3, 4] </obj>\n"
               "1 <obj> red circles | [1, 2] </obj> <ground> blue stars </ground>\nNo blue stars found.\n")
    assert tool_results(prefill) == [("red circles", [(1, 2), (3, 4)]), ("blue stars", [])]


@pytest.mark.parametrize(("question", "results", "tail"), [
    ("Is the red circle to the right of the blue square?",
     [("red circle", [(412, 300)]), ("blue square", [(460, 500)])],
     "x: 412 vs 460, so left. right yes, left no. left no. </think> \\boxed{no}"),
    ("Where is the red circle relative to the blue square? Options: A. below B. above C. right D. left. "
     "Answer with the letter.", [("red circle", [(122, 492)]), ("blue square", [(771, 173)])],
     "x: 122 vs 771: 1 to 7 is 6. y: 492 vs 173: 4 to 1 is 3. 6 > 3 so x. x: 122 vs 771, so left. "
     "below A, above B, right C, left D. left D. </think> \\boxed{D}"),
    ("Where is the red circle relative to the blue square? Options: A. below B. above C. right D. left. "
     "Answer with the letter.", [("red circle", [(150, 149)]), ("blue square", [(40, 105)])],
     "x: 150 vs 40: 1 to 0 is 1. y: 149 vs 105: 1 to 1 is 0. 1 > 0 so x. x: 150 vs 40, so right. "
     "below A, above B, right C, left D. right C. </think> \\boxed{C}"),
    ("Where is the red circle relative to the blue square? Options: A. below B. above C. right D. left. "
     "Answer with the letter.", [("red circle", [(120, 380)]), ("blue square", [(350, 190)])],
     "x: 120 vs 350: 1 to 3 is 2. y: 380 vs 190: 3 to 1 is 2. tie, by tens 23 and 19 so x. x: 120 vs 350, so left. "
     "below A, above B, right C, left D. left D. </think> \\boxed{D}"),
    ("Which is closer to the green star: the red circle or the blue square?",
     [("green star", [(885, 211)]), ("red circle", [(494, 410)]), ("blue square", [(106, 791)])],
     "first: x: 494 vs 885: 4 to 8 is 4, y: 410 vs 211: 4 to 2 is 2, 4 + 2 = 6. second: x: 106 vs 885: 1 to 8 "
     "is 7, y: 791 vs 211: 7 to 2 is 5, 7 + 5 = 12. 6 < 12 so the first. </think> \\boxed{A}"),
    ("Which is closer to the green star: the red circle or the blue square?",  # a tie in hundreds: tens decide
     [("green star", [(500, 500)]), ("red circle", [(590, 560)]), ("blue square", [(520, 580)])],
     "first: x: 590 vs 500: 5 to 5 is 0, y: 560 vs 500: 5 to 5 is 0, 0 + 0 = 0. second: x: 520 vs 500: 5 to 5 "
     "is 0, y: 580 vs 500: 5 to 5 is 0, 0 + 0 = 0. tie, by tens 15 and 10 so the second. </think> \\boxed{B}"),
    ("Which is smaller: the red circle or the blue square?",
     [("red circle", [(385, 443)]), ("blue square", [(657, 597)]), ("the smallest", [(657, 597)])],
     "[657, 597] vs [385, 443]: other, so the second. </think> \\boxed{B}"),
    ("Is the second leftmost circle above or below the blue square? Options: A. above B. below. "
     "Answer with the letter.", [("second leftmost circle", [(500, 100)]), ("blue square", [(771, 173)])],
     "y: 100 vs 173, so above. above A, below B. above A. </think> \\boxed{A}"),
])
def test_oracle_decides_on_single_digit_offsets_then_reads_the_answer_off_a_table(question: str, results: list,
                                                                                 tail: str) -> None:
    q = read_question(question)
    assert next_chunk(q, []) == f"<think> <ground> {q.phrases[0]} </ground>"
    assert next_chunk(q, results) == tail
    assert WorldOracleBackend().model == WorldOracleBackend.name == "world-oracle"


def test_oracle_kth_grounds_the_ranked_object_and_says_when_there_is_none() -> None:
    q = read_question("Is the third leftmost circle above or below the blue square? Options: A. above B. below. "
                      "Answer with the letter.")
    assert next_chunk(q, [("third leftmost circle", [(300, 400)])]) == "<ground> blue square </ground>"
    assert next_chunk(q, [("third leftmost circle", []), ("blue square", [(10, 10)])]) == (
        "third leftmost circle not found. </think> \\boxed{A}")


def test_answer_words_are_one_token_in_a_thought_and_in_the_box() -> None:
    """The answer read off the table is a copy: `so left D.` and `\\boxed{D}` must end on the same token id."""
    _, processor = build_policy()
    tok = processor.tokenizer
    for word in ("yes", "no", "A", "D"):
        thought = tok(f"so left {word}.", add_special_tokens=False)["input_ids"]
        boxed = tok(f"\\boxed{{{word}}}", add_special_tokens=False)["input_ids"]
        assert thought[-2] == boxed[-2] == tok.convert_tokens_to_ids(word)
    assert tok.convert_ids_to_tokens(tok("a not", add_special_tokens=False)["input_ids"])[-1] == "▁not"


def test_shuffled_gold_grounder_gives_the_world_grounders_coordinates(world_samples) -> None:
    from vgt_agent.grounders.world import WorldGrounder

    world = WorldGrounder()
    for sample in world_samples[:8]:
        image = sample.load_image()
        for g in sample.gold_objects[:2]:
            gold = ShuffledGoldGrounder(sample).ground(image, g.name)
            seen = world.ground(image, g.name)
            assert sorted(i.box for i in gold) == sorted(i.box for i in seen)


def test_teacher_traces_are_correct_through_the_ask_graph(world_samples, tmp_path: Path) -> None:
    store = TraceStore.open(tmp_path / "t.db")
    oracle = WorldOracleBackend()
    run_id = store.start_run("synth", backend=oracle.name, model=oracle.model, grounder="world")
    results = list(run_split(oracle, world_samples, store=store, run_id=run_id))
    assert all(r.state["stop_reason"] == "answered" for r in results)
    assert sum(r.correct for r in results) >= len(results) - 1  # a grounder miss may cost one
    assert {r.sample.meta["family"] for r in results} >= {"count_shape", "closer", "larger", "kth_relation"}
    row = store.trace(results[0].state["trace_id"])
    assert row["backend"] == "world-oracle" and row["model"] == "world-oracle" and row["grounder"] == "world"
    store.close()

    _, processor = build_policy()
    for r in results[:12]:
        chunks = [{"role": c["role"], "content": c["content"]} for c in r.state["chunks"]]
        image = r.sample.load_image()
        assert check_views(processor, r.sample.question, r.sample.choices, chunks, image)
        ex = build_example(processor, r.sample.question, r.sample.choices, chunks, image)
        trained = processor.tokenizer.decode([t for t in ex.labels if t != IGNORE])
        assert "\\boxed{" in trained and "<obj>" not in trained.split("</ground>")[0]


def test_shared_prefix_loss_equals_the_full_forward(world_samples, tmp_path: Path) -> None:
    """Agent SFT through TRL (`SharedPrefixSFTTrainer`) runs the batch's system prompt once and gets the loss and
    gradients of the plain full forward over every row (what vgt-tiny's first, hand-written loop trained)."""
    import datasets

    from vgt_agent.training.agent_data import AgentCollator
    from vgt_agent.training.sft import SFTJob, sft_config
    from vgt_agent.training.shared_prefix import IMAGE_START, SharedPrefixSFTTrainer, shared_prefix_len

    rows = []
    for i, r in enumerate(run_split(WorldOracleBackend(), world_samples[:6], grounder_for=ShuffledGoldGrounder)):
        chunks = [{"role": c["role"], "content": c["content"]} for c in r.state["chunks"]]
        rows.append({"trace_id": f"t{i}", "question": r.sample.question, "choices": list(r.sample.choices),
                     "image_path": r.sample.image_path, "chunks": chunks,
                     "newlines": [j % 2 == 0 for j, c in enumerate(c for c in chunks if c["role"] == "tool")]})
    model, processor = build_policy()
    collator = AgentCollator(processor)
    batch = collator(rows)
    boi = processor.tokenizer.convert_tokens_to_ids(IMAGE_START)
    prefix = shared_prefix_len(batch["input_ids"], boi, batch["labels"])
    assert 100 < prefix == batch["input_ids"][0].tolist().index(boi)  # the whole system prompt, never the image
    trainer = SharedPrefixSFTTrainer(
        model=model, processing_class=processor, data_collator=collator, train_dataset=datasets.Dataset.from_list(rows),
        args=sft_config(SFTJob(model="vgt-tiny", variant="agent", output_dir=tmp_path / "out")))
    model.train()
    grads = []
    for loss_of in (lambda b: model(**b).loss, lambda b: trainer.compute_loss(model, b)):
        model.zero_grad()
        loss = loss_of({k: v.clone() for k, v in batch.items()})
        loss.backward()
        grads.append((loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (full, g_full), (shared, g_shared) = grads
    assert full == pytest.approx(shared, abs=1e-5) and len(g_full) == len(g_shared)
    assert max((a - b).abs().max().item() for a, b in zip(g_full, g_shared, strict=True)) < 1e-5
    # the prefix stops before any label (what its last position predicts is not computed), and one row shares
    # everything up to its image
    labels = batch["labels"].clone()
    labels[2, 50] = batch["input_ids"][2, 50]
    assert shared_prefix_len(batch["input_ids"], boi, labels) == 49
    assert shared_prefix_len(batch["input_ids"][3:4], boi) == prefix


def test_shipped_weights_load_and_are_small() -> None:
    from vgt_agent.backends.transformers_backend import TransformersBackend

    assert shipped_weights() == WEIGHTS_DIR, "vgt_agent/tiny/weights/vgt-tiny is missing: run `vgt repro tiny`"
    size = sum(f.stat().st_size for f in WEIGHTS_DIR.iterdir() if f.is_file())
    assert size <= 20_000_000
    backend = TransformersBackend.from_pretrained(WEIGHTS_DIR)
    gen = backend.generate([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}],
                           [Image.new("RGB", (64, 64))], max_tokens=4)
    assert gen.completion_tokens >= 1


def test_vgt_ask_defaults_to_vgt_tiny_and_the_world_grounder(tmp_path: Path, monkeypatch) -> None:
    for var in ("VGT_MODEL", "VGT_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    image, _ = make_sample("world-tally", 3)
    path = tmp_path / "scene.png"
    image.save(path)
    result = runner.invoke(app, ["ask", str(path), "How many red circles are there?", "--db",
                                 str(tmp_path / "t.db"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["backend"] == "transformers" and out["model"] == NAME and out["grounder"] == "world"
    assert out["stop_reason"] == "answered" and out["answer"] is not None
    assert out["tool_calls"] >= 1
