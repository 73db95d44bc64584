"""A backend for any OpenAI-compatible chat server (vLLM serving Gemma3 in production).

Retries are done here, not by the `openai` client: the client's backoff is a module constant, and the
agent needs a bounded, fast-to-test schedule plus one clear error naming the server and the attempt count.
The API key goes to the client and nowhere else: it is not stored on the backend, shown in its repr, or
allowed into an error message.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import openai
from PIL import Image

from vgt_agent.backends.base import (
    BackendError,
    FinishReason,
    Generation,
    Message,
    StreamCallback,
    ToolCall,
    check_images,
    continues_assistant,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"  # `vllm serve` default
T = TypeVar("T")


class _Fatal(Exception):
    """Wraps an error that must not be retried (e.g. text was already streamed to the caller)."""


class _DataUrlCache:
    """The last few encoded images, keyed by their pixels: a sample's K teacher candidates, its extraction
    and the agent's turns all send the same image, and PNG encoding (~3 ms at 448 px) is the costliest
    part of a request on our side; hashing the pixels costs a tenth of that."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._urls: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, image: Image.Image) -> str:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        key = (rgb.size, hashlib.sha256(rgb.tobytes()).digest())
        with self._lock:
            url = self._urls.get(key)
            if url is not None:
                self._urls.move_to_end(key)
                return url
        buf = io.BytesIO()
        rgb.save(buf, format="PNG", compress_level=1)
        url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        with self._lock:
            self._urls[key] = url
            while len(self._urls) > self.size:
                self._urls.popitem(last=False)
        return url


_DATA_URLS = _DataUrlCache()


def image_data_url(image: Image.Image) -> str:
    """Encode an image as a PNG data URL: lossless, so the server sees exactly the pixels we grounded on.

    Compression level 1: still lossless, several times faster than the default; repeated images are
    encoded once (`_DataUrlCache`).
    """
    return _DATA_URLS.get(image)


def to_openai_messages(messages: Sequence[Message], images: Sequence[Image.Image]) -> list[Message]:
    """Replace the i-th `{"type": "image"}` part with an `image_url` part holding images[i]."""
    check_images(messages, images)
    pending = iter(images)
    out: list[Message] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            parts = [
                {"type": "image_url", "image_url": {"url": image_data_url(next(pending))}}
                if part.get("type") == "image"
                else part
                for part in content
            ]
            message = {**message, "content": parts}
        out.append(message)
    return out


def _stop_hit(text: str, finish: str | None, extra: dict[str, Any], stop: Sequence[str]) -> str | None:
    """Which stop string ended generation, if any.

    vLLM reports it as `stop_reason` (null when EOS ended the turn). Servers without that field get a
    protocol heuristic: a closing-tag stop string like `</ground>` was hit iff its opening tag is left open.
    """
    if finish != "stop" or not stop:
        return None
    for s in stop:
        if s and text.endswith(s):  # server kept the stop string (vLLM include_stop_str_in_output)
            return s
    if "stop_reason" in extra:
        reason = extra["stop_reason"]
        return reason if isinstance(reason, str) and reason in stop else None
    for s in stop:
        if s.startswith("</") and s.endswith(">") and text.rfind("<" + s[2:]) > text.rfind(s):
            return s
    return None


def _finish_reason(raw: str | None, has_tool_calls: bool) -> FinishReason:
    if has_tool_calls or raw in ("tool_calls", "function_call"):
        return "tool_calls"
    return "length" if raw == "length" else "stop"


def _parse_arguments(raw: str | None) -> dict[str, Any]:
    """Tool arguments as a dict; malformed JSON (a model mistake, not a transport one) is `_unparsed`."""
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"_unparsed": raw}
    return value if isinstance(value, dict) else {"_unparsed": raw}


def _root_reason(exc: BaseException) -> str:
    """A short human reason from the deepest cause, e.g. 'connection refused' or 'timed out'."""
    root = exc
    for _ in range(20):  # bounded: exception chains can, rarely, be cyclic
        nxt = root.__cause__ or root.__context__
        if nxt is None:
            break
        root = nxt
    if isinstance(exc, openai.APITimeoutError) or isinstance(root, TimeoutError):
        return "timed out"
    text = str(root) or type(root).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text.split("] ", 1)[-1].strip()[:200]


class OpenAIBackend:
    """`VLMBackend` over the `openai` client; supports stop strings, function calling and streaming."""

    name = "openai"
    supports_function_calling = True

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        max_attempts: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("VGT_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._model = model or os.environ.get("VGT_MODEL") or None
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.extra_body = dict(extra_body or {})
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._scrub = (lambda s: s.replace(key, "***")) if key != "EMPTY" else (lambda s: s)
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=key,
            timeout=openai.Timeout(timeout_s, connect=connect_timeout_s),
            max_retries=0,
        )

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self._model!r})"

    @property
    def model(self) -> str:
        """The configured model, or the first one the server lists (vLLM serves exactly one)."""
        if self._model is None:
            models = self.ping()
            if not models:
                raise BackendError(f"server at {self.base_url} lists no models; pass model= or set VGT_MODEL")
            self._model = models[0]
        return self._model

    def ping(self) -> list[str]:
        """The models the server serves; BackendError (unreachable) when it does not answer after retries.

        Commands call this before writing anything, so a dead server is bad input, not a half-run job.
        """
        return [m.id for m in self._with_retries(lambda: list(self._client.models.list()))]

    def generate(
        self,
        messages: Sequence[Message],
        images: Sequence[Image.Image] = (),
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        tools: list[dict] | None = None,
        stream: StreamCallback | None = None,
    ) -> Generation:
        """One chat completion; `latency_s` is the caller's wall time, retries included."""
        started = time.perf_counter()
        converted = to_openai_messages(messages, images)  # validates image parts before any network call
        request: dict[str, Any] = {
            "model": self.model,
            "messages": converted,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        stop = [s for s in stop if s]
        if stop:
            request["stop"] = stop
        if tools:
            request["tools"] = tools
        extra_body = dict(self.extra_body)
        if continues_assistant(messages):  # vLLM: continue the prefilled model turn instead of opening one
            extra_body.update(continue_final_message=True, add_generation_prompt=False)
        if extra_body:
            request["extra_body"] = extra_body
        if stream is None:
            result = self._with_retries(lambda: self._complete(request, stop))
        else:
            result = self._with_retries(lambda: self._complete_streaming(request, stop, stream))
        result.latency_s = time.perf_counter() - started
        return result

    def _complete(self, request: dict[str, Any], stop: list[str]) -> Generation:
        response = self._client.chat.completions.create(**request)
        if not response.choices:
            raise _Fatal(BackendError(f"server at {self.base_url} returned no choices"))
        choice = response.choices[0]
        message = choice.message
        calls = message.tool_calls or []
        usage = response.usage
        return self._finish(
            text=message.content or "",
            raw_finish=choice.finish_reason,
            extra=choice.model_extra or {},
            stop=stop,
            tool_calls=[(c.id, c.function.name, c.function.arguments) for c in calls],
            usage=(usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0),
            model=response.model or request["model"],
        )

    def _complete_streaming(
        self, request: dict[str, Any], stop: list[str], callback: StreamCallback
    ) -> Generation:
        chunks = self._client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        text: list[str] = []
        calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]
        raw_finish: str | None = None
        extra: dict[str, Any] = {}
        usage = (0, 0)
        model = request["model"]
        try:
            for chunk in chunks:
                model = chunk.model or model
                if chunk.usage:
                    usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                        callback(delta.content)
                    for tc in delta.tool_calls or []:
                        slot = calls.setdefault(tc.index, ["", "", ""])
                        slot[0] = tc.id or slot[0]
                        if tc.function:
                            slot[1] += tc.function.name or ""
                            slot[2] += tc.function.arguments or ""
                    if choice.finish_reason:
                        raw_finish = choice.finish_reason
                        extra = choice.model_extra or {}
        except (openai.APIError, OSError) as exc:
            if text:  # the caller already saw part of this answer: a retry would repeat it
                message = f"stream from {self.base_url} broke after {len(text)} chunk(s): {_root_reason(exc)}"
                raise _Fatal(BackendError(self._scrub(message), unreachable=True)) from exc
            raise
        finally:
            chunks.close()
        result = self._finish(
            text="".join(text),
            raw_finish=raw_finish,
            extra=extra,
            stop=stop,
            tool_calls=[tuple(calls[i]) for i in sorted(calls)],
            usage=usage,
            model=model,
        )
        if result.stop_sequence and not "".join(text).endswith(result.stop_sequence):
            callback(result.stop_sequence)  # keep streamed text identical to the returned text
        return result

    def _finish(
        self,
        *,
        text: str,
        raw_finish: str | None,
        extra: dict[str, Any],
        stop: list[str],
        tool_calls: list,
        usage: tuple[int, int],
        model: str,
    ) -> Generation:
        """Build the Generation; re-append the stop string the server stripped so protocol tags are whole."""
        hit = _stop_hit(text, raw_finish, extra, stop)
        if hit and not text.endswith(hit):
            text += hit
        return Generation(
            text=text,
            finish_reason=_finish_reason(raw_finish, bool(tool_calls)),
            backend=self.name,
            model=model,
            stop_sequence=hit,
            tool_calls=[ToolCall(name, _parse_arguments(args)) for _, name, args in tool_calls],
            tool_call_ids=[cid or f"call_{i}" for i, (cid, _, _) in enumerate(tool_calls)],
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
        )

    def _with_retries(self, call: Callable[[], T]) -> T:
        """Run `call`, retrying connection errors, 429 and 5xx with exponential backoff."""
        last: Exception | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                return call()
            except _Fatal as fatal:
                cause = fatal.args[0]
                raise cause if isinstance(cause, BackendError) else self._error(cause, attempt) from None
            except openai.APIStatusError as exc:
                if exc.status_code != 429 and exc.status_code < 500:
                    raise self._error(exc, attempt) from None
                last = exc
            except openai.APIConnectionError as exc:
                last = exc
            if attempt < self.max_attempts:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
        assert last is not None
        raise self._error(last, self.max_attempts) from None

    def _error(self, exc: BaseException, attempts: int) -> BackendError:
        """One line naming the server, the attempt count and the reason, with the key scrubbed out."""
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(exc, openai.APIConnectionError):
            message = (
                f"cannot reach OpenAI-compatible server at {self.base_url} after {tries}: {_root_reason(exc)}"
            )
            return BackendError(self._scrub(message), unreachable=True)
        if isinstance(exc, openai.APIStatusError):
            detail = _status_detail(exc)
            message = (
                f"OpenAI-compatible server at {self.base_url} answered HTTP {exc.status_code} after {tries}"
            )
            return BackendError(
                self._scrub(f"{message}: {detail}" if detail else message), status=exc.status_code
            )
        message = (
            f"request to OpenAI-compatible server at {self.base_url} failed: {type(exc).__name__}: {exc}"
        )
        return BackendError(self._scrub(message)[:400])


def _status_detail(exc: openai.APIStatusError) -> str:
    """The server's own error message (vLLM: body.error.message, or body.message), shortened."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        body = inner.get("message", inner) if isinstance(inner, dict) else inner
    return " ".join(str(body or "").split())[:200]
