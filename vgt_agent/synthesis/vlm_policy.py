"""A VLM plays the grounding agent's policy, speaking SAM 3's agent protocol in text.

Each turn is `<think>...</think><tool>{"name": ..., "parameters": {...}}</tool>`, parsed client-side
(Gemma3 has no native tool calls, see the notes). The model sees the image and, after a segment_phrase,
the candidates drawn as a numbered overlay; examine_each_mask shows it each candidate on an overlay plus a
zoomed crop and asks yes or no. At most two images go into one prompt (vLLM's usual per-prompt limit).
"""

from __future__ import annotations

import json
import re
from typing import Any

from PIL import Image

from vgt_agent.backends.base import Message, VLMBackend
from vgt_agent.draw import Mark, annotate
from vgt_agent.format import tag_spans
from vgt_agent.synthesis.grounding_agent import Action, AgentView, MaskCandidate
from vgt_agent.synthesis.teacher_prompts import AGENT_SYSTEM, EXAMINE_PROMPT, agent_request

_VERDICT = re.compile(r"<verdict>\s*(yes|no)\s*</verdict>", re.IGNORECASE)
CROP_PAD = 0.5  # crop = the candidate's box grown by this fraction on each side
CROP_MIN_SIDE = 224


def parse_tool_call(text: str) -> Action:
    """The last `<tool>{json}</tool>` of a turn; anything unusable becomes an `invalid` action."""
    calls = [text[start:end] for start, end in tag_spans(text, "<tool>", "</tool>")]
    if not calls:
        return Action("invalid", {"error": "no <tool>...</tool> call"}, text)
    try:
        call: Any = json.loads(calls[-1])
    except json.JSONDecodeError as e:
        return Action("invalid", {"error": f"tool call is not JSON: {e.msg}"}, text)
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return Action("invalid", {"error": "tool call needs a name"}, text)
    params = call.get("parameters") or {}
    return Action(call["name"], params if isinstance(params, dict) else {}, text)


def crop_around(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """A zoomed crop around a box, upscaled so small objects are visible."""
    x1, y1, x2, y2 = box
    pad_x, pad_y = (x2 - x1) * CROP_PAD + 4, (y2 - y1) * CROP_PAD + 4
    left, top = max(0, int(x1 - pad_x)), max(0, int(y1 - pad_y))
    right, bottom = min(image.size[0], int(x2 + pad_x) + 1), min(image.size[1], int(y2 + pad_y) + 1)
    crop = image.crop((left, top, right, bottom))
    scale = max(1.0, CROP_MIN_SIDE / max(1, min(crop.size)))
    return crop.resize((round(crop.size[0] * scale), round(crop.size[1] * scale)), Image.Resampling.NEAREST)


class VLMPolicy:
    """The grounding agent's decisions taken by a VLM backend."""

    def __init__(self, vlm: VLMBackend, *, max_tokens: int = 256, temperature: float = 0.0) -> None:
        self.vlm = vlm
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.name = f"vlm:{vlm.model}"

    def act(self, image: Image.Image, view: AgentView) -> Action:
        messages: list[Message] = [
            {"role": "system", "content": AGENT_SYSTEM},
            {"role": "user", "content": [{"type": "image"},
                                         {"type": "text", "text": agent_request(view.object.name,
                                                                                view.object.context)}]},
        ]
        images = [image]
        for i, step in enumerate(view.steps):
            messages.append({"role": "assistant", "content": step["thought"] or json.dumps(
                {"name": step["tool"], "parameters": step["params"]})})
            text = f"Tool result: {step['result']}"
            latest_segment = step["tool"] == "segment_phrase" and i == len(view.steps) - 1 and view.last_batch
            if latest_segment:
                messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]})
                images.append(self._overlay(image, [c for c in view.candidates if c.id in view.last_batch]))
            else:
                messages.append({"role": "user", "content": text})
        gen = self.vlm.generate(messages, images, max_tokens=self.max_tokens, temperature=self.temperature)
        return parse_tool_call(gen.text)

    def examine(self, image: Image.Image, view: AgentView, candidate: MaskCandidate) -> bool:
        prompt = EXAMINE_PROMPT.format(id=candidate.id, name=view.object.name,
                                       context=view.object.context or "no further context")
        messages: list[Message] = [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                                                {"type": "text", "text": prompt}]}]
        images = [self._overlay(image, [candidate]), crop_around(image, candidate.instance.box)]
        gen = self.vlm.generate(messages, images, max_tokens=32, temperature=0.0)
        verdict = _VERDICT.search(gen.text)
        if verdict:
            return verdict.group(1).lower() == "yes"
        return gen.text.strip().lower().startswith("yes")

    @staticmethod
    def _overlay(image: Image.Image, candidates: list[MaskCandidate]) -> Image.Image:
        marks = [Mark(str(c.id), boxes=[c.instance.box], masks=[c.instance.mask]) for c in candidates]
        return annotate(image, marks)
