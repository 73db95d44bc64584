"""A model that reads and writes another coordinate convention, through the real ask graph.

The world-oracle copies the coordinates it is shown, so behind `ConventionBackend` it behaves like a model
trained on Qwen2.5-VL's absolute pixels: the test checks it is shown only its own
convention, and that what the graph parses, verifies and stores is canonical 0..1000, equal within the
convention's rounding to the run without conversion.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from vgt_agent.backends.coord_boundary import ConventionBackend, with_convention
from vgt_agent.backends.world_oracle import WorldOracleBackend
from vgt_agent.geometry.conventions import get_convention, smart_resize
from vgt_agent.graphs.ask import AskContext, AskLimits, run_ask
from vgt_agent.grounders.world import WorldGrounder
from vgt_agent.prompts import COORDINATES, coordinates_sentence
from vgt_agent.store import ImageRecord, SampleRecord
from vgt_agent.world.storage import load_split, make_split

NUMBER = re.compile(r"\d+(?:\.\d+)?")


class Recording:
    """Passes requests through and keeps the messages the model was shown."""

    def __init__(self, inner: WorldOracleBackend) -> None:
        self.inner, self.shown, self.systems = inner, [], []
        self.name, self.model, self.supports_function_calling = inner.name, inner.model, False

    def generate(self, messages, images=(), **kwargs):
        self.shown.append([m["content"] for m in messages if isinstance(m.get("content"), str)])
        self.systems.extend(part["text"] if isinstance(part, dict) else part for m in messages
                            if m["role"] == "system" for part in (m["content"] if isinstance(m["content"], list)
                                                                   else [m["content"]]))
        return self.inner.generate(messages, images, **kwargs)


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list:
    root = tmp_path_factory.mktemp("world")
    make_split(root / "tally", "world-tally-varied", n=4, seed=5)  # 256-1024 px, not square
    return [s for s in load_split(root / "tally") if s.answer not in ("0",)]


def _run(backend, sample) -> dict:
    image = Image.open(sample.image_path).convert("RGB")
    record = SampleRecord.from_sample(sample, ImageRecord.from_path(Path(sample.image_path)))
    return run_ask(AskContext(image=image, sample=record, backend=backend, grounder=WorldGrounder(),
                              limits=AskLimits(max_tokens=1024)))


def _model_points(state: dict) -> list[tuple[int, ...]]:
    return [tuple(c) for g in state["groundings"] if g["source"] == "model" for c in g["coords"]]


@pytest.mark.parametrize("name", ["qwen2.5-vl-pixels"])  # the oracle reads integers: decimal conventions are
def test_a_model_in_another_convention_sees_only_it_and_the_graph_stores_canonical(samples, name):  # text-tested
    convention = get_convention(name)
    for sample in samples:
        width, height = Image.open(sample.image_path).size
        plain = _run(WorldOracleBackend(), sample)
        seen = Recording(WorldOracleBackend())
        converted = _run(ConventionBackend(seen, convention), sample)
        assert converted["answer"] == plain["answer"] == sample.answer and converted["correct"]
        # what the model was shown: tool replies in its own frame
        frame_w, frame_h = convention.frame(width, height)
        replies = [re.search(r"\|(.*?)</obj>", text).group(1) for turn in seen.shown for text in turn
                   if "<obj>" in text and "|" in text]
        assert replies
        shown = [float(v) for r in replies for v in NUMBER.findall(r)]
        assert max(shown) <= max(frame_w, frame_h) and max(shown) > 0
        if name == "qwen2.5-vl-pixels":
            assert (frame_h, frame_w) == smart_resize(height, width)
        # the system prompt speaks of the model's convention, not of 0..1000
        assert seen.systems and all(COORDINATES not in s and coordinates_sentence(convention) in s
                                    for s in seen.systems)
        # what the graph kept: canonical 0..1000, the unconverted run's points within the rounding
        tolerance = 2  # a resized pixel is at most ~2 of 1000 on these sizes
        a, b = _model_points(converted), _model_points(plain)
        assert len(a) == len(b) > 0
        assert all(abs(p - q) <= tolerance for pa, pb in zip(a, b, strict=True) for p, q in zip(pa, pb, strict=True))
        assert converted["verified_fraction"] == plain["verified_fraction"] == 1.0


def test_canonical_models_are_not_wrapped_and_coords_overrides():
    oracle = WorldOracleBackend()
    assert with_convention(oracle) is oracle  # a server or unknown family: canonical
    wrapped = with_convention(oracle, "unit")
    assert isinstance(wrapped, ConventionBackend) and wrapped.convention.name == "unit"
    assert wrapped.model == oracle.model and wrapped.name == oracle.name  # the rest is the wrapped backend's


def test_ask_coords_unknown_is_exit_2_and_a_chosen_one_is_reported(samples, tmp_path):
    from typer.testing import CliRunner
    from vgt_cli import vgt

    from vgt_agent.cli.main import app

    sample = samples[0]
    db = tmp_path / "t.db"
    bad = vgt("ask", sample.image_path, sample.question, "--coords", "inches", "--db", str(db))
    assert bad.exit_code == 2 and "Invalid value for '--coords'" in bad.stderr and not db.exists()
    assert len(bad.stderr.strip().splitlines()) == 1
    ok = CliRunner().invoke(app, ["ask", sample.image_path, sample.question, "--coords", "norm1000", "--json",
                                  "--max-tokens", "32", "--db", str(db)])
    assert ok.exit_code in (0, 1) and '"coords": "norm1000"' in ok.stdout
