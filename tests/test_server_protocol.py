"""The OpenAI backend against misbehaving servers (the stub's fault injection): one BackendError line each,
stop strings moved client-side when a server fails on them or ignores them, the turn form detected."""

from __future__ import annotations

import pytest
from openai_stub_server import StubOpenAIServer
from PIL import Image

from vgt_agent.backends import BackendError, OpenAIBackend
from vgt_agent.backends.base import redact_url

CHAT = [{"role": "system", "content": "Think."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]
IMAGE = Image.new("RGB", (16, 16), (200, 30, 30))


def _backend(stub: StubOpenAIServer, **options) -> OpenAIBackend:
    return OpenAIBackend(base_url=stub.base_url, model="m", backoff_s=0.01, **options)


@pytest.mark.parametrize("fault,stream,kind", [
    ("garbage", False, "malformed"), ("empty_choices", False, "malformed"), ("bad_sse_json", True, "malformed"),
    ("bad_utf8", True, "malformed"), ("sse_error", True, "stream"), ("no_finish", True, "malformed"),
])
def test_every_broken_reply_is_one_backend_error_line(fault, stream, kind):
    with StubOpenAIServer() as stub:
        stub.inject(fault, k=5)
        with pytest.raises(BackendError) as info:
            _backend(stub).generate(CHAT, [IMAGE], stream=(lambda _t: None) if stream else None)
    message = str(info.value)
    assert info.value.kind == kind and "\n" not in message and stub.base_url in message and "(model m)" in message


def test_a_server_that_ignores_stream_is_read_whole():
    with StubOpenAIServer() as stub:
        stub.push("<think> two </think> \\boxed{2}")
        stub.inject("ignore_stream")
        seen: list[str] = []
        gen = _backend(stub).generate(CHAT, [IMAGE], stream=seen.append)
    assert gen.text == "<think> two </think> \\boxed{2}" and "".join(seen) == gen.text


def test_a_hung_server_times_out_within_the_timeout():
    with StubOpenAIServer(hang_s=3.0) as stub:
        stub.inject("hang", k=5)
        with pytest.raises(BackendError, match=r"did not answer within 0.3 s \(2 attempts\)") as info:
            _backend(stub, timeout_s=0.3).generate(CHAT, [IMAGE])
    assert info.value.kind == "timeout"


@pytest.mark.parametrize("support", ["error", "ignore"])
def test_stops_move_client_side_when_the_server_fails_on_them_or_ignores_them(support):
    with StubOpenAIServer(stop_support=support) as stub:
        backend = _backend(stub)
        for _ in range(2):
            stub.push("<think> <ground> red circle </ground> and more </ground>")
        first = backend.generate(CHAT, [IMAGE], stop=["</ground>"])
        assert backend.server_modes()["stop"] == "client"
        second = backend.generate(CHAT, [IMAGE], stop=["</ground>"])
    for gen in (first, second):
        assert gen.text == "<think> <ground> red circle </ground>" and gen.stop_sequence == "</ground>"
    assert "stop" not in stub.chat_requests[-1] and stub.chat_requests[-1]["stream"] is True


def test_stops_stay_server_side_where_honoured():
    with StubOpenAIServer() as stub:
        backend = _backend(stub)
        stub.push("<think> <ground> red circle </ground> and more")
        gen = backend.generate(CHAT, [IMAGE], stop=["</ground>"])
    assert gen.text.endswith("</ground>") and backend.server_modes() == {"stop": "server", "turns": "turns"}


def test_continuation_is_used_only_where_the_server_continues_a_prefill():
    with StubOpenAIServer(strict_fields=True) as strict:
        backend = _backend(strict, turn_form="continuation")
        assert backend.server_modes()["turns"] == "turns"
        with pytest.raises(BackendError, match="continuation turn form"):
            backend.generate([*CHAT, {"role": "assistant", "content": "<think>"}], [IMAGE])
    with StubOpenAIServer() as vllm_like:
        assert _backend(vllm_like, turn_form="continuation").server_modes()["turns"] == "continuation"
        assert _backend(vllm_like).server_modes()["turns"] == "turns"  # never unless the model asks for it


def test_url_credentials_and_keys_never_reach_errors_or_repr():
    with StubOpenAIServer() as stub:
        url = stub.base_url.replace("http://", "http://me:pa55w0rd@")
        stub.fail_next(5, 400)
        backend = OpenAIBackend(base_url=url, model="m", api_key="sk-abc-secret", backoff_s=0.01)
        with pytest.raises(BackendError) as info:
            backend.generate(CHAT, [IMAGE])
    for text in (str(info.value), repr(backend), str(vars(backend))):
        assert "pa55w0rd" not in text and "sk-abc-secret" not in text
    assert redact_url(url) in str(info.value)


# --- the ask command and graph over every fault: one line, exit 1, the run failed, no key anywhere ---------

FAKE_KEY = "sk-fake-3x1t-one-never-shown"


@pytest.fixture(scope="module")
def world_sample(tmp_path_factory):
    from vgt_agent.world.storage import load_split, make_split

    out = tmp_path_factory.mktemp("protocol") / "tally"
    make_split(out, "world-tally", n=2, seed=5)
    return next(iter(load_split(out)))


@pytest.mark.parametrize("fault", ["garbage", "empty_choices", "bad_sse_json", "bad_utf8", "sse_error", "no_finish",
                                   "500", "429", "hang"])
def test_ask_over_a_faulty_server_is_one_line_exit_1_and_a_failed_run(fault, world_sample, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from vgt_agent.cli.main import app
    from vgt_agent.store import TraceStore

    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    db = tmp_path / "t.db"
    with StubOpenAIServer(api_key=FAKE_KEY, hang_s=2.0) as stub:
        if fault in ("500", "429"):
            stub.fail_next(10, int(fault))
        else:
            stub.inject(fault, 10)
        result = CliRunner().invoke(app, ["ask", world_sample.image_path, world_sample.question, "--base-url",
                                          stub.base_url, "--model", "m", "--db", str(db), "--timeout", "0.5"])
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert len(errors) == 1 and stub.base_url in errors[0] and "model m" in errors[0], result.stderr
    for text in (result.stdout, result.stderr, db.read_bytes().decode("latin-1")):
        assert FAKE_KEY not in text
    with TraceStore.open(db, create=False) as store:
        (run,) = store.runs("ask")
        traces = list(store.traces())
    assert run["status"] == "failed" and run["error"] and all(t["status"] == "error" for t in traces)


def test_ask_graph_records_the_modes_it_ran_in(world_sample):
    from pathlib import Path

    from vgt_agent.graphs.ask import AskContext, run_ask
    from vgt_agent.grounders.world import WorldGrounder
    from vgt_agent.store import ImageRecord, SampleRecord

    record = SampleRecord.from_sample(world_sample, ImageRecord.from_path(Path(world_sample.image_path)))
    image = Image.open(world_sample.image_path).convert("RGB")
    with StubOpenAIServer(stop_support="error") as stub:
        stub.push("<think> <ground> red circles </ground> more", "</think> \\boxed{0}")
        state = run_ask(AskContext(image=image, sample=record, backend=_backend(stub), grounder=WorldGrounder()))
        second = stub.chat_requests[-1]["messages"]
    assert state["server_modes"] == {"stop": "client", "turns": "turns"} and state.get("error") is None
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"] == "<think> <ground> red circles </ground>"
    assert second[3]["content"].startswith("<obj> red circles") or second[3]["content"].endswith("found.")


# --- the turn forms --------------------------------------------------------------------------------------------

CHUNKS = [{"role": "assistant", "content": "<think> <ground> red circles </ground>"},
          {"role": "tool", "content": "\n<obj> red circles | [120, 700] </obj>\n"},
          {"role": "assistant", "content": " One. </think> \\boxed{1}"}]


def test_one_builder_lays_a_trace_out_in_either_form():
    from vgt_agent.backends.turns import agent_messages

    turns = agent_messages("S", "How many?", (), CHUNKS[:2], "turns")
    assert [m["role"] for m in turns] == ["system", "user", "assistant", "user"]
    assert turns[3]["content"] == "<obj> red circles | [120, 700] </obj>"
    continued = agent_messages("S", "How many?", (), CHUNKS[:2], "continuation")
    assert continued[2:] == [{"role": "assistant", "content": CHUNKS[0]["content"] + CHUNKS[1]["content"]}]
    assert agent_messages("S", "How many?", (), [], "turns") == agent_messages("S", "How many?", (), [],
                                                                                 "continuation")
    with pytest.raises(ValueError, match="turn form must be one of"):
        agent_messages("S", "How many?", (), CHUNKS, "prefill")  # type: ignore[arg-type]


def test_gemma3s_template_takes_the_reply_as_a_user_turn_but_refuses_a_tool_role():
    """Why the portable form sends the tool's reply as `user`: Gemma3's template alternates user/model only."""
    from transformers import AutoProcessor

    from vgt_agent.backends.turns import agent_messages
    from vgt_agent.tiny.recipe import WEIGHTS_DIR

    processor = AutoProcessor.from_pretrained(WEIGHTS_DIR)
    messages = agent_messages("S", "How many?", (), CHUNKS, "turns")
    text = processor.apply_chat_template(messages, tokenize=False)
    assert "<start_of_turn>user\n<obj> red circles | [120, 700] </obj><end_of_turn>" in text
    with pytest.raises(Exception, match="alternate"):
        processor.apply_chat_template([*messages[:3], {"role": "tool", "content": "<obj> x </obj>"}], tokenize=False)


def test_a_model_directory_declares_its_turn_form(tmp_path):
    from vgt_agent.backends.turns import read_turn_form
    from vgt_agent.tiny.recipe import WEIGHTS_DIR

    assert read_turn_form(WEIGHTS_DIR) == "turns"  # the shipped vgt-tiny: trained in the portable form
    assert read_turn_form(tmp_path) == "turns" and read_turn_form(None) == "turns"
    (tmp_path / "training_info.json").write_text("{not json")
    assert read_turn_form(tmp_path) == "turns"
    (tmp_path / "training_info.json").write_text('{"turn_form": "turns"}')
    assert read_turn_form(tmp_path) == "turns"


def test_synth_via_agent_works_on_a_server_like_transformers_serve(tmp_path):
    """Stops fail server-side and vLLM's fields are refused: the agent path still keeps every sample."""
    import json

    from synth_models import counting_agent
    from typer.testing import CliRunner

    from vgt_agent.cli.main import app
    from vgt_agent.world.storage import make_split

    make_split(tmp_path / "tally", "world-tally", n=4, seed=3)
    with StubOpenAIServer(counting_agent, stop_support="error", strict_fields=True) as stub:
        result = CliRunner().invoke(app, ["synth", "--dataset", str(tmp_path / "tally"), "--via", "agent",
                                          "--base-url", stub.base_url, "--model", stub.model,
                                          "--concurrency", "1", "--db", str(tmp_path / "t.db"), "--json"])
        bodies = stub.chat_requests
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["kept"] == 4
    assert not any("continue_final_message" in b for b in bodies)
    assert sum("stop" in b for b in bodies) == 1  # one failure on stop strings, then client-side stops only
