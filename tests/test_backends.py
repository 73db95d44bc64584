"""Backends: OpenAI over loopback against the stub server; transformers on the tiny Gemma3."""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import subprocess
import sys
import threading
import time

import pytest
from openai_stub_server import StubOpenAIServer, StubReply
from PIL import Image

from vgt_agent.backends import BackendError, Generation, OpenAIBackend, ToolCall, VLMBackend, make_backend
from vgt_agent.backends.openai_backend import _stop_hit, image_data_url

KEY = "sk-test-5ecret-do-not-leak"
SEGMENT_TOOL = {
    "type": "function",
    "function": {
        "name": "segment_phrase",
        "description": "Ground a phrase in the image.",
        "parameters": {
            "type": "object",
            "properties": {"phrase": {"type": "string"}},
            "required": ["phrase"],
        },
    },
}


def _image(colour: tuple[int, int, int] = (220, 40, 40), size: tuple[int, int] = (40, 30)) -> Image.Image:
    return Image.new("RGB", size, colour)


def _chat(n_images: int = 1, question: str = "How many red circles?") -> list[dict]:
    parts = [{"type": "image"}] * n_images + [{"type": "text", "text": question}]
    return [
        {"role": "system", "content": "Think, then answer in \\boxed{}."},
        {"role": "user", "content": parts},
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    with StubOpenAIServer(api_key=KEY) as stub:
        yield stub


@pytest.fixture
def backend(server):
    return OpenAIBackend(base_url=server.base_url, model="gemma-3-4b-it", api_key=KEY, backoff_s=0.01)


# --- OpenAI backend ----------------------------------------------------------------------------------


def test_text_generation_sends_images_as_png_data_urls_in_place(server, backend):
    server.push("<think> There are two. </think> \\boxed{2}")
    red, blue = _image((220, 40, 40)), _image((40, 80, 220), (20, 10))
    gen = backend.generate(_chat(2), [red, blue], max_tokens=64, temperature=0.5)

    assert isinstance(gen, Generation) and isinstance(backend, VLMBackend)
    assert gen.text == "<think> There are two. </think> \\boxed{2}"
    assert (gen.finish_reason, gen.stop_sequence, gen.backend, gen.model) == (
        "stop",
        None,
        "openai",
        "stub-vlm",
    )
    assert gen.prompt_tokens > 0 and gen.completion_tokens == 6 and gen.latency_s > 0
    body = server.chat_requests[-1]
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("gemma-3-4b-it", 64, 0.5)
    assert "stop" not in body and "tools" not in body
    parts = body["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
    for part, original in zip(parts, (red, blue), strict=False):
        url = part["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert decoded.format == "PNG" and decoded.convert("RGB").tobytes() == original.tobytes()
    assert body["messages"][0] == {"role": "system", "content": "Think, then answer in \\boxed{}."}
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_stop_string_is_reappended_after_the_server_strips_it(server, backend):
    server.push("<think> Let me look. <ground> red circle </ground> <obj> never generated </obj>")
    gen = backend.generate(_chat(), [_image()], stop=["</ground>"])
    assert gen.text == "<think> Let me look. <ground> red circle </ground>"
    assert (gen.finish_reason, gen.stop_sequence) == ("stop", "</ground>")
    assert server.chat_requests[-1]["stop"] == ["</ground>"]


def test_end_of_turn_without_stop_string_is_not_a_stop_hit(server, backend):
    server.push("<think> Easy. </think> \\boxed{3}")
    gen = backend.generate(_chat(), [_image()], stop=["</ground>"])
    assert (gen.text, gen.stop_sequence, gen.finish_reason) == (
        "<think> Easy. </think> \\boxed{3}",
        None,
        "stop",
    )


def test_stop_detection_without_vllm_stop_reason_uses_open_tag():
    assert _stop_hit("a <ground> cup ", "stop", {}, ["</ground>"]) == "</ground>"
    assert _stop_hit("a <ground> cup </ground> done", "stop", {}, ["</ground>"]) is None
    assert _stop_hit("a <ground> cup ", "stop", {"stop_reason": None}, ["</ground>"]) is None  # vLLM: EOS
    assert _stop_hit("a <ground> cup ", "length", {}, ["</ground>"]) is None


def test_max_tokens_gives_length(server, backend):
    server.push("one two three four five six")
    gen = backend.generate(_chat(), [_image()], max_tokens=3, stop=["</ground>"])
    assert (gen.text, gen.finish_reason, gen.stop_sequence, gen.completion_tokens) == (
        "one two three",
        "length",
        None,
        3,
    )


def test_function_calling_returns_parsed_tool_calls(server, backend):
    server.push(StubReply(tool_calls=[{"name": "segment_phrase", "arguments": {"phrase": "red cup"}}]))
    gen = backend.generate(_chat(), [_image()], tools=[SEGMENT_TOOL])
    assert gen.finish_reason == "tool_calls"
    assert gen.tool_calls == [ToolCall("segment_phrase", {"phrase": "red cup"})]
    name, args = gen.tool_calls[0]
    assert (name, args, gen.tool_call_ids) == ("segment_phrase", {"phrase": "red cup"}, ["call_0"])
    assert server.chat_requests[-1]["tools"] == [SEGMENT_TOOL]
    message = gen.assistant_message()
    assert message["tool_calls"][0]["id"] == "call_0"
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"phrase": "red cup"}


def test_tool_results_conversation_passes_through(server, backend):
    server.push(
        StubReply(tool_calls=[{"name": "segment_phrase", "arguments": {"phrase": "star"}}]), "\\boxed{1}"
    )
    first = backend.generate(_chat(), [_image()], tools=[SEGMENT_TOOL])
    tool_message = {
        "role": "tool",
        "tool_call_id": first.tool_call_ids[0],
        "content": "<obj> star | [5, 5] </obj>",
    }
    chat = [*_chat(), first.assistant_message(), tool_message]
    second = backend.generate(chat, [_image()], tools=[SEGMENT_TOOL])
    assert second.text == "\\boxed{1}" and second.tool_calls == []
    sent = server.chat_requests[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["function"]["name"] == "segment_phrase" and sent[-1] == tool_message


def test_malformed_tool_arguments_are_kept_not_raised(server, backend):
    server.push(StubReply(tool_calls=[{"name": "segment_phrase", "arguments": '{"phrase": "red'}]))
    gen = backend.generate(_chat(), [_image()], tools=[SEGMENT_TOOL])
    assert gen.tool_calls == [ToolCall("segment_phrase", {"_unparsed": '{"phrase": "red'})]


def test_streaming_calls_back_per_chunk_and_reappends_stop(server, backend):
    server.push("<think> I should ground it. <ground> blue star </ground> ignored")
    chunks: list[str] = []
    gen = backend.generate(_chat(), [_image()], stop=["</ground>"], stream=chunks.append)
    assert gen.text == "<think> I should ground it. <ground> blue star </ground>"
    assert "".join(chunks) == gen.text and len(chunks) > 5
    assert (gen.stop_sequence, gen.finish_reason) == ("</ground>", "stop")
    assert gen.completion_tokens > 0 and gen.prompt_tokens > 0  # from the include_usage chunk
    assert server.chat_requests[-1]["stream"] is True


def test_streaming_tool_calls_accumulate_fragments(server, backend):
    server.push(StubReply(tool_calls=[{"name": "segment_phrase", "arguments": {"phrase": "green ring"}}]))
    gen = backend.generate(_chat(), [_image()], tools=[SEGMENT_TOOL], stream=lambda _text: None)
    assert gen.finish_reason == "tool_calls"
    assert gen.tool_calls == [ToolCall("segment_phrase", {"phrase": "green ring"})]


def test_trailing_assistant_message_is_continued_where_the_server_honours_it(server):
    backend = OpenAIBackend(base_url=server.base_url, model="m", api_key=KEY, turn_form="continuation")
    server.push(" so the answer is \\boxed{1}")
    prefill = "<think> <ground> star </ground> <obj> star | [10, 20] </obj>"
    chat = [*_chat(), {"role": "assistant", "content": prefill}]
    backend.generate(chat, [_image()])
    assert backend.server_modes()["turns"] == "continuation"
    probes, body = server.chat_requests[:2], server.chat_requests[-1]
    assert [p.get("continue_final_message") for p in probes] == [None, True] and probes[0]["max_tokens"] == 1
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["messages"][-1] == {"role": "assistant", "content": prefill}


@pytest.mark.parametrize("status", [503, 429, 500])
def test_retries_transient_failures_then_succeeds(server, backend, status):
    server.fail_next(2, status)
    server.push("\\boxed{4}")
    gen = backend.generate(_chat(), [_image()])
    assert gen.text == "\\boxed{4}"
    assert [r.status for r in server.requests] == [status, status, 200]


def test_streaming_also_retries_before_any_text(server, backend):
    server.fail_next(1, 503)
    server.push("\\boxed{4}")
    chunks: list[str] = []
    assert backend.generate(_chat(), [_image()], stream=chunks.append).text == "\\boxed{4}"
    assert "".join(chunks) == "\\boxed{4}" and len(server.requests) == 2


def test_stream_broken_after_text_is_not_retried():
    with StubOpenAIServer(drop_stream_after=3) as stub:
        backend = OpenAIBackend(base_url=stub.base_url, model="m", backoff_s=0.01)
        stub.push("one two three four")
        chunks: list[str] = []
        with pytest.raises(BackendError, match="broke after 3 event") as info:
            backend.generate(_chat(), [_image()], stream=chunks.append)
        assert chunks == ["one", " two"] and len(stub.requests) == 1 and info.value.kind == "stream"


def test_stream_broken_before_text_is_retried():
    with StubOpenAIServer(drop_stream_after=1) as stub:
        backend = OpenAIBackend(base_url=stub.base_url, model="m", backoff_s=0.01)
        with pytest.raises(BackendError, match="after 3 attempts") as info:
            backend.generate(_chat(), [_image()], stream=lambda _t: None)
        assert len(stub.requests) == 3 and info.value.unreachable


def test_gives_up_after_bounded_attempts(server, backend):
    server.fail_next(5, 503)
    with pytest.raises(BackendError) as info:
        backend.generate(_chat(), [_image()])
    err = info.value
    assert (err.status, err.unreachable) == (503, False)
    assert "answered HTTP 503 after 3 attempts" in str(err) and "\n" not in str(err)
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(server):
    wrong = OpenAIBackend(base_url=server.base_url, model="m", api_key="sk-wrong-key-123", backoff_s=0.01)
    with pytest.raises(BackendError, match="HTTP 401 after 1 attempt: invalid api key") as info:
        wrong.generate(_chat(), [_image()])
    assert info.value.status == 401 and len(server.requests) == 1


def test_unreachable_server_fails_fast_with_one_clear_line():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    backend = OpenAIBackend(base_url=url, model="m", api_key=KEY, backoff_s=0.05)
    started = time.perf_counter()
    with pytest.raises(BackendError) as info:
        backend.generate(_chat(), [_image()])
    assert time.perf_counter() - started < 3.0
    assert (
        str(info.value)
        == f"cannot reach OpenAI-compatible server at {url} (model m) after 3 attempts: connection refused"
    )
    assert info.value.unreachable and KEY not in str(info.value) and KEY not in repr(backend)


def test_slow_server_times_out_as_unreachable():
    with StubOpenAIServer(latency_s=1.0) as slow:
        backend = OpenAIBackend(
            base_url=slow.base_url, model="m", timeout_s=0.2, max_attempts=2, backoff_s=0.01
        )
        with pytest.raises(BackendError, match=r"did not answer within 0.2 s \(2 attempts\)") as info:
            backend.generate(_chat(), [_image()])
    assert info.value.unreachable


def test_key_is_sent_but_never_logged_or_shown(server, caplog):
    caplog.set_level(logging.DEBUG)
    backend = OpenAIBackend(base_url=server.base_url, api_key=KEY, backoff_s=0.01)
    server.fail_next(1, 503)
    backend.generate(_chat(), [_image()], stream=lambda _t: None)
    server.fail_next(3, 503)
    with pytest.raises(BackendError) as info:
        backend.generate(_chat(), [_image()])
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in server.requests)
    assert caplog.records and KEY not in caplog.text
    assert KEY not in repr(backend) and KEY not in str(info.value) and KEY not in str(vars(backend))


def test_configuration_from_environment(server, monkeypatch):
    monkeypatch.setenv("VGT_BASE_URL", server.base_url)
    monkeypatch.setenv("VGT_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    backend = make_backend("openai")
    assert backend.model == "env-model" and backend.base_url == server.base_url
    backend.generate(_chat(), [_image()])
    assert server.chat_requests[-1]["model"] == "env-model"
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_model_is_discovered_and_key_defaults_to_empty(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("VGT_MODEL", raising=False)
    with StubOpenAIServer(model="served-model") as stub:
        backend = OpenAIBackend(base_url=stub.base_url)
        assert backend.generate([{"role": "user", "content": "hi"}]).model == "served-model"
        assert [r.path for r in stub.requests] == ["/v1/models", "/v1/chat/completions"]
        assert stub.requests[-1].headers["authorization"] == "Bearer EMPTY"


def test_image_count_mismatch_is_rejected_before_sending(server, backend):
    with pytest.raises(ValueError, match="2 image part"):
        backend.generate(_chat(2), [_image()])
    assert server.requests == []


def test_stub_serves_concurrent_requests_in_parallel():
    with StubOpenAIServer(latency_s=0.3) as stub:
        backend = OpenAIBackend(base_url=stub.base_url, model="m")
        results: list[Generation] = []
        threads = [
            threading.Thread(target=lambda: results.append(backend.generate(_chat(), [_image()])))
            for _ in range(8)
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 8 and time.perf_counter() - started < 1.5  # 8 x 0.3 s if served one by one


def test_openai_backend_import_does_not_load_torch():
    code = "import sys, vgt_agent.backends; print('torch' in sys.modules or 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- transformers backend ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_backend():
    from vgt_agent.backends.tiny_gemma3 import build_tiny_gemma3
    from vgt_agent.backends.transformers_backend import TransformersBackend

    model, processor = build_tiny_gemma3()
    return TransformersBackend(model, processor, model_name="tiny-gemma3")


def test_transformers_backend_generates_within_max_tokens(tiny_backend):
    assert isinstance(tiny_backend, VLMBackend) and not tiny_backend.supports_function_calling
    gen = tiny_backend.generate(_chat(), [_image()], max_tokens=7)
    assert (gen.backend, gen.model) == ("transformers", "tiny-gemma3")
    assert 0 < gen.completion_tokens <= 7 and gen.prompt_tokens > 16
    assert gen.finish_reason == ("length" if gen.completion_tokens == 7 else "stop")
    assert "<start_of_turn>" not in gen.text and "<image_soft_token>" not in gen.text


def test_transformers_greedy_is_deterministic_and_image_dependent(tiny_backend):
    a = tiny_backend.generate(_chat(), [_image((220, 40, 40))], max_tokens=10)
    b = tiny_backend.generate(_chat(), [_image((220, 40, 40))], max_tokens=10)
    c = tiny_backend.generate(_chat(), [_image((40, 80, 220))], max_tokens=10)
    assert a.text == b.text and a.completion_tokens == b.completion_tokens
    assert c.text != a.text


def test_transformers_stop_string_stops_generation(tiny_backend):
    reference = tiny_backend.generate(_chat(), [_image()], max_tokens=12)
    tok = tiny_backend.tokenizer
    ids = tok.encode(reference.text, add_special_tokens=False)
    assert len(ids) >= 6, "the tiny model should talk for a while"
    stop = tok.decode(ids[3:5])  # a stop string spanning two tokens
    gen = tiny_backend.generate(_chat(), [_image()], max_tokens=12, stop=[stop])
    assert gen.text == reference.text[: reference.text.find(stop) + len(stop)]
    assert (gen.stop_sequence, gen.finish_reason) == (stop, "stop")
    assert gen.completion_tokens < reference.completion_tokens


def test_transformers_streaming_matches_text(tiny_backend):
    chunks: list[str] = []
    gen = tiny_backend.generate(_chat(), [_image()], max_tokens=10, stream=chunks.append)
    assert chunks and "".join(chunks) == gen.text


def test_transformers_sampling_and_prefill_continuation(tiny_backend):
    chat = [*_chat(), {"role": "assistant", "content": "<think> <ground> red circle </ground>"}]
    gen = tiny_backend.generate(chat, [_image()], max_tokens=4, temperature=1.0)
    assert 0 < gen.completion_tokens <= 4 and not gen.text.startswith("<think>")


def test_transformers_backend_refuses_tools(tiny_backend):
    with pytest.raises(BackendError, match="in-text <ground> protocol"):
        tiny_backend.generate(_chat(), [_image()], tools=[SEGMENT_TOOL])


def test_transformers_backend_loads_a_saved_model_offline(tiny_backend, tmp_path, monkeypatch):
    tiny_backend._model.save_pretrained(tmp_path)
    tiny_backend.processor.save_pretrained(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = make_backend("transformers", model=str(tmp_path))
    assert loaded.model == str(tmp_path)
    expected = tiny_backend.generate(_chat(), [_image()], max_tokens=6).text
    assert loaded.generate(_chat(), [_image()], max_tokens=6).text == expected


def test_transformers_backend_missing_model_is_a_backend_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackendError, match="cannot load model"):
        make_backend("transformers", model="no-such-org/no-such-model")


def test_image_data_url_is_lossless_and_encodes_each_image_once(monkeypatch) -> None:
    image = Image.new("RGB", (40, 30), (10, 200, 30))
    url = image_data_url(image)
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.tobytes() == image.tobytes()
    calls = []
    real_save = Image.Image.save
    monkeypatch.setattr(Image.Image, "save", lambda self, *a, **k: (calls.append(1), real_save(self, *a, **k))[1])
    assert image_data_url(image.copy()) == url and calls == []  # same pixels: no second encoding
    changed = image.copy()
    changed.putpixel((0, 0), (0, 0, 0))
    assert image_data_url(changed) != url and calls == [1]  # edited pixels are never served stale
    assert image_data_url(image.convert("RGBA")) == url  # what is sent is the RGB image
