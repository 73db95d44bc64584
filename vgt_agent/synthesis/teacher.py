"""Teachers: who writes the K candidate reasoning traces of a sample.

`BackendTeacher` asks any `VLMBackend` (Gemma3-27B-IT on vLLM through the OpenAI backend, or a local
transformers model) K times at a sampling temperature; the world-oracle teacher lives in `oracle.py`.
Both label their candidates with their backend and model, which every stored record carries.
"""

from __future__ import annotations

from typing import Protocol

from PIL import Image

from vgt_agent.backends.base import Message, VLMBackend
from vgt_agent.prompts import image_question_messages
from vgt_agent.sample import Sample
from vgt_agent.synthesis.objects import Candidate
from vgt_agent.synthesis.teacher_prompts import DISTILL_SYSTEM


class Teacher(Protocol):
    """Writes candidate traces for a sample."""

    backend: str
    model: str

    def candidates(self, sample: Sample, image: Image.Image, k: int) -> list[Candidate]: ...


class BackendTeacher:
    """K sampled completions from a VLM backend; a BackendError propagates (the batch runner counts it)."""

    def __init__(self, vlm: VLMBackend, *, temperature: float = 1.0, max_tokens: int = 1024,
                 system_prompt: str = DISTILL_SYSTEM) -> None:
        self.vlm = vlm
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt
        self.backend = vlm.name
        self.model = vlm.model

    def messages(self, sample: Sample) -> list[Message]:
        return image_question_messages(self.system_prompt, sample.question, sample.choices)

    def candidates(self, sample: Sample, image: Image.Image, k: int) -> list[Candidate]:
        messages = self.messages(sample)
        out = []
        for i in range(k):
            gen = self.vlm.generate(messages, [image], max_tokens=self.max_tokens, temperature=self.temperature)
            out.append(Candidate(i, gen.text, gen.backend, gen.model, gen.latency_s, gen.finish_reason,
                                 meta={"completion_tokens": gen.completion_tokens}))
        return out
