"""The grounding agent, modelled on SAM 3's own agent: four tools around a grounder, one tool per turn.

    segment_phrase {"text_prompt"}            grounder call on a short noun phrase -> numbered candidates
    examine_each_mask {}                      the policy accepts or rejects each unexamined candidate
    select_masks_and_return {"final_answer_masks": [ids]}   ends with those masks
    report_no_mask {}                         ends with nothing

A policy (a VLM, or on world data a rule that plays the VLM) chooses the calls; the agent executes them
and keeps the transcript. The policy never writes coordinates: everything geometric in the outcome is the
mask the grounder returned (tight box and distance-transform point come from `geometry` via the grounder).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from vgt_agent.geometry import encode_rle, mask_iou
from vgt_agent.grounders.base import Grounder, GroundingResult, Instance
from vgt_agent.synthesis.objects import Grounded, MaskInfo, NeededObject

TOOLS = ("segment_phrase", "examine_each_mask", "select_masks_and_return", "report_no_mask")
DUPLICATE_IOU = 0.9  # two selected masks this similar are one object found twice


@dataclass(eq=False)
class MaskCandidate:
    """A candidate instance as the agent tracks it; its pixels never leave the agent."""

    id: int
    phrase: str
    instance: Instance
    verdict: bool | None = None
    selected: bool = False

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.instance.mask))


@dataclass
class AgentView:
    """What a policy sees between turns: the task, the phrases used, the candidates, the transcript."""

    object: NeededObject
    width: int
    height: int
    phrases: list[str] = field(default_factory=list)
    candidates: list[MaskCandidate] = field(default_factory=list)
    last_batch: list[int] = field(default_factory=list)  # ids from the latest segment_phrase
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def live(self) -> list[MaskCandidate]:
        """Candidates not rejected by examination."""
        return [c for c in self.candidates if c.verdict is not False]

    def candidate(self, cid: int) -> MaskCandidate | None:
        return next((c for c in self.candidates if c.id == cid), None)


@dataclass(frozen=True)
class Action:
    """One tool call chosen by a policy, with the policy's own words (a VLM's raw turn)."""

    tool: str
    params: dict[str, Any] = field(default_factory=dict)
    thought: str = ""


class GroundingPolicy(Protocol):
    """Plays the VLM of the agent: picks the next tool call and judges candidates."""

    name: str

    def act(self, image: Image.Image, view: AgentView) -> Action: ...

    def examine(self, image: Image.Image, view: AgentView, candidate: MaskCandidate) -> bool: ...


class GroundingAgent:
    """Runs a policy against a grounder for one needed object at a time."""

    def __init__(self, grounder: Grounder, policy: GroundingPolicy, *, max_steps: int = 12) -> None:
        self.grounder = grounder
        self._prefetched: dict[str, GroundingResult] = {}
        self.policy = policy
        self.max_steps = max_steps

    def prefetch(self, image: Image.Image, objects: Sequence[NeededObject]) -> None:
        """Ground the phrase the policy will try first for each object in one call, when the grounder takes
        several phrases at once (`ground_many`: SAM3 runs them in one batched forward over one vision pass).
        The first `segment_phrase` on such a phrase uses its result; the results equal one-at-a-time calls."""
        ground_many = getattr(self.grounder, "ground_many", None)
        first = getattr(self.policy, "first_phrase", None)
        phrases = [" ".join(((first(o) if first else o.name) or "").split()) for o in objects]
        todo = [p for p in dict.fromkeys(phrases) if p and p not in self._prefetched]
        if ground_many is not None and todo:
            self._prefetched.update(zip(todo, ground_many(image, todo), strict=True))

    def run(self, image: Image.Image, obj: NeededObject) -> Grounded:
        view = AgentView(obj, image.size[0], image.size[1])
        for _ in range(self.max_steps):
            action = self.policy.act(image, view)
            start = time.perf_counter()
            final: str | None = None
            if action.tool == "segment_phrase":
                result = self._segment(image, view, action.params)
            elif action.tool == "examine_each_mask":
                result = self._examine(image, view)
            elif action.tool == "select_masks_and_return":
                result, final = self._select(view, action.params)
            elif action.tool == "report_no_mask":
                result, final = "Reported that the object is not in the image.", "none"
            elif action.tool == "invalid":
                result = f"Malformed tool call ({action.params.get('error')}); reply with <tool>{{...}}</tool>."
            else:
                result = f"Unknown tool {action.tool!r}; call one of {', '.join(TOOLS)}."
            view.steps.append({"tool": action.tool, "params": action.params, "thought": action.thought,
                               "result": result, "s": round(time.perf_counter() - start, 6)})
            if final is not None:
                return self._outcome(view, final)
        return self._outcome(view, "unresolved", reason="max_steps")

    def _segment(self, image: Image.Image, view: AgentView, params: dict[str, Any]) -> str:
        phrase = " ".join(str(params.get("text_prompt", "")).split())
        if not phrase:
            return "segment_phrase needs a non-empty text_prompt."
        if phrase.lower() in (p.lower() for p in view.phrases):
            return f"The phrase {phrase!r} was already used; choose a different phrase."
        view.phrases.append(phrase)
        result = self._prefetched.pop(phrase, None)
        if result is None:
            result = self.grounder.ground(image, phrase)
        next_id = max((c.id for c in view.candidates), default=0) + 1
        batch = [MaskCandidate(next_id + i, phrase, inst) for i, inst in enumerate(result.instances)]
        view.candidates += batch
        view.last_batch = [c.id for c in batch]
        if not batch:
            return f"No masks for {phrase!r}" + (f" ({result.reason})." if result.reason else ".")
        listed = ", ".join(f"{c.id} (score {c.instance.score:.2f})" for c in batch)
        return f"{len(batch)} mask(s) for {phrase!r}: {listed}."

    def _examine(self, image: Image.Image, view: AgentView) -> str:
        todo = [c for c in view.candidates if c.verdict is None]
        if not todo:
            return "No unexamined masks."
        for c in todo:
            c.verdict = bool(self.policy.examine(image, view, c))
        kept = [c.id for c in todo if c.verdict]
        dropped = [c.id for c in todo if not c.verdict]
        return f"Accepted {kept or 'none'}; rejected {dropped or 'none'}."

    def _select(self, view: AgentView, params: dict[str, Any]) -> tuple[str, str | None]:
        raw = params.get("final_answer_masks", [])
        if not isinstance(raw, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in raw):
            return "final_answer_masks must be a list of mask numbers.", None
        if not raw:
            return "Selected no masks: reported that the object is not in the image.", "none"
        for cid in raw:
            c = view.candidate(cid)
            if c is None:
                return f"There is no mask {cid}.", None
            if c.verdict is False:
                return f"Mask {cid} was rejected on examination; it cannot be selected.", None
        chosen: list[MaskCandidate] = []
        for cid in dict.fromkeys(raw):
            c = view.candidate(cid)
            if all(mask_iou(c.instance.mask, k.instance.mask) < DUPLICATE_IOU for k in chosen):
                chosen.append(c)
        for c in chosen:
            c.selected = True
        return f"Selected {[c.id for c in chosen]}.", "selected"

    def _outcome(self, view: AgentView, status: str, reason: str | None = None) -> Grounded:
        masks = tuple(
            MaskInfo(c.id, c.phrase, encode_rle(c.instance.mask), tuple(float(v) for v in c.instance.box),
                     (int(c.instance.point[0]), int(c.instance.point[1])), float(c.instance.score),
                     c.instance.label, c.selected, c.verdict)
            for c in view.candidates
        )
        return Grounded(view.object, status, masks, tuple(view.steps), reason)  # type: ignore[arg-type]
