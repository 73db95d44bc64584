"""Reading a world sample's scene graph: objects, what its question refers to, and where things are.

The world-oracle teacher, scene extraction and the rule that plays the VLM in the grounding agent all
perceive a world image through its scene graph; they share this one reader so they agree on which objects
a phrase like "the second leftmost circle" or "shapes that are not blue" denotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from vgt_agent import geometry
from vgt_agent.sample import Sample
from vgt_agent.world import phrasing
from vgt_agent.world.concepts import parse_concept
from vgt_agent.world.relations import clear_relation, closer, dominant_relation, larger

ORDINALS = {"": 0, "first": 0, "second": 1, "third": 2, "fourth": 3}
ORDER_WORDS = {"leftmost": (0, False), "rightmost": (0, True), "topmost": (1, False), "bottommost": (1, True)}
RELATION_WORDS = {"to the left of": "left", "to the right of": "right", "above": "above", "below": "below"}


@dataclass(frozen=True, eq=False)
class SceneObject:
    """One object of the scene graph, with the attributes `world.relations` reads (duck-typed)."""

    id: int
    shape: str
    colour: str
    size: str
    cx: float
    cy: float
    box: tuple[float, float, float, float]
    area: int
    visible_fraction: float
    rle: dict[str, Any]

    @property
    def center(self) -> tuple[float, float]:
        return self.cx, self.cy

    @property
    def name(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"

    @property
    def short_name(self) -> str:
        return f"{self.colour} {self.shape}"

    @cached_property
    def mask(self) -> np.ndarray:
        return geometry.decode_rle(self.rle)


@dataclass(frozen=True)
class Reading:
    """What a world question asks, resolved against the scene: the referents and the counted set.

    `phrase` is the counted category as the trace should word it ("red circles", "shapes that are not
    blue"); `order` is the k-th-relation ordering (axis, reversed, k) and `members` the objects it ranks.
    """

    family: str
    phrase: str = ""
    counted: tuple[int, ...] = ()
    target: int | None = None
    anchor: int | None = None
    others: tuple[int, ...] = ()  # alternatives (closer/larger)
    relation: str | None = None  # yes/no: the relation asked about
    comparison: str | None = None  # larger | smaller
    order: tuple[int, bool, int] | None = None
    members: tuple[int, ...] = ()
    subject: str = ""  # k-th relation: "second leftmost circle"
    names: dict[int, str] | None = None  # object id -> the phrase the question uses for it
    attribute: str | None = None  # attribute questions: "colour" | "shape"


class WorldScene:
    """A world sample's scene graph and question, readable by the oracle, extraction and the rule policy."""

    def __init__(self, sample: Sample) -> None:
        if not is_world_sample(sample):
            raise ValueError(f"sample {sample.id} has no world scene graph")
        self.sample = sample
        self.width = int(sample.meta["width"])
        self.height = int(sample.meta["height"])
        self.objects = [
            SceneObject(o["id"], o["shape"], o["colour"], o["size"], float(o["center"][0]), float(o["center"][1]),
                        tuple(float(v) for v in o["box"]), int(o.get("area", 0)), float(o["visible_fraction"]),
                        o["rle"])
            for o in sample.meta["objects"]
        ]
        self.by_id = {o.id: o for o in self.objects}

    @cached_property
    def reading(self) -> Reading:
        return read_question(self)

    def matching(self, phrase: str) -> list[SceneObject]:
        """Objects a grounder phrase denotes (colour/shape/size words, negations, superlatives)."""
        concept = parse_concept(phrase)
        if not concept.ok:
            return []
        found = [o for o in self.objects if concept.matches(o.colour, o.shape, o.size)]
        return concept.select(found, key=lambda o: (("small", "medium", "large").index(o.size), o.area),
                              position=lambda o: o.center)

    def unique(self, phrase: str) -> SceneObject:
        found = self.matching(phrase)
        if len(found) != 1:
            raise ValueError(f"{phrase!r} denotes {len(found)} objects in {self.sample.id}, not one")
        return found[0]

    def position(self, obj: SceneObject) -> str:
        """Where an object is, in words: "in the top left", "near the centre", "on the right"."""
        col = 0 if obj.cx < self.width / 3 else (2 if obj.cx > 2 * self.width / 3 else 1)
        row = 0 if obj.cy < self.height / 3 else (2 if obj.cy > 2 * self.height / 3 else 1)
        return {
            (0, 0): "in the top left", (1, 0): "at the top", (2, 0): "in the top right",
            (0, 1): "on the left", (1, 1): "near the centre", (2, 1): "on the right",
            (0, 2): "in the bottom left", (1, 2): "at the bottom", (2, 2): "in the bottom right",
        }[(col, row)]

    def ranked(self, members: tuple[int, ...], order: tuple[int, bool, int]) -> list[SceneObject]:
        axis, reverse, _ = order
        return sorted((self.by_id[i] for i in members), key=lambda o: o.center[axis], reverse=reverse)

    def answer(self) -> tuple[str, str]:
        """(answer as the sample's answer type wants it, the plain-words fact behind it), from the scene."""
        r = self.reading
        objs = self.by_id
        if r.family.startswith("count"):
            return str(len(r.counted)), str(len(r.counted))
        if r.family == "exist":
            return ("yes" if r.counted else "no"), str(len(r.counted))
        if r.family in ("attribute", "attribute_relation"):
            target = objs[r.target]
            value = target.colour if r.attribute == "colour" else target.shape
            return value, value
        if r.family == "relation_yes_no":
            a, b = objs[r.target], objs[r.anchor]
            axis = 0 if r.relation in ("left", "right") else 1
            rel = clear_relation(a, b, axis)
            return ("yes" if rel == r.relation else "no"), rel or "unclear"
        if r.family == "relation_choice":
            rel = dominant_relation(objs[r.target], objs[r.anchor])
            return self._letter(rel or ""), rel or "unclear"
        if r.family == "closer":
            x, y = r.others
            near = closer(objs[x], objs[y], objs[r.anchor])
            name = r.names[near.id] if near is not None else ""
            return self._letter(f"the {name}"), name
        if r.family == "larger":
            x, y = r.others
            big = larger(objs[x], objs[y])
            if big is None:
                return "", ""
            pick = big.id if r.comparison == "larger" else (y if big.id == x else x)
            return self._letter(f"the {r.names[pick]}"), r.names[pick]
        if r.family == "kth_relation":
            target = objs[r.target]
            rel = clear_relation(target, objs[r.anchor], 1 - r.order[0])
            return self._letter(rel or ""), rel or "unclear"
        raise ValueError(f"unknown world family {r.family!r}")

    def _letter(self, option: str) -> str:
        choices = list(self.sample.choices)
        return "ABCDEFGH"[choices.index(option)] if option in choices else ""


def is_world_sample(sample: Sample) -> bool:
    """Whether the sample carries a world scene graph (and so can use the oracle and the rule policy)."""
    meta = sample.meta or {}
    return bool(meta.get("objects")) and "family" in meta and "width" in meta


PHRASED = ("count_phrased", "exist", "spatial_phrased", "attribute", "attribute_relation")
_COUNT_COLOUR_SHAPE = re.compile(r"^How many (\w+) (\w+)s are there\?$")
_COUNT_NOT_COLOUR = re.compile(r"^How many shapes are not (\w+)\?$")
_COUNT_SHAPE = re.compile(r"^How many (\w+)s are there\?$")
_YES_NO = re.compile(r"^Is the (.+?) (to the left of|to the right of|above|below) the (.+?)\?$")
_CHOICE = re.compile(r"^Where is the (.+?) relative to the (.+?)\?$")
_CLOSER = re.compile(r"^Which is closer to the (.+?): the (.+?) or the (.+?)\?$")
_LARGER = re.compile(r"^Which is (larger|smaller): the (.+?) or the (.+?)\?$")
_KTH = re.compile(r"^Is the (?:(second|third) )?(leftmost|rightmost|topmost|bottommost) (.+?) "
                  r"(?:to the )?(\w+) or (\w+)(?: of)? the (.+?)\?$")


def read_question(scene: WorldScene) -> Reading:
    """Resolve the question's phrases against the scene; ValueError when the text is not a world template."""
    family, q = scene.sample.meta["family"], scene.sample.question.strip()
    objs = scene.objects
    if family == "count_colour_shape" and (m := _COUNT_COLOUR_SHAPE.match(q)):
        colour, shape = m.groups()
        counted = [o.id for o in objs if o.colour == colour and o.shape == shape]
        return Reading(family, phrase=f"{colour} {shape}s", counted=tuple(counted))
    if family == "count_not_colour" and (m := _COUNT_NOT_COLOUR.match(q)):
        colour = m.group(1)
        counted = [o.id for o in objs if o.colour != colour]
        return Reading(family, phrase=f"shapes that are not {colour}", counted=tuple(counted))
    if family == "count_shape" and (m := _COUNT_SHAPE.match(q)):
        shape = m.group(1)
        return Reading(family, phrase=f"{shape}s", counted=tuple(o.id for o in objs if o.shape == shape))
    if family == "relation_yes_no" and (m := _YES_NO.match(q)):
        a, rel, b = m.groups()
        ta, tb = scene.unique(a), scene.unique(b)
        return Reading(family, target=ta.id, anchor=tb.id, relation=RELATION_WORDS[rel],
                       names={ta.id: a, tb.id: b})
    if family == "relation_choice" and (m := _CHOICE.match(q)):
        a, b = m.groups()
        ta, tb = scene.unique(a), scene.unique(b)
        return Reading(family, target=ta.id, anchor=tb.id, names={ta.id: a, tb.id: b})
    if family == "closer" and (m := _CLOSER.match(q)):
        z, x, y = m.groups()
        tz, tx, ty = scene.unique(z), scene.unique(x), scene.unique(y)
        return Reading(family, anchor=tz.id, others=(tx.id, ty.id), names={tz.id: z, tx.id: x, ty.id: y})
    if family == "larger" and (m := _LARGER.match(q)):
        word, x, y = m.groups()
        tx, ty = scene.unique(x), scene.unique(y)
        return Reading(family, others=(tx.id, ty.id), comparison=word, names={tx.id: x, ty.id: y})
    if family == "kth_relation" and (m := _KTH.match(q)):
        ordinal, order_word, kind, _, _, anchor = m.groups()
        kind_phrase = kind[: -len(" shape")] + " shapes" if kind.endswith(" shape") else kind + "s"
        members = tuple(o.id for o in scene.matching(kind_phrase))
        axis, reverse = ORDER_WORDS[order_word]
        order = (axis, reverse, ORDINALS[ordinal or ""])
        ranked = sorted((scene.by_id[i] for i in members), key=lambda o: o.center[axis], reverse=reverse)
        ta = scene.unique(anchor)
        subject = f"{ordinal + ' ' if ordinal else ''}{order_word} {kind}"
        return Reading(family, target=ranked[order[2]].id, anchor=ta.id, order=order, members=members,
                       phrase=kind_phrase, subject=subject, names={ta.id: anchor})
    if family in PHRASED and (phrased := phrasing.read(q)) is not None:
        return _read_phrased(scene, family, phrased)
    raise ValueError(f"question {q!r} of {scene.sample.id} does not fit the {family} template")


def _gold_id(scene: WorldScene, role: str) -> int:
    """The scene id of the sample's gold object with this role (the generator's choice)."""
    ids = [g.meta["object_id"] for g in scene.sample.gold_objects if g.role == role]
    if len(ids) != 1:
        raise ValueError(f"{scene.sample.id} has {len(ids)} gold objects of role {role!r}, not one")
    return int(ids[0])


def _read_phrased(scene: WorldScene, family: str, r: phrasing.Reading) -> Reading:
    """The families in people's wording (`world.phrasing`); `spatial_phrased` reads as the original family it
    rewords (yes/no relation, direction, closer, larger), the others by their own family name."""
    s = r.slots
    if family in ("count_phrased", "exist") and r.intent in ("count", "exist"):
        return Reading(family, phrase=s["np"], counted=tuple(o.id for o in scene.matching(s["np"])))
    if family == "spatial_phrased" and r.intent in ("relation", "where"):
        ta, tb = scene.unique(s["x"]), scene.unique(s["b"])
        return Reading("relation_yes_no" if r.intent == "relation" else "relation_choice", target=ta.id,
                       anchor=tb.id, relation=r.relation or None, names={ta.id: s["x"], tb.id: s["b"]})
    if family == "spatial_phrased" and r.intent == "closer":
        tz, tx, ty = scene.unique(s["z"]), scene.unique(s["x"]), scene.unique(s["y"])
        return Reading("closer", anchor=tz.id, others=(tx.id, ty.id),
                       names={tz.id: s["z"], tx.id: s["x"], ty.id: s["y"]})
    if family == "spatial_phrased" and r.intent == "larger":
        tx, ty = scene.unique(s["x"]), scene.unique(s["y"])
        return Reading("larger", others=(tx.id, ty.id), comparison=r.comparison, names={tx.id: s["x"], ty.id: s["y"]})
    if family == "attribute" and r.intent in ("colour_of", "shape_of"):
        target = scene.unique(s["np"])
        return Reading(family, target=target.id, names={target.id: s["np"]}, attribute=r.intent.split("_")[0])
    if family == "attribute_relation" and r.intent in ("colour_related", "shape_related"):
        anchor, target = scene.unique(s["b"]), _gold_id(scene, "target")
        return Reading(family, target=target, anchor=anchor.id, relation=r.relation,
                       names={anchor.id: s["b"], target: scene.by_id[target].name},
                       attribute=r.intent.split("_")[0])
    raise ValueError(f"question {scene.sample.question!r} of {scene.sample.id} does not fit the {family} grammar")
