"""vgt-tiny: the world-oracle teacher is right through the real ask graph, its traces become exact training
views, and the shipped weights answer `vgt ask` with no backend flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from vgt_agent.backends.world_oracle import WorldOracleBackend, read_question, tool_results
from vgt_agent.cli.main import app
from vgt_agent.store import TraceStore
from vgt_agent.tiny.agent_runs import BENCHMARKS, run_split
from vgt_agent.tiny.examples import IGNORE, build_example, check_views
from vgt_agent.tiny.recipe import NAME, WEIGHTS_DIR, build_policy, shipped_weights
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
    ("Is the second leftmost circle above or below the green square?", "kth", ("circles", "green square")),
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


def test_teacher_traces_are_correct_through_the_ask_graph(world_samples, tmp_path: Path) -> None:
    store = TraceStore.open(tmp_path / "t.db")
    oracle = WorldOracleBackend()
    run_id = store.start_run("synth", backend=oracle.name, model=oracle.model, grounder="world")
    results = list(run_split(oracle, world_samples, store=store, run_id=run_id))
    assert all(r.state["stop_reason"] == "answered" for r in results)
    assert sum(r.correct for r in results) >= len(results) - 1  # a grounder miss may cost one
    assert {r.sample.meta["family"] for r in results} >= {"count_shape", "closer", "larger", "kth_relation"}
    row = store.trace(results[0].state["trace_id"])
    assert row["backend"] == "world-oracle" and row["model"].startswith("world-oracle") and row["grounder"] == "world"
    store.close()

    _, processor = build_policy()
    for r in results[:12]:
        chunks = [{"role": c["role"], "content": c["content"]} for c in r.state["chunks"]]
        image = r.sample.load_image()
        assert check_views(processor, r.sample.question, r.sample.choices, chunks, image)
        ex = build_example(processor, r.sample.question, r.sample.choices, chunks, image)
        trained = processor.tokenizer.decode([t for t in ex.labels if t != IGNORE])
        assert "\\boxed{" in trained and "<obj>" not in trained.split("</ground>")[0]


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
