"""A model's coordinate convention applied at the backend boundary, so the rest of vgt sees only 0..1000.

Every `<obj>` coordinate in the messages a model is sent (tool replies, earlier turns, demonstrations) is
rewritten from canonical 0..1000 into the model's convention (`geometry/conventions.py`), the system
prompt's sentence on coordinates says that convention (`prompts.in_convention`), and every coordinate in
its reply goes back into 0..1000 before the agent parses, verifies, scores or stores it. The image whose frame
the coordinates live in is the request's first image. A canonical model gets its backend back unwrapped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from PIL import Image

from vgt_agent.backends.base import Generation, Message, StreamCallback, VLMBackend
from vgt_agent.format.coord_text import from_canonical_text, to_canonical_text
from vgt_agent.geometry.conventions import CANONICAL, Convention, convention_for, fitted
from vgt_agent.prompts import in_convention


class ConventionBackend:
    """`VLMBackend` that shows a model coordinates in its own convention and hands back canonical ones; every
    other attribute is the wrapped backend's."""

    def __init__(self, inner: VLMBackend, convention: Convention) -> None:
        self.inner = inner
        self.convention = convention

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, messages: Sequence[Message], images: Sequence[Image.Image] = (), *, max_tokens: int = 512,
                 temperature: float = 0.0, stop: Sequence[str] = (), tools: list[dict] | None = None,
                 stream: StreamCallback | None = None) -> Generation:
        if not images:  # no image, no frame: nothing to convert
            return self.inner.generate(messages, images, max_tokens=max_tokens, temperature=temperature, stop=stop,
                                       tools=tools, stream=stream)
        width, height = images[0].size
        shown = [_convert_message(m, lambda t: from_canonical_text(in_convention(t, self.convention),
                                                                   self.convention, width, height))
                 for m in messages]
        gen = self.inner.generate(shown, images, max_tokens=max_tokens, temperature=temperature, stop=stop,
                                  tools=tools, stream=stream)
        return dataclasses.replace(gen, text=to_canonical_text(gen.text, self.convention, width, height))


def _convert_message(message: Message, convert) -> Message:  # noqa: ANN001 - (str) -> str
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": convert(content)}
    if isinstance(content, list):
        parts = [{**p, "text": convert(p["text"])} if isinstance(p, dict) and isinstance(p.get("text"), str) else p
                 for p in content]
        return {**message, "content": parts}
    return message


def model_type(backend: VLMBackend) -> str | None:
    """The `config.model_type` of an in-process model (None for a server: its family is not known)."""
    model = getattr(backend, "_model", None)
    return getattr(getattr(model, "config", None), "model_type", None)


def with_convention(backend: VLMBackend, coords: str | None = None) -> VLMBackend:
    """The backend in its model's convention: `coords` (a `--coords` name) if given, else the family's
    declared one (in-process models), else canonical, which returns the backend itself. A pixel convention
    takes its frame from the in-process model's own image processor (`conventions.fitted`)."""
    convention = convention_for(model_type(backend), coords)
    if convention == CANONICAL:
        return backend
    image_processor = getattr(getattr(backend, "processor", None), "image_processor", None)
    return ConventionBackend(backend, fitted(convention, image_processor.to_dict() if image_processor else None))
