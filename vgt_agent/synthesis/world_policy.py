"""On world data, a rule plays the grounding agent's VLM, perceiving the image through its scene graph.

It behaves like SAM 3's agent: it turns the object's name into a phrase the grounder handles (dropping
words the grounder does not know, such as "second leftmost"), looks closer at candidates that are weak,
small, overlapping or more than expected, broadens the phrase when it can see objects the grounder
missed, then selects or reports none. Its eyes are the scene graph: a candidate is accepted when its mask
covers one object the name (or the extractor's scene ids) denotes, with mask IoU >= ACCEPT_IOU, and no
other accepted candidate covers that object. It never produces geometry: it only picks masks.
"""

from __future__ import annotations

from PIL import Image

from vgt_agent.geometry import mask_iou
from vgt_agent.synthesis.grounding_agent import Action, AgentView, MaskCandidate
from vgt_agent.synthesis.objects import NeededObject
from vgt_agent.synthesis.world_scene import SceneObject, WorldScene
from vgt_agent.world.concepts import (
    COLOUR_WORDS,
    NEGATIONS,
    SHAPE_WORDS,
    SIZE_WORDS,
    parse_concept,
    tokenize,
)

ACCEPT_IOU = 0.8  # a mask must match its object this well to be accepted (a fragment is not the object)
CONFIDENT_SCORE = 0.9


def grounder_phrases(obj: NeededObject) -> list[str]:
    """The phrase to try first, then broader revisions, all in the grounder's vocabulary."""
    concept = parse_concept(obj.name)
    words = [w for w in tokenize(obj.name) if w not in concept.unknown]
    base = " ".join(words)
    phrases = [base]
    if any(w in NEGATIONS for w in words):
        phrases.append("shapes")
    else:
        colours = [w for w in words if w in COLOUR_WORDS]
        shapes = [w for w in words if w in SHAPE_WORDS]
        phrases.append(" ".join(w for w in words if w not in SIZE_WORDS))
        if colours:
            phrases.append(f"{colours[0]} shapes")
        if shapes:
            shape = SHAPE_WORDS[shapes[0]]
            phrases.append(shape + "s")
        phrases.append("shapes")
    return [p for p in dict.fromkeys(phrases) if p and parse_concept(p).ok]


class WorldRulePolicy:
    """The rule for one world sample (it holds that sample's scene)."""

    name = "world-rule"

    def __init__(self, scene: WorldScene) -> None:
        self.scene = scene

    def denoted(self, obj: NeededObject) -> list[SceneObject]:
        """The scene objects the object's name means: the extractor's ids, else the name's concept."""
        if obj.scene_ids:
            return [self.scene.by_id[i] for i in obj.scene_ids if i in self.scene.by_id]
        phrases = grounder_phrases(obj)
        found = self.scene.matching(phrases[0]) if phrases else []
        return found if not obj.singular or len(found) == 1 else []

    def first_phrase(self, obj: NeededObject) -> str | None:
        """The phrase `act` segments first for `obj` (what `GroundingAgent.prefetch` grounds ahead)."""
        phrases = grounder_phrases(obj)
        return phrases[0] if phrases else None

    def act(self, image: Image.Image, view: AgentView) -> Action:
        obj = view.object
        phrases = grounder_phrases(obj)
        if not view.phrases:
            if not phrases:
                return Action("report_no_mask", thought=f"No words of {obj.name!r} name a colour or shape.")
            return Action("segment_phrase", {"text_prompt": phrases[0]}, f"Segment {phrases[0]!r} for {obj.name}.")
        unexamined = [c for c in view.candidates if c.verdict is None]
        if unexamined and self._needs_look(view, unexamined):
            return Action("examine_each_mask", thought="Some candidates are weak, small, overlapping or too many.")
        accepted = view.live
        wanted = len(self.denoted(obj))
        unused = [p for p in phrases if p.lower() not in (q.lower() for q in view.phrases)]
        if len(accepted) < wanted and unused:
            return Action("segment_phrase", {"text_prompt": unused[0]},
                          f"I can see {wanted - len(accepted)} more; broaden to {unused[0]!r}.")
        if accepted:
            return Action("select_masks_and_return", {"final_answer_masks": [c.id for c in accepted]},
                          f"Masks {[c.id for c in accepted]} are the {obj.name}.")
        return Action("report_no_mask", thought=f"There is no {obj.name} in the image.")

    def _needs_look(self, view: AgentView, unexamined: list[MaskCandidate]) -> bool:
        first = view.phrases[0].lower()
        if any(c.phrase.lower() != first for c in unexamined):  # a broadened phrase returns other things too
            return True
        if view.object.singular and len(view.live) > 1:
            return True
        small = 0.5 * min((o.area for o in self.scene.objects if o.visible_fraction == 1.0), default=0)
        for c in unexamined:
            x1, y1, x2, y2 = c.instance.box
            touches = x1 <= 0 or y1 <= 0 or x2 >= view.width or y2 >= view.height
            if c.instance.score < CONFIDENT_SCORE or c.area < small or touches:
                return True
            if any(_boxes_overlap(c.instance.box, o.instance.box) for o in view.live if o is not c):
                return True
        return False

    def examine(self, image: Image.Image, view: AgentView, candidate: MaskCandidate) -> bool:
        """Accept when the mask is one denoted object, seen whole, that no accepted mask covers yet."""
        target = self._object_under(candidate)
        if target is None or target.id not in {o.id for o in self.denoted(view.object)}:
            return False
        for other in view.candidates:
            earlier = other.verdict is True or (other.verdict is None and other.id < candidate.id)
            if other is not candidate and earlier and self._object_under(other) is target:
                return False
        return True

    def _object_under(self, candidate: MaskCandidate) -> SceneObject | None:
        box = candidate.instance.box
        best, best_iou = None, 0.0
        for o in self.scene.objects:
            if not _boxes_overlap(box, o.box):
                continue
            iou = mask_iou(candidate.instance.mask, o.mask)
            if iou > best_iou:
                best, best_iou = o, iou
        return best if best_iou >= ACCEPT_IOU else None


def _boxes_overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
