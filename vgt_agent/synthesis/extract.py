"""Extraction: the objects a kept trace's reasoning needs, each as a name plus a disambiguating context.

Two extractors share one interface. `SceneExtractor` reads a world sample's scene graph (the question's
referents and counted set) and takes the stated count from the trace's own answer. `LLMExtractor` asks a
language model with a JSON schema; on vLLM the schema is enforced with structured outputs
(`extra_body={"structured_outputs": {"json": schema}}`, set on the backend), elsewhere the reply is parsed
leniently and anything malformed rejects the candidate with reason "extract_failed".
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from vgt_agent.backends.base import VLMBackend
from vgt_agent.prompts import format_question
from vgt_agent.sample import Sample
from vgt_agent.synthesis.objects import ROLES, Candidate, NeededObject
from vgt_agent.synthesis.teacher_prompts import EXTRACT_SCHEMA, EXTRACT_SYSTEM
from vgt_agent.synthesis.world_scene import WorldScene

MAX_OBJECTS = 12
# A closing fence's whitespace is matched from the start of its run only: from every position of a run, a
# plain `\s*```$` rescans the run (quadratic); `(?<=\s)```$` is a fence whose run an opening fence took.
_FENCE = re.compile(r"^```(?:json)?\s*|(?<!\s)\s*```$|(?<=\s)```$", re.MULTILINE)


class ExtractionError(ValueError):
    """The extractor's output could not be used; the candidate is rejected with `reason`."""

    reason = "extract_failed"


class Extractor(Protocol):
    name: str

    def extract(self, sample: Sample, candidate: Candidate, stated_answer: str | None) -> list[NeededObject]: ...


class SceneExtractor:
    """World samples: the question's objects from the scene graph, with the count the trace states."""

    name = "scene"

    def extract(self, sample: Sample, candidate: Candidate, stated_answer: str | None) -> list[NeededObject]:
        scene = WorldScene(sample)
        r = scene.reading
        if r.family.startswith("count"):
            stated = int(stated_answer) if stated_answer is not None and stated_answer.isdigit() else None
            return [NeededObject(r.phrase, "every instance the question counts", "counted", stated,
                                 scene_ids=r.counted)]
        names = r.names or {}
        if r.family == "exist":  # "no" states that there are none, which grounding must agree with
            stated = 0 if stated_answer is not None and stated_answer.strip().lower() == "no" else None
            return [NeededObject(r.phrase, "every instance the question asks about", "counted", stated,
                                 scene_ids=r.counted)]
        if r.family in ("attribute", "attribute_relation"):
            out = [NeededObject(names[r.target], f"the object whose {r.attribute} is asked", "answer",
                                scene_ids=(r.target,))]
            if r.anchor is not None:
                out.append(NeededObject(names[r.anchor], "the reference object of the relation", "anchor",
                                        scene_ids=(r.anchor,)))
            return out
        if r.family in ("relation_yes_no", "relation_choice"):
            return [NeededObject(names[r.target], "the object the question asks about", "answer",
                                 scene_ids=(r.target,)),
                    NeededObject(names[r.anchor], "the reference object of the relation", "anchor",
                                 scene_ids=(r.anchor,))]
        if r.family in ("closer", "larger"):
            _, picked = scene.answer()
            out = [NeededObject(names[i], "the option the answer picks" if names[i] == picked
                                else "the other option", "answer" if names[i] == picked else "alternative",
                                scene_ids=(i,)) for i in r.others]
            if r.anchor is not None:
                out.append(NeededObject(names[r.anchor], "the object distances are measured to", "anchor",
                                        scene_ids=(r.anchor,)))
            return out
        if r.family == "kth_relation":
            target = scene.by_id[r.target]
            return [NeededObject(r.phrase, f"all {r.phrase}, ranked to find the {r.subject}", "reference",
                                 scene_ids=r.members),
                    NeededObject(target.name, f"the {r.subject}", "answer", scene_ids=(r.target,)),
                    NeededObject(names[r.anchor], "the reference object of the relation", "anchor",
                                 scene_ids=(r.anchor,))]
        raise ExtractionError(f"no scene extraction for family {r.family!r}")


def parse_objects(text: str, trace: str) -> list[NeededObject]:
    """Objects from an extractor reply (JSON, maybe fenced or wrapped in prose); ExtractionError if unusable.

    Mentions that do not occur verbatim in the trace are dropped (the annotator can only tag real text).
    """
    body = _FENCE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end <= start:
        raise ExtractionError("the extractor's reply holds no JSON object")
    try:
        data: Any = json.loads(body[start : end + 1])
    except json.JSONDecodeError as e:
        raise ExtractionError(f"the extractor's reply is not valid JSON: {e.msg}") from None
    items = data.get("objects") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ExtractionError("the extractor's reply has no 'objects' list")
    out: list[NeededObject] = []
    for item in items[:MAX_OBJECTS]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise ExtractionError("an extracted object has no name")
        role = item.get("role") if item.get("role") in ROLES else "reference"
        count = item.get("count")
        count = count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else None
        mentions = tuple(m for m in item.get("mentions") or () if isinstance(m, str) and m.strip() and m in trace)
        name = " ".join(item["name"].split())
        out.append(NeededObject(name, " ".join(str(item.get("context") or "").split()), role,
                                count if role == "counted" else None, mentions))
    return out


class LLMExtractor:
    """An LLM lists the needed objects from question + trace (text only: the trace names what it saw)."""

    name = "llm"

    def __init__(self, vlm: VLMBackend, *, max_tokens: int = 768) -> None:
        self.vlm = vlm
        self.max_tokens = max_tokens

    def extract(self, sample: Sample, candidate: Candidate, stated_answer: str | None) -> list[NeededObject]:
        user = (f"Question: {format_question(sample.question, sample.choices)}\n\nReasoning trace:\n{candidate.text}"
                f"\n\nJSON schema: {json.dumps(EXTRACT_SCHEMA)}")
        messages = [{"role": "system", "content": EXTRACT_SYSTEM}, {"role": "user", "content": user}]
        gen = self.vlm.generate(messages, [], max_tokens=self.max_tokens, temperature=0.0)
        return parse_objects(gen.text, candidate.text)
