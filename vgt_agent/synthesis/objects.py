"""What flows between the synthesis stages: teacher candidates, verdicts, needed objects, selected masks.

Plain JSON-able dataclasses, because they travel through LangGraph state and into the trace store; masks
are COCO RLE plus their pixel box and point, never arrays, so no pixels ever enter graph state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ObjectRole = Literal["answer", "alternative", "anchor", "counted", "endpoint", "reference"]
ROLES: tuple[str, ...] = ("answer", "alternative", "anchor", "counted", "endpoint", "reference")
GroundStatus = Literal["selected", "none", "unresolved"]


@dataclass(frozen=True)
class Candidate:
    """One reasoning trace written by a teacher for one sample."""

    index: int
    text: str
    backend: str  # "world-oracle", "openai", "transformers"
    model: str
    latency_s: float = 0.0
    finish_reason: str = "stop"
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """Whether a candidate survives verification, and why not."""

    ok: bool
    reason: str | None = None  # wrong_answer | no_answer | truncated | repetitive | tags_in_trace
    predicted: str | None = None
    answer_source: str = "none"
    correct: bool = False  # the answer alone is right (a repetitive trace can be correct yet rejected)


@dataclass(frozen=True)
class NeededObject:
    """An object the reasoning needs, as the extractor names it: never with coordinates.

    `count` is the number of instances the trace itself states (counted objects), which grounding must
    agree with; `mentions` are verbatim spans of the trace that refer to the object, when the extractor
    could quote them.
    """

    name: str
    context: str = ""
    role: str = "answer"
    count: int | None = None
    mentions: tuple[str, ...] = ()
    scene_ids: tuple[int, ...] = ()  # world extraction only: which scene objects the name denotes

    @property
    def singular(self) -> bool:
        """One instance expected: every role but counted objects and reference groups."""
        return self.role not in ("counted", "reference")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mentions": list(self.mentions), "scene_ids": list(self.scene_ids)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NeededObject:
        return cls(d["name"], d.get("context", ""), d.get("role", "answer"), d.get("count"),
                   tuple(d.get("mentions", ())), tuple(d.get("scene_ids", ())))


@dataclass(frozen=True)
class MaskInfo:
    """One candidate instance the grounding agent saw: its mask as RLE, pixel box and point, and fate."""

    id: int
    phrase: str  # the segment_phrase prompt that produced it
    rle: dict[str, Any]
    box: tuple[float, float, float, float]  # pixels, tight box of the mask
    point: tuple[int, int]  # pixels, distance-transform maximum of the mask
    score: float
    label: str = ""
    selected: bool = False
    verdict: bool | None = None  # examine_each_mask's decision; None when not examined

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "box": list(self.box), "point": list(self.point)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaskInfo:
        return cls(d["id"], d["phrase"], d["rle"], tuple(d["box"]), tuple(d["point"]), d["score"],
                   d.get("label", ""), d.get("selected", False), d.get("verdict"))


@dataclass(frozen=True)
class Grounded:
    """The grounding agent's outcome for one needed object."""

    object: NeededObject
    status: GroundStatus
    masks: tuple[MaskInfo, ...] = ()  # every candidate it saw; `selected` marks the answer
    steps: tuple[dict[str, Any], ...] = ()  # the tool transcript: {"tool", "params", "result", "s"}
    reason: str | None = None  # why it is unresolved

    @property
    def selected(self) -> list[MaskInfo]:
        return [m for m in self.masks if m.selected]

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object.to_dict(), "status": self.status, "masks": [m.to_dict() for m in self.masks],
                "steps": list(self.steps), "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grounded:
        return cls(NeededObject.from_dict(d["object"]), d["status"], tuple(MaskInfo.from_dict(m) for m in d["masks"]),
                   tuple(d.get("steps", ())), d.get("reason"))
