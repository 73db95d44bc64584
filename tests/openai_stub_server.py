"""A small OpenAI-compatible chat server on loopback, for tests and benchmarks of the OpenAI backend.

It behaves like vLLM where the backend cares: `stop` strings are stripped from the output and reported as
`stop_reason`, `max_tokens` truncates with finish_reason "length", tool calls come back as `tool_calls`,
streaming is SSE with a final usage chunk. Replies come from a scripted queue, else from a `respond`
callable, else "OK". It can sleep a fixed latency per request and fail the next k requests with 503/429.

Fault injection, to prove every broken reply becomes one clear error (`inject(kind, k)` for the next k chat
requests): "garbage" (200 with a non-JSON body), "empty_choices", "bad_sse_json" (`data: {not json}`),
"bad_utf8" (invalid UTF-8 in the stream), "ignore_stream" (a whole JSON completion to a streaming request),
"sse_error" (an `{"error": ...}` event mid-stream), "no_finish" (a stream that ends without a finish reason),
"hang" (sleeps `hang_s` before answering). Server capabilities as other servers have them: `stop_support`
"honour" (vLLM), "error" (`transformers serve` with a processor model: HTTP 500, or an SSE error event when
streaming) or "ignore"; `strict_fields` refuses the vLLM-only fields with 422 like `transformers serve`;
without them a trailing assistant message is closed (and costs 3 more prompt tokens, as a new generation
prompt does) unless `continue_final_message` asks to continue it.

It records every request it received (headers included, so tests can check the key was *sent*) and
prints nothing: the HTTP access log is silenced, so no header ever reaches a log.

Usage:
    with StubOpenAIServer(latency_s=0.05) as server:
        server.push("<think> two </think> \\boxed{2}")
        OpenAIBackend(base_url=server.base_url, model=server.model).generate(...)

Run standalone for manual agent runs: `python tests/openai_stub_server.py --port 8001 --latency 0.1`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class StubReply:
    """What the stub model 'generates': text, and/or tool calls as {"name": str, "arguments": dict | str}."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any] | None
    status: int = 200


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung client never blocks shutdown
    request_queue_size = 128  # benchmarks open many connections at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out or give up close the socket mid-reply: expected here, so stay quiet."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


Responder = Callable[[dict[str, Any]], "str | StubReply"]
_PIECE = re.compile(r"\s*\S+|\s+")  # one stub "token": a word with its leading whitespace


def _pieces(text: str) -> list[str]:
    return _PIECE.findall(text)


def _prompt_tokens(body: dict[str, Any]) -> int:
    """A rough, deterministic prompt size: words of text parts plus 256 per image (Gemma3's image cost), plus 3
    when a trailing assistant message is closed and a new turn opened rather than continued."""
    messages = body.get("messages") or [{}]
    total = 3 if messages[-1].get("role") == "assistant" and not body.get("continue_final_message") else 0
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            total += len(content.split())
        elif isinstance(content, list):
            for part in content:
                total += len(str(part.get("text", "")).split()) + (
                    256 if part.get("type") == "image_url" else 0
                )
    return total


class _Completion:
    """The vLLM-like outcome of one chat request: text after stop/max_tokens handling, tool calls, reasons."""

    def __init__(self, reply: StubReply, body: dict[str, Any]) -> None:
        text, self.finish_reason, self.stop_reason = reply.text, "stop", None
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        hits = [(text.find(s), s) for s in stop if s and s in text]
        if hits:
            index, s = min(hits)
            keep = body.get("include_stop_str_in_output", False)
            text, self.stop_reason = text[: index + (len(s) if keep else 0)], s
        pieces = _pieces(text)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if max_tokens is not None and len(pieces) > max_tokens:
            pieces, self.finish_reason, self.stop_reason = pieces[:max_tokens], "length", None
        self.pieces = pieces
        self.text = "".join(pieces)
        self.tool_calls = [] if self.finish_reason == "length" else reply.tool_calls
        if self.tool_calls:
            self.finish_reason, self.stop_reason = "tool_calls", None
        self.usage = {
            "prompt_tokens": _prompt_tokens(body),
            "completion_tokens": len(pieces),
            "total_tokens": _prompt_tokens(body) + len(pieces),
        }

    def openai_tool_calls(self) -> list[dict[str, Any]]:
        return [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": call["arguments"]
                    if isinstance(call["arguments"], str)
                    else json.dumps(call["arguments"]),
                },
            }
            for i, call in enumerate(self.tool_calls)
        ]


class StubOpenAIServer:
    """ThreadingHTTPServer on 127.0.0.1 (ephemeral port by default) speaking enough of the OpenAI API."""

    def __init__(
        self,
        respond: Responder | None = None,
        *,
        model: str = "stub-vlm",
        latency_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        drop_stream_after: int | None = None,
        fail_first: int = 0,
        fail_status: int = 503,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
        stop_support: str = "honour",
        strict_fields: bool = False,
        hang_s: float = 30.0,
    ) -> None:
        self.stop_support = stop_support
        self.strict_fields = strict_fields
        self.hang_s = hang_s
        self._faults: deque[str] = deque()
        self.respond = respond
        self.model = model
        self.latency_s = latency_s
        self.chunk_delay_s = chunk_delay_s
        self.drop_stream_after = drop_stream_after  # cut streams after this many events (a dying server)
        self.api_key = api_key
        self.record = record
        self.requests: list[RecordedRequest] = []
        self._replies: deque[str | StubReply] = deque()
        self._failures: deque[int] = deque([fail_status] * fail_first)
        self._lock = threading.Lock()
        self._httpd = _Server((host, port), _make_handler(self))
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def push(self, *replies: str | StubReply) -> None:
        """Script the next replies, served in order before `respond` is consulted."""
        with self._lock:
            self._replies.extend(replies)

    def fail_next(self, k: int, status: int = 503) -> None:
        """Make the next k chat requests fail with `status` (503 overload, 429 rate limit, ...)."""
        with self._lock:
            self._failures.extend([status] * k)

    def inject(self, kind: str, k: int = 1) -> None:
        """Make the next k chat requests misbehave as `kind` (see the module docstring)."""
        with self._lock:
            self._faults.extend([kind] * k)

    def _next_fault(self) -> str | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """JSON bodies of the chat-completion requests received (failed ones included)."""
        with self._lock:
            return [r.body or {} for r in self.requests if r.path.endswith("/chat/completions")]

    def start(self) -> StubOpenAIServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-stub", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (standalone use); stop() from another thread or Ctrl-C ends it."""
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StubOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- used by the handler -------------------------------------------------------------------------
    def _log(self, request: RecordedRequest) -> None:
        if self.record:
            with self._lock:
                self.requests.append(request)

    def _next_failure(self) -> int | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _reply_for(self, body: dict[str, Any]) -> StubReply:
        with self._lock:
            reply = self._replies.popleft() if self._replies else None
        if reply is None:
            reply = self.respond(body) if self.respond is not None else "OK"
        return StubReply(text=reply) if isinstance(reply, str) else reply


def _make_handler(server: StubOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the openai client's connection pool expects
        disable_nagle_algorithm = True  # else small replies on a kept-alive connection wait ~40 ms for an ACK

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence: no header is logged
            return

        def do_GET(self) -> None:  # noqa: N802
            record = RecordedRequest("GET", self.path, self._headers(), None)
            server._log(record)
            if not self._authorised(record):
                return
            if self.path.rstrip("/") == "/v1/models":
                data = [{"id": server.model, "object": "model", "created": 0, "owned_by": "stub"}]
                self._json(200, {"object": "list", "data": data})
            else:
                record.status = 404
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = None
            record = RecordedRequest("POST", self.path, self._headers(), body)
            server._log(record)
            if not self._authorised(record):
                return
            if self.path.rstrip("/") != "/v1/chat/completions":
                record.status = 404
                self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            if not isinstance(body, dict) or "messages" not in body:
                record.status = 400
                self._json(
                    400, {"error": {"message": "body must be JSON with messages", "type": "bad_request"}}
                )
                return
            if server.latency_s:
                time.sleep(server.latency_s)
            failure = server._next_failure()
            if failure is not None:
                record.status = failure
                self._json(failure, {"error": {"message": "stub: simulated failure", "type": "overloaded"}})
                return
            unknown = {"continue_final_message", "add_generation_prompt"} & set(body)
            if server.strict_fields and unknown:
                record.status = 422
                self._json(422, {"detail": f"Unexpected fields in the request: {unknown}"})
                return
            fault = server._next_fault()
            if fault == "hang":
                time.sleep(server.hang_s)
            stop_fails = bool(body.get("stop")) and server.stop_support == "error"
            if stop_fails and not body.get("stream"):
                record.status = 500
                self._raw(500, b"Internal Server Error", "text/plain; charset=utf-8")
                return
            if server.stop_support == "ignore":
                body = {k: v for k, v in body.items() if k != "stop"}
            completion = _Completion(server._reply_for(body), body)
            if not body.get("stream") or fault in ("ignore_stream", "garbage", "empty_choices"):
                if fault == "garbage":
                    self._raw(200, b"<html>not json</html>", "application/json")
                elif fault == "empty_choices":
                    self._json(200, {**self._completion_json(completion), "choices": []})
                else:
                    self._json(200, self._completion_json(completion))
            elif stop_fails or fault in ("sse_error", "bad_sse_json", "bad_utf8", "no_finish"):
                self._broken_stream(completion, body, "sse_error" if stop_fails else fault)
            else:
                self._stream(completion, body)

        def _headers(self) -> dict[str, str]:
            return {k.lower(): v for k, v in self.headers.items()}

        # -- responses -------------------------------------------------------------------------------
        def _authorised(self, record: RecordedRequest) -> bool:
            if server.api_key is None or self.headers.get("Authorization") == f"Bearer {server.api_key}":
                return True
            record.status = 401
            self._json(401, {"error": {"message": "invalid api key", "type": "invalid_request_error"}})
            return False

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _raw(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _broken_stream(self, c: _Completion, body: dict[str, Any], fault: str) -> None:
            """A stream whose first event is fine and whose second is the fault (no_finish: no finish, no [DONE])."""
            events = list(_sse_events(c, body))
            bad = {"sse_error": b'data: {"error": "AttributeError: stub cannot apply stop strings"}\n\n',
                   "bad_sse_json": b"data: {not json}\n\n",
                   "bad_utf8": b'data: {"id": "x", "choices": [{"index": 0, "delta": {"content": "\xff\xfe"}}]}\n\n',
                   "no_finish": b""}[fault]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for data in (f"data: {events[0]}\n\n".encode(), bad):
                if data:
                    self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        def _completion_json(self, c: _Completion) -> dict[str, Any]:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": c.text if c.text or not c.tool_calls else None,
            }
            if c.tool_calls:
                message["tool_calls"] = c.openai_tool_calls()
            return {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": server.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": c.finish_reason,
                        "stop_reason": c.stop_reason,
                    }
                ],
                "usage": c.usage,
            }

        def _stream(self, c: _Completion, body: dict[str, Any]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for sent, event in enumerate(_sse_events(c, body)):
                if server.drop_stream_after is not None and sent >= server.drop_stream_after:
                    self.close_connection = True  # no terminating chunk: the client sees a broken stream
                    return
                data = f"data: {event}\n\n".encode()
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                if server.chunk_delay_s:
                    time.sleep(server.chunk_delay_s)
            self.wfile.write(b"0\r\n\r\n")

    def _sse_events(c: _Completion, body: dict[str, Any]) -> Iterator[str]:
        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, **extra}
            return json.dumps(
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": server.model,
                    "choices": [choice],
                }
            )

        yield chunk({"role": "assistant", "content": ""})
        for piece in c.pieces:
            yield chunk({"content": piece})
        for i, call in enumerate(c.openai_tool_calls()):
            head = {"index": i, "id": call["id"], "type": "function"}
            yield chunk(
                {"tool_calls": [{**head, "function": {"name": call["function"]["name"], "arguments": ""}}]}
            )
            args = call["function"]["arguments"]
            for part in (args[: len(args) // 2], args[len(args) // 2 :]):  # arguments arrive in fragments
                yield chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]})
        yield chunk({}, c.finish_reason, stop_reason=c.stop_reason)
        if (body.get("stream_options") or {}).get("include_usage"):
            yield json.dumps(
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": server.model,
                    "choices": [],
                    "usage": c.usage,
                }
            )
        yield "[DONE]"

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a stub OpenAI-compatible chat API on loopback.")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to sleep per request")
    parser.add_argument("--reply", default="<think> I am a stub. </think> \\boxed{0}")
    args = parser.parse_args()
    server = StubOpenAIServer(lambda _body: args.reply, port=args.port, latency_s=args.latency)
    print(f"stub OpenAI server at {server.base_url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
