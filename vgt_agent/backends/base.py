"""The one interface every VLM backend implements, so the agent never knows what serves the model.

Messages are OpenAI-style plain dicts: `{"role": ..., "content": str | list[part]}` where a part is
`{"type": "text", "text": ...}` or `{"type": "image"}`. Image parts carry no pixels: the i-th image part
(counted across the whole conversation) stands for `images[i]`, which keeps pixels out of message logs and
graph state. A trailing assistant message is a prefill the backend *continues* (the `continuation` turn form
of `backends/turns.py`, used only where the model needs it and the backend can).

`server_modes()` says how a backend serves the in-text protocol: whether stop strings are honoured by the
server or applied by the client, and which turn form the agent must send. Backends without it (rule teachers,
test doubles) read the `continuation` form and apply stops themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from PIL import Image

Message = dict[str, Any]
FinishReason = Literal["stop", "length", "tool_calls"]
StreamCallback = Callable[[str], None]


class ToolCall(NamedTuple):
    """One function call requested by the model: unpacks as `(name, arguments)`."""

    name: str
    arguments: dict[str, Any]


ErrorKind = Literal["unreachable", "timeout", "status", "stream", "malformed", "config", "model"]


class BackendError(RuntimeError):
    """A one-line, key-free failure; `unreachable` says: check the server, not the request.

    `kind` says what went wrong: unreachable / timeout (the server), status (an HTTP error answer), stream
    (an error event inside a stream), malformed (a reply vgt cannot read), config (the request as set up),
    model (loading or running a model in-process).
    """

    def __init__(self, message: str, *, unreachable: bool = False, status: int | None = None,
                 kind: ErrorKind | None = None) -> None:
        super().__init__(" ".join(message.split()))
        self.unreachable = unreachable
        self.status = status
        self.kind: ErrorKind = kind or ("unreachable" if unreachable else "status" if status else "model")


@dataclass
class Generation:
    """One model completion plus what the agent and benchmarks need to know about it."""

    text: str
    finish_reason: FinishReason
    backend: str
    model: str
    stop_sequence: str | None = None  # the stop string that ended generation; it is included in `text`
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_ids: list[str] = field(default_factory=list)  # parallel to tool_calls (OpenAI `tool_call_id`)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0

    def assistant_message(self) -> Message:
        """The OpenAI-style assistant message to append to the conversation before sending tool results."""
        message: Message = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": cid,
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                }
                for c, cid in zip(self.tool_calls, self.tool_call_ids, strict=True)
            ]
        return message


@runtime_checkable
class VLMBackend(Protocol):
    """Anything that turns a chat with images into a `Generation`."""

    name: str  # "openai", "transformers"
    model: str
    supports_function_calling: bool  # False: use the in-text `<ground>` protocol

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
    ) -> Generation: ...


def count_image_parts(messages: Sequence[Message]) -> int:
    """How many `{"type": "image"}` parts the conversation holds (each needs one entry in `images`)."""
    return sum(
        1
        for m in messages
        if isinstance(m.get("content"), list)
        for part in m["content"]
        if part.get("type") == "image"
    )


def check_images(messages: Sequence[Message], images: Sequence[Image.Image]) -> None:
    """Fail early and clearly when image parts and images disagree (the model would silently misalign)."""
    n = count_image_parts(messages)
    if n != len(images):
        raise ValueError(f"messages have {n} image part(s) but {len(images)} image(s) were given")


def continues_assistant(messages: Sequence[Message]) -> bool:
    """True when the last message is an assistant prefill to continue rather than a finished turn."""
    return bool(messages) and messages[-1].get("role") == "assistant" and not messages[-1].get("tool_calls")


def trim_at_stop(text: str, stop: Sequence[str]) -> tuple[str, str | None]:
    """Cut `text` right after the earliest stop string (kept, so the protocol tag is complete)."""
    best: tuple[int, str] | None = None
    for s in stop:
        i = text.find(s) if s else -1
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    if best is None:
        return text, None
    return text[: best[0] + len(best[1])], best[1]


def backend_modes(backend: Any) -> dict[str, str]:
    """{"stop": ..., "turns": ...}: how the backend serves the in-text protocol (see the module docstring)."""
    modes = getattr(backend, "server_modes", None)
    if callable(modes):
        return dict(modes())
    return {"stop": "backend", "turns": "continuation"}


_SECRET_QUERY = re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access[_-]?token|password|secret|sig)=)[^&#]*")


def redact_url(url: str) -> str:
    """The URL with any `user:password@` and secret-looking query values replaced by `***`, for display."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = _SECRET_QUERY.sub(r"\1***", "?" + parts.query)[1:] if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
