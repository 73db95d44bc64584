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
