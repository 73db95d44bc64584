"""A backend for any OpenAI-compatible chat server (vLLM, SGLang, llama.cpp, Ollama, `transformers serve`, ...).

It needs nothing beyond standard chat completions and finds out what a server does on top:
- stop strings: sent while the server honours them; a server that fails on them (an HTTP error or an error
  event in the stream) is asked again without them, and one that ignores them is noticed; from then on the
  backend stops client-side for the rest of the run (it streams, cuts at the stop string, closes the stream).
- turn form (`backends/turns.py`): `turns` unless `continuation` is asked for (`turn_form=`, env
  VGT_TURN_FORM) *and* a probe shows the server continues an assistant prefill (vLLM's
  `continue_final_message`): two one-token requests whose prompt sizes tell a continued prefill from a
  closed turn.
`server_modes()` reports both, for the trace and the run record.

Every failure is one `BackendError` line naming the server (credentials redacted) and the model. Retries are
done here, not by the `openai` client: bounded, fast to test, and only where a retry can help (429, 5xx,
dropped connections; one retry after a timeout). The API key goes to the client and nowhere else.
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
from urllib.parse import urlsplit

import openai
from openai.types.chat import ChatCompletion
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
    redact_url,
    trim_at_stop,
)
from vgt_agent.backends.turns import DEFAULT_TURN_FORM, TurnForm, check_turn_form

try:  # the HTTP library under the `openai` client (openai 3.x ships its own fork), for its transport errors
    import httpx2 as httpx
except ImportError:  # pragma: no cover - older openai releases use httpx itself
    import httpx  # type: ignore[no-redef]

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"  # `vllm serve` default
INTERACTIVE_TIMEOUT_S = 60.0  # `vgt ask`: a person is waiting
BATCH_TIMEOUT_S = 300.0  # synth, eval, routing: long generations on a busy server
CONNECT_TIMEOUT_S = 5.0
TIMEOUT_ENV = "VGT_TIMEOUT"
TURN_FORM_ENV = "VGT_TURN_FORM"
CONTINUATION_FIELDS = {"continue_final_message": True, "add_generation_prompt": False}
T = TypeVar("T")


def timeout_from_env(default: float) -> float:
    """Seconds per request: $VGT_TIMEOUT when set, else `default`; BackendError for a bad value."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise BackendError(f"{TIMEOUT_ENV} must be a positive number of seconds, not {raw!r}", kind="config")
    return value


class _Fatal(Exception):
    """Wraps a BackendError that must not be retried (e.g. text was already streamed to the caller)."""


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


def _held_back(text: str, stop: Sequence[str]) -> int:
    """How many trailing characters could still be the start of a stop string (not streamed out yet)."""
    longest = 0
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:n]):
                longest = n
                break
    return longest


def _root_reason(exc: BaseException) -> str:
    """A short human reason from the deepest cause, e.g. 'connection refused' or 'timed out'."""
    root = exc
    for _ in range(20):  # bounded: exception chains can, rarely, be cyclic
        nxt = root.__cause__ or root.__context__
        if nxt is None:
            break
        root = nxt
    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)) or isinstance(root, TimeoutError):
        return "timed out"
    text = str(root) or type(root).__name__
    if "refused" in text.lower():
        return "connection refused"
    return " ".join(text.split("] ", 1)[-1].split())[:200]


def _status_detail(body: Any) -> str:
    """The server's own error message (OpenAI/vLLM: error.message; FastAPI: detail), shortened to one line."""
    for _ in range(3):
        if not isinstance(body, dict):
            break
        inner = body.get("error", body.get("detail", body.get("message", body)))
        if inner is body:
            break
        body = inner.get("message", inner) if isinstance(inner, dict) and "message" in inner else inner
    text = body if isinstance(body, str) else json.dumps(body, default=str) if body is not None else ""
    return " ".join(text.split())[:200]


def _scrubber(url: str, key: str) -> Callable[[str], str]:
    """A function that shows `url` redacted and replaces the key and URL credentials by `***` (a closure, so
    the secrets are not attributes a repr or `vars()` of the backend would show)."""
    userinfo = urlsplit(url).netloc.rsplit("@", 1)[0] if "@" in urlsplit(url).netloc else ""
    secrets = sorted({s for s in (key if key != "EMPTY" else "", userinfo, *userinfo.split(":")) if s},
                     key=len, reverse=True)
    shown = redact_url(url)

    def scrub(text: str) -> str:
        text = text.replace(url, shown)
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return scrub


class _Timeout(Exception):
    """The whole request took longer than its deadline (a server trickling tokens forever)."""


class OpenAIBackend:
    """`VLMBackend` over the `openai` client; stop strings, function calling, streaming, capability detection."""

    name = "openai"
    supports_function_calling = True

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        max_attempts: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        extra_body: dict[str, Any] | None = None,
        turn_form: str | None = None,
    ) -> None:
        raw_url = (base_url or os.environ.get("VGT_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.base_url = self.display_url = redact_url(raw_url)  # the raw URL (credentials) goes to the client only
        self._model = model or os.environ.get("VGT_MODEL") or None
        self.timeout_s = timeout_s if timeout_s is not None else timeout_from_env(BATCH_TIMEOUT_S)
        if not self.timeout_s > 0:
            raise BackendError(f"timeout must be a positive number of seconds, not {self.timeout_s}", kind="config")
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.extra_body = dict(extra_body or {})
        try:
            self.wanted_turn_form: TurnForm = check_turn_form(
                turn_form or os.environ.get(TURN_FORM_ENV) or DEFAULT_TURN_FORM)
        except ValueError as e:
            raise BackendError(str(e), kind="config") from None
        self._turn_form: TurnForm | None = None if self.wanted_turn_form == "continuation" else "turns"
        self._stop_mode = "untested"  # -> "server" once a stop was honoured, "client" once one failed or was ignored
        self._modes_lock = threading.Lock()
        key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._scrub = _scrubber(raw_url, key)
        self._client = openai.OpenAI(
            base_url=raw_url,
            api_key=key,
            timeout=openai.Timeout(self.timeout_s, connect=min(connect_timeout_s, self.timeout_s)),
            max_retries=0,
        )

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.display_url!r}, model={self._model!r})"

    @property
    def model(self) -> str:
        """The configured model, or the first one the server lists (vLLM serves exactly one)."""
        if self._model is None:
            models = self.ping()
            if not models:
                raise BackendError(f"server at {self.display_url} lists no models; pass model= or set VGT_MODEL",
                                   kind="config")
            self._model = models[0]
        return self._model

    def ping(self) -> list[str]:
        """The models the server serves; BackendError (unreachable) when it does not answer after retries.

        Commands call this before writing anything, so a dead server is bad input, not a half-run job.
        """
        try:
            return [m.id for m in self._with_retries(lambda: list(self._client.models.list()))]
        except (AttributeError, TypeError) as e:
            raise self._malformed(f"its model list is not an OpenAI model list ({e})") from None

    # -- capabilities --------------------------------------------------------------------------------------
    @property
    def turn_form(self) -> TurnForm:
        """The turn form the agent must send: `continuation` only when asked for and the server honours it."""
        with self._modes_lock:
            if self._turn_form is None:
                self._turn_form = "continuation" if self._continues_prefill() else "turns"
            return self._turn_form

    def server_modes(self) -> dict[str, str]:
        """{"stop": "untested" | "server" | "client", "turns": "turns" | "continuation"} as detected so far."""
        return {"stop": self._stop_mode, "turns": self.turn_form}

    def _continues_prefill(self) -> bool:
        """True when the server continues an assistant prefill: the same conversation costs fewer prompt
        tokens with the continuation fields (no closed turn, no new generation prompt) than without them."""
        messages = [{"role": "user", "content": "Reply with OK."}, {"role": "assistant", "content": "OK"}]

        def prompt_tokens(extra: dict[str, Any]) -> int:
            response = self._with_retries(lambda: self._client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=1, temperature=0.0, extra_body=extra or None))
            usage = getattr(response, "usage", None)
            return int(getattr(usage, "prompt_tokens", 0) or 0)

        try:
            closed = prompt_tokens(self.extra_body)
            continued = prompt_tokens({**self.extra_body, **CONTINUATION_FIELDS})
        except BackendError as e:
            if e.kind in ("status", "stream", "malformed") and e.status not in (401, 403, 429):
                return False  # the fields were refused (HTTP 400/422) or broke the server
            raise
        return 0 < continued < closed

    # -- generation ----------------------------------------------------------------------------------------
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
        if tools:
            request["tools"] = tools
        extra_body = dict(self.extra_body)
        if continues_assistant(messages):
            if self.turn_form != "continuation":
                raise BackendError(
                    f"server at {self.display_url} (model {self.model}) is not used in the continuation turn form "
                    f"(asked: {self.wanted_turn_form}); send the conversation as turns", kind="config")
            extra_body.update(CONTINUATION_FIELDS)
        if extra_body:
            request["extra_body"] = extra_body
        stop = [s for s in stop if s]
        if stop and self._stop_mode == "untested":
            result = self._first_stop_request(request, stop, stream)
        else:
            result = self._with_retries(lambda: self._request(request, stop, stream, self._stop_mode != "client"))
        result.latency_s = time.perf_counter() - started
        return result

    def _first_stop_request(self, request: dict[str, Any], stop: list[str], stream: StreamCallback | None
                            ) -> Generation:
        """The first request with stop strings: with them; if the server fails on them (before any text reached
        the caller), at once without."""
        streamed: list[str] = []

        def tap(text: str) -> None:
            streamed.append(text)
            if stream is not None:
                stream(text)

        try:
            result = self._with_retries(lambda: self._request(request, stop, tap if stream else None, True),
                                        retry_errors=False)
        except BackendError as e:
            if streamed or e.kind not in ("status", "stream", "malformed") or e.status in (401, 403, 404, 429, 503):
                raise
            result = self._with_retries(lambda: self._request(request, stop, stream, False))
            self._set_stop_mode("client")
            return result
        if self._stop_mode == "untested" and result.stop_sequence is not None:
            self._set_stop_mode("server")
        return result

    def _set_stop_mode(self, mode: str) -> None:
        with self._modes_lock:
            if self._stop_mode != "client":  # once a server failed on or ignored stops, stay client-side
                self._stop_mode = mode

    def _request(self, request: dict[str, Any], stop: list[str], callback: StreamCallback | None,
                 server_stop: bool) -> Generation:
        """One attempt. Without server stops, or with a caller to stream to, the reply is streamed."""
        body = {**request, "stop": stop} if server_stop and stop else request
        if callback is None and (server_stop or not stop):
            return self._complete(body, stop)
        return self._complete_streaming(body, stop, callback)

    def _complete(self, request: dict[str, Any], stop: list[str]) -> Generation:
        response = self._client.chat.completions.create(**request)
        return self._from_completion(response, request, stop)

    def _from_completion(self, response: Any, request: dict[str, Any], stop: list[str]) -> Generation:
        if not isinstance(response, ChatCompletion):
            raise _Fatal(self._malformed(f"the reply is not a chat completion: {str(response)[:80]!r}"))
        try:
            if not response.choices:
                raise _Fatal(self._malformed("the reply has no choices"))
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
                usage=(usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else (0, 0),
                model=response.model or request["model"],
            )
        except (AttributeError, TypeError, KeyError, IndexError) as e:
            raise _Fatal(self._malformed(f"the reply is not a chat completion ({e})")) from None

    def _complete_streaming(
        self, request: dict[str, Any], stop: list[str], callback: StreamCallback | None
    ) -> Generation:
        """Stream the reply, cutting at the first stop string (then closing the stream) whoever applies it."""
        deadline = time.monotonic() + self.timeout_s
        chunks = self._client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        emit = callback or (lambda _text: None)
        text, emitted = "", 0
        calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]
        raw_finish: str | None = None
        extra: dict[str, Any] = {}
        usage = (0, 0)
        model = request["model"]
        events = pieces = 0  # pieces: deltas with text, the token count when the server sends no usage
        try:
            content_type = chunks.response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:  # a server that ignores `stream`: read it whole
                return self._unstreamed(chunks.response, request, stop, emit)
            for chunk in chunks:
                events += 1
                if time.monotonic() > deadline:
                    raise _Timeout()
                model = getattr(chunk, "model", None) or model
                if getattr(chunk, "usage", None):
                    usage = (chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
                for choice in chunk.choices or []:
                    delta = choice.delta
                    if delta.content:
                        text += delta.content
                        pieces += 1
                    for tc in delta.tool_calls or []:
                        slot = calls.setdefault(tc.index, ["", "", ""])
                        slot[0] = tc.id or slot[0]
                        if tc.function:
                            slot[1] += tc.function.name or ""
                            slot[2] += tc.function.arguments or ""
                    if choice.finish_reason:
                        raw_finish = choice.finish_reason
                        extra = choice.model_extra or {}
                if stop and text:
                    cut, hit = trim_at_stop(text, stop)
                    if hit is not None:  # the client's stop: keep the tag whole, drop the rest, close
                        text, raw_finish, extra = cut, "stop", {"stop_reason": hit}
                        break
                safe = len(text) - _held_back(text, stop)
                if safe > emitted:
                    emit(text[emitted:safe])
                    emitted = safe
        except _Timeout:
            error = BackendError(self._scrub(
                f"OpenAI-compatible server at {self.base_url} (model {model}) did not finish within "
                f"{self.timeout_s:g} s; raise --timeout / {TIMEOUT_ENV}"), kind="timeout", unreachable=True)
            raise _Fatal(error) from None
        except (openai.APIError, httpx.HTTPError, OSError, ValueError) as exc:
            if emitted:  # the caller already saw part of this answer: a retry would repeat it
                message = f"stream from {self.base_url} (model {model}) broke after {events} event(s): "
                kind = "malformed" if isinstance(exc, ValueError) else "stream"
                raise _Fatal(BackendError(self._scrub(message + _root_reason(exc)), kind=kind)) from exc
            raise
        finally:
            chunks.close()
        if raw_finish is None and not calls:
            what = "an empty stream" if not events else f"a stream of {events} event(s) without a finish_reason"
            raise _Fatal(self._malformed(f"it sent {what}"))
        result = self._finish(
            text=text,
            raw_finish=raw_finish,
            extra=extra,
            stop=stop,
            tool_calls=[tuple(calls[i]) for i in sorted(calls)],
            usage=usage if usage[1] else (usage[0], pieces),
            model=model,
        )
        if len(result.text) > emitted:
            emit(result.text[emitted:])  # the held-back tail, and a stop string the server stripped
        return result

    def _unstreamed(self, response: httpx.Response, request: dict[str, Any], stop: list[str],
                    emit: StreamCallback) -> Generation:
        """A whole chat completion sent where a stream was asked for: read it as one, or fail in one line."""
        raw = response.read()
        try:
            completion = ChatCompletion.model_validate(json.loads(raw))
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            raise _Fatal(self._malformed(f"a streaming request got {kind}: {raw[:60]!r}")) from None
        result = self._from_completion(completion, request, stop)
        if stop:
            result = self._cut_ignored_stop(result, stop)
        emit(result.text)
        return result

    def _cut_ignored_stop(self, result: Generation, stop: list[str]) -> Generation:
        """Cut a reply that ran past a stop string (the server ignored it); remember to stop client-side."""
        cut, hit = trim_at_stop(result.text, stop)
        if hit is not None and len(cut) < len(result.text):
            self._set_stop_mode("client")
            result.text, result.stop_sequence, result.finish_reason = cut, hit, "stop"
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
        result = Generation(
            text=text,
            finish_reason=_finish_reason(raw_finish, bool(tool_calls)),
            backend=self.name,
            model=model,
            stop_sequence=hit,
            tool_calls=[ToolCall(name or "", _parse_arguments(args)) for _, name, args in tool_calls],
            tool_call_ids=[cid or f"call_{i}" for i, (cid, _, _) in enumerate(tool_calls)],
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
        )
        return self._cut_ignored_stop(result, stop) if stop else result

    # -- retries and errors ------------------------------------------------------------------------------
    def _with_retries(self, call: Callable[[], T], *, retry_errors: bool = True) -> T:
        """Run `call`, retrying dropped connections, 429 and 5xx (only 429/503 with `retry_errors=False`)
        with exponential backoff, and a timeout once."""
        last: BaseException | None = None
        timeouts = 0
        for attempt in range(1, self.max_attempts + 1):
            try:
                return call()
            except _Fatal as fatal:
                raise fatal.args[0] from None
            except openai.APIStatusError as exc:
                retryable = exc.status_code in (429, 503) or (retry_errors and exc.status_code >= 500)
                if not retryable:
                    raise self._error(exc, attempt) from None
                last = exc
            except (openai.APITimeoutError, httpx.TimeoutException) as exc:
                timeouts += 1
                last = exc
                if timeouts > 1:
                    raise self._error(exc, attempt) from None
            except (openai.APIConnectionError, httpx.TransportError) as exc:
                last = exc
            except (openai.APIError, httpx.HTTPError, ValueError) as exc:  # stream error events, bad JSON/UTF-8
                raise self._error(exc, attempt) from None
            if attempt < self.max_attempts:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
        assert last is not None
        raise self._error(last, self.max_attempts) from None

    def _where(self) -> str:
        return f"OpenAI-compatible server at {self.display_url} (model {self._model or 'not chosen yet'})"

    def _malformed(self, what: str) -> BackendError:
        return BackendError(self._scrub(f"{self._where()} sent a reply vgt cannot read: {what}")[:400],
                            kind="malformed")

    def _error(self, exc: BaseException, attempts: int) -> BackendError:
        """One line naming the server and model, the attempt count and the reason, with secrets scrubbed."""
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException)):
            message = (f"{self._where()} did not answer within {self.timeout_s:g} s ({tries}); "
                       f"raise --timeout / {TIMEOUT_ENV}")
            return BackendError(self._scrub(message), unreachable=True, kind="timeout")
        if isinstance(exc, (openai.APIConnectionError, httpx.TransportError)):
            message = f"cannot reach {self._where()} after {tries}: {_root_reason(exc)}"
            return BackendError(self._scrub(message), unreachable=True, kind="unreachable")
        if isinstance(exc, openai.APIStatusError):
            detail = _status_detail(exc.body) or _status_detail(exc.response.text)
            message = f"{self._where()} answered HTTP {exc.status_code} after {tries}"
            return BackendError(self._scrub(f"{message}: {detail}" if detail else message)[:400],
                                status=exc.status_code, kind="status")
        if isinstance(exc, openai.APIError):  # an error event inside a stream
            detail = _status_detail(exc.body) or exc.message
            return BackendError(self._scrub(f"{self._where()} sent an error in its stream: {detail}")[:400],
                                kind="stream")
        if isinstance(exc, ValueError):
            return self._malformed(f"{type(exc).__name__}: {_root_reason(exc)}")
        return BackendError(self._scrub(f"request to {self._where()} failed: {type(exc).__name__}: {exc}")[:400],
                            kind="stream")
