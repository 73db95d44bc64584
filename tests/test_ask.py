"""The ask agent end to end on world images: tool requested -> grounder called -> result injected ->
answer -> verified -> trace stored. Real OpenAI client over loopback (scripted model), real tiny Gemma3."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from openai_stub_server import StubOpenAIServer, StubReply
from PIL import Image
from synth_models import read_counting_turn, request_tool
from typer.testing import CliRunner

from vgt_agent.backends import OpenAIBackend
from vgt_agent.cli.main import app
from vgt_agent.graphs.ask import AskContext, AskLimits, run_ask
from vgt_agent.grounders.world import WorldGrounder
from vgt_agent.images import load_image
from vgt_agent.store import ImageRecord, SampleRecord, TraceStore
from vgt_agent.world.storage import load_split, make_split

runner = CliRunner()


def counting_model(body: dict[str, Any]) -> str | StubReply:
    """A scripted VLM: asks the tool for the counted phrase, then counts the instances it got back and
    re-points at them itself (plus one deliberate miss, so verification has something to reject)."""
    phrase, tags = read_counting_turn(body)
    if tags is None:
        return request_tool(body, phrase)
    n = len(tags[-1][1].split(";")) if tags else 0
    mine = f" They are at <obj> {phrase} | {tags[-1][1]} </obj>." if tags else ""
    miss = "[1, 1, 2, 2]" if tags and tags[-1][1].split(";")[0].count(",") == 3 else "[1, 1]"
    return f"So there are {n}.{mine} Nothing at <obj> {phrase} | {miss} </obj>.</think> \\boxed{{{n}}}"


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "tally"
    make_split(out, "world-tally", n=6)
    return out


@pytest.fixture(scope="module")
def counting_samples(world_dir: Path) -> list:
    samples = [s for s in load_split(world_dir) if re.match(r"^How many .+ are there\?$", s.question)]
    assert samples, "the tally split should hold 'How many X are there?' questions"
    return samples


def _ctx(sample, backend, store: TraceStore, **kw) -> AskContext:
    image = ImageRecord.from_path(sample.image_path)
    record = SampleRecord.from_sample(sample, image)
    run = store.start_run("ask", backend=backend.name, model=backend.model, grounder="world")
    return AskContext(image=load_image(sample.image_path), sample=record, backend=backend, grounder=WorldGrounder(),
                      store=store, run_id=run, **kw)


@pytest.mark.parametrize("protocol", ["text", "function"])
@pytest.mark.parametrize("kind", ["point", "box"])
def test_agent_grounds_answers_verifies_and_logs(counting_samples, tmp_path: Path, protocol: str, kind: str) -> None:
    store = TraceStore.open(tmp_path / "t.db")
    with StubOpenAIServer(counting_model) as server:
        backend = OpenAIBackend(base_url=server.base_url, model=server.model)
        for sample in counting_samples:
            state = run_ask(_ctx(sample, backend, store, protocol=protocol, kind=kind))
            assert state["tool_calls"] == 1 and state["stop_reason"] == "answered"
            assert state["answer"] == sample.answer and state["correct"] is True
            trace = store.trace(state["trace_id"])
            sources = [g["source"] for g in trace["groundings"]]
            if sample.answer != "0":
                assert sources == ["tool", "model", "model"]
                assert all(g["kind"] == kind for g in trace["groundings"])
                tool, mine, miss = trace["groundings"]
                assert len(tool["coords"]) == int(sample.answer)
                assert mine["verified"] is True and miss["verified"] is False
                assert trace["verified_fraction"] == 0.5
                assert len(trace["masks"]) == int(sample.answer)
                assert all(m["grounding_idx"] == 0 for m in trace["masks"])
            assert trace["backend"] == "openai" and trace["model"] == "stub-vlm" and trace["grounder"] == "world"
            assert trace["status"] == "ok" and trace["meta"]["protocol"] == protocol
        sent = server.chat_requests
    # the tool result reached the model: second request of a sample carries the <obj> tags
    if protocol == "text":
        assert [m["role"] for m in sent[1]["messages"]][2:] == ["assistant", "user"]  # the portable turns form
        assert sent[1]["messages"][2]["content"].endswith("</ground>") and "stop" in sent[1]
    else:
        assert sent[1]["messages"][-1]["role"] == "tool"
    assert sent[0]["messages"][1]["content"][0]["type"] == "image_url"


def test_repeated_tool_call_ends_the_loop(counting_samples, tmp_path: Path) -> None:
    store = TraceStore.open(tmp_path / "t.db")
    with StubOpenAIServer(lambda body: "<think>again <ground> red circles </ground>") as server:
        backend = OpenAIBackend(base_url=server.base_url, model=server.model)
        state = run_ask(_ctx(counting_samples[0], backend, store))
    assert state["stop_reason"] == "repeated_call" and state["tool_calls"] == 1 and state["turns"] == 2
    trace = store.trace(state["trace_id"])
    assert trace["correct"] is False and trace["answer"] is None and trace["status"] == "ok"


def test_max_turns_and_malformed_output_are_recorded(counting_samples, tmp_path: Path) -> None:
    store = TraceStore.open(tmp_path / "t.db")
    phrases = iter(f"thing {i}" for i in range(100))
    with StubOpenAIServer(lambda body: f"<obj> broken | [1, 2 <ground> {next(phrases)} </ground>") as server:
        backend = OpenAIBackend(base_url=server.base_url, model=server.model)
        state = run_ask(_ctx(counting_samples[0], backend, store, limits=AskLimits(max_turns=3)))
    assert state["stop_reason"] == "max_turns" and state["turns"] == 3
    trace = store.trace(state["trace_id"])
    assert "unclosed_tag" in trace["meta"]["problems"] or "nested_tag" in trace["meta"]["problems"]


def test_server_dying_midway_logs_the_trace_with_its_error(counting_samples, tmp_path: Path) -> None:
    store = TraceStore.open(tmp_path / "t.db")
    server = StubOpenAIServer(counting_model).start()
    backend = OpenAIBackend(base_url=server.base_url, model=server.model, max_attempts=2, backoff_s=0.01,
                            connect_timeout_s=1.0)
    server.push("<think>Looking. <ground> red circles </ground>")
    server.fail_next(0)

    def die(event: str, payload: Any) -> None:
        if event == "tool":
            server.stop()

    state = run_ask(_ctx(counting_samples[0], backend, store, on_event=die))
    assert state["error"] and "127.0.0.1" in state["error"]
    trace = store.trace(state["trace_id"])
    assert trace["status"] == "error" and trace["error"] == state["error"] and trace["meta"]["tool_calls"] == 1
    assert store.integrity_ok()


def test_tiny_gemma3_transformers_backend_runs_the_loop(counting_samples, tmp_path: Path) -> None:
    from vgt_agent.backends import TransformersBackend
    from vgt_agent.backends.tiny_gemma3 import build_tiny_gemma3

    model, processor = build_tiny_gemma3()
    backend = TransformersBackend(model, processor, model_name="tiny-random-gemma3")
    store = TraceStore.open(tmp_path / "t.db")
    state = run_ask(_ctx(counting_samples[0], backend, store, limits=AskLimits(max_tokens=24, max_turns=2)))
    trace = store.trace(state["trace_id"])
    assert trace["backend"] == "transformers" and trace["model"] == "tiny-random-gemma3"
    assert trace["status"] == "ok" and state["tokens"] <= 24 and trace["completion"]


def test_cli_ask_end_to_end_with_picture(world_dir: Path, counting_samples, tmp_path: Path) -> None:
    sample = counting_samples[0]
    db, png = tmp_path / "t.db", tmp_path / "ask.png"
    with StubOpenAIServer(counting_model) as server:
        result = runner.invoke(app, ["ask", sample.image_path, sample.question, "--base-url", server.base_url,
                                     "--model", server.model, "--db", str(db), "--save", str(png), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["answer"] == sample.answer and out["correct"] is True and out["gold"] == sample.answer
    assert out["backend"] == "openai" and out["grounder"] == "world" and png.stat().st_size > 1000
    listed = json.loads(runner.invoke(app, ["traces", "list", "--db", str(db), "--json"]).output)
    assert listed[0]["dataset"] == sample.dataset and listed[0]["id"] == out["trace_id"]


def test_cli_ask_with_gold_grounder_on_a_world_image(counting_samples, tmp_path: Path) -> None:
    sample = counting_samples[-1]
    with StubOpenAIServer(counting_model) as server:
        result = runner.invoke(app, ["ask", sample.image_path, sample.question, "--base-url", server.base_url,
                                     "--model", server.model, "--grounder", "gold", "--grounding", "box",
                                     "--db", str(tmp_path / "t.db"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["grounder"] == "gold" and out["correct"] is True


@pytest.mark.parametrize("case", ["missing", "corrupt", "not-image", "huge", "empty-question",
                                  "gold-without-world"])  # choices and an unreachable server: test_faults_cli
def test_cli_bad_input_exit_2_nothing_written(case: str, counting_samples, tmp_path: Path) -> None:
    image, question = counting_samples[0].image_path, "How many red circles are there?"
    extra: list[str] = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
    if case == "missing":
        image = str(tmp_path / "nope.png")
    elif case == "corrupt":
        data = Path(image).read_bytes()
        image = str(tmp_path / "corrupt.png")
        Path(image).write_bytes(data[: len(data) // 3])
    elif case == "not-image":
        image = str(tmp_path / "notes.png")
        Path(image).write_text("hello")
    elif case == "huge":
        image = str(tmp_path / "huge.png")
        Image.new("1", (9000, 8000)).save(image)  # 72 M pixels: refused before decoding
    elif case == "empty-question":
        question = "   "
    elif case == "gold-without-world":
        extra += ["--grounder", "gold"]
        question = "What colour is the sky?"
    db = tmp_path / "t.db"
    result = runner.invoke(app, ["ask", image, question, "--db", str(db), *extra])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert not db.exists()


@pytest.mark.slow
def test_cli_ask_with_saved_tiny_gemma3_and_tiny_sam3_checkpoints(counting_samples, tmp_path: Path) -> None:
    """The real loading paths: a Gemma3 directory through the transformers backend, SAM3 from a directory."""
    from vgt_agent.backends.tiny_gemma3 import save_tiny_gemma3
    from vgt_agent.grounders.sam3_tiny import build_tiny_sam3

    gemma = save_tiny_gemma3(tmp_path / "gemma")
    sam_model, sam_processor = build_tiny_sam3()
    sam_model.save_pretrained(tmp_path / "sam3")
    sam_processor.save_pretrained(tmp_path / "sam3")
    sample, db = counting_samples[0], tmp_path / "t.db"
    result = runner.invoke(app, ["ask", sample.image_path, sample.question, "--backend", "transformers",
                                 "--model", str(gemma), "--grounder", "sam3", "--sam3-checkpoint",
                                 str(tmp_path / "sam3"), "--max-tokens", "16", "--db", str(db), "--json"])
    out = json.loads(result.stdout)
    assert result.exit_code == (0 if out["status"] == "answered" else 1), result.output  # a random model may not
    assert out["status"] in ("answered", "no_answer")  # finish its answer in 16 tokens: exit 1, no answer
    assert out["backend"] == "transformers" and out["model"].endswith("gemma")
    assert out["grounder"] == f"sam3:{tmp_path / 'sam3'}"
    assert out["correct"] is False or out["correct"] is True  # a random model answers something or nothing
    row = json.loads(runner.invoke(app, ["traces", "show", out["trace_id"], "--db", str(db), "--json"]).output)
    assert row["model"] == out["model"] and row["grounder"] == out["grounder"]


def test_cli_ask_missing_checkpoints_exit_2(counting_samples, tmp_path: Path) -> None:
    sample, db = counting_samples[0], tmp_path / "t.db"
    for extra in (["--backend", "transformers", "--model", str(tmp_path / "no-model")],
                  ["--grounder", "sam3", "--sam3-checkpoint", str(tmp_path / "no-sam3"), "--model", "m",
                   "--base-url", "http://127.0.0.1:9/v1"]):
        result = runner.invoke(app, ["ask", sample.image_path, sample.question, "--db", str(db), *extra])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and not db.exists()
