"""Scripted "models" for the loopback OpenAI stub, used by the synth tests and the throughput benchmark.

- `OracleTeacher`: answers a distill request for a world image with the world-oracle's trace for that
  image (found by the request's image data URL), optionally through a script of other replies first, so
  tests can feed the pipeline wrong, unanswered, repetitive or over-long candidates.
- `counting_agent`: an ask-agent model for counting questions: asks the grounding tool, then answers
  with the number of instances it got back and points at them itself.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from openai_stub_server import StubReply

from vgt_agent.backends.openai_backend import image_data_url
from vgt_agent.sample import Sample
from vgt_agent.synthesis.oracle import oracle_trace
from vgt_agent.synthesis.world_scene import WorldScene

OBJ = re.compile(r"<obj> ([^|<>]+) \| ([^<>]*) </obj>")


def _image_url(body: dict[str, Any]) -> str | None:
    for message in body.get("messages", []):
        if isinstance(message.get("content"), list):
            for part in message["content"]:
                if part.get("type") == "image_url":
                    return part["image_url"]["url"]
    return None


class OracleTeacher:
    """A responder that plays a teacher model on world images; `script(question, n)` may override reply n."""

    def __init__(self, samples: Iterable[Sample], script: Callable[[Sample, int], str | None] | None = None) -> None:
        self.by_url = {image_data_url(s.load_image()): s for s in samples}
        self.script = script
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        sample = self.by_url.get(_image_url(body) or "")
        if sample is None:
            return "I cannot see a world image here. \\boxed{0}"
        with self._lock:
            n = self.calls.get(sample.id, 0)
            self.calls[sample.id] = n + 1
        scripted = self.script(sample, n) if self.script else None
        return scripted if scripted is not None else oracle_trace(WorldScene(sample), n)


def read_counting_turn(body: dict[str, Any]) -> tuple[str, list[tuple[str, str]] | None]:
    """For "How many X are there?": the phrase X, and the `<obj>` tags the tool has returned so far
    (None while the tool has not answered yet)."""
    messages = body["messages"]
    question = next(p["text"] for p in messages[1]["content"] if p.get("type") == "text")
    phrase = re.sub(r"^how many (.+?) are there\?$", r"\1", question.strip().lower())
    last = messages[-1]
    seen = last["content"] if last["role"] in ("assistant", "tool") or len(messages) > 2 else ""  # turns: a user reply
    if "<obj>" not in seen and "found" not in seen:
        return phrase, None
    return phrase, OBJ.findall(seen)


def request_tool(body: dict[str, Any], phrase: str) -> str | StubReply:
    """The first turn: a tool call in whichever protocol the request uses."""
    if body.get("tools"):
        return StubReply(text="<think>Let me look.", tool_calls=[{"name": "segment_phrase",
                                                                   "arguments": {"phrase": phrase}}])
    return f"<think>I need to find the {phrase}. <ground> {phrase} </ground>"


def counting_agent(body: dict[str, Any]) -> str | StubReply:
    """Ask agent for "How many X are there?": request the tool, then count its instances."""
    phrase, tags = read_counting_turn(body)
    if tags is None:
        return request_tool(body, phrase)
    n = len(tags[-1][1].split(";")) if tags else 0
    return f"So there are {n} {phrase}.</think> \\boxed{{{n}}}"
