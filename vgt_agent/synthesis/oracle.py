"""The `world-oracle` teacher: natural-language reasoning written from a world sample's scene graph.

It stands in for an LLM teacher on the embedded world, where no model weights exist: it reads the scene
(positions, sizes, relations), works the answer out with the same relation rules the generator uses, and
words it with one of several templates. The K candidates of a sample differ in template and wording
(deterministic per sample and candidate), not in correctness: verification still checks every answer
against gold. Every record it produces says backend "world-oracle", model "scene-graph-v1".

The ask-loop oracle (`backends/world_oracle.py`, vgt-tiny's teacher) records the same backend name with model
"world-oracle"; it reads only the question and the tool replies, this one reads the scene graph. The model
field tells the two apart. The backend name stays: `--teacher world-oracle` picks this teacher for `vgt synth
--via distill` and that one for `--via agent`, and renaming it would change the rows every distill run stores
(the table in miniature's among them, `tiny/table/stages.py`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from vgt_agent.answers import NUMBER_WORDS
from vgt_agent.sample import Sample
from vgt_agent.synthesis.objects import Candidate
from vgt_agent.synthesis.world_scene import SceneObject, WorldScene
from vgt_agent.world.concepts import parse_concept
from vgt_agent.world.phrasing import article

ORACLE_BACKEND = "world-oracle"
ORACLE_MODEL = "scene-graph-v1"
RELATION_PHRASES = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}
ORDER_SPANS = {(0, False): "from left to right", (0, True): "from right to left", (1, False): "from top to bottom",
               (1, True): "from bottom to top"}


def _number(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


class _Writer:
    """One candidate's wording choices: a template index and a seeded rng for small variations."""

    def __init__(self, scene: WorldScene, index: int) -> None:
        self.scene = scene
        digest = hashlib.sha256(f"{scene.sample.id}\x1f{index}".encode()).digest()
        self.rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        self.template = index

    def pick(self, options: tuple[str, ...]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def where(self, obj: SceneObject) -> str:
        return self.scene.position(obj)

    def described(self, obj: SceneObject, with_kind: bool) -> str:
        kind = f"a {obj.name} " if with_kind else "one "
        return kind + self.where(obj)


CONNECTORS = ("There is", "I also see", "Then there is", "Besides that, there is", "Another is", "And there is")
VERBS = ("I see", "I find", "I spot", "there")


def _groups(w: _Writer, objects: list[SceneObject]) -> list[tuple[str, int]]:
    """(where, how many) for objects sharing one name, so long counts do not read as a loop."""
    groups: dict[str, int] = {}
    for o in objects:
        groups[w.where(o)] = groups.get(w.where(o), 0) + 1
    return list(groups.items())


def _group_sentence(i: int, where: str, n: int) -> str:
    verb = VERBS[i % len(VERBS)]
    verb = f"there {'is' if n == 1 else 'are'}" if verb == "there" else verb
    return f"{where[0].upper()}{where[1:]}, {verb} {_number(n)}."


def _counting(w: _Writer) -> tuple[str, str]:
    scene, reading = w.scene, w.scene.reading
    phrase, counted = reading.phrase, [scene.by_id[i] for i in reading.counted]
    counted.sort(key=lambda o: (o.cy, o.cx) if w.template % 2 == 0 else (o.cx, o.cy))
    n = len(counted)
    t = w.template % 3
    if n == 0:
        return (
            f"I look for {phrase} in the image. None of the objects is one of them, so there are none.",
            f"The question asks about {phrase}. Checking every object in the picture, I find no {phrase} at all.",
            f"Searching the image for {phrase}, I do not see a single one; the count is zero.",
        )[t], "0"
    named = reading.family != "count_colour_shape"  # the counted objects differ: name each one
    groups = _groups(w, counted)
    items = [w.described(o, True) for o in counted] if named else [f"{_number(k)} {at}" for at, k in groups]
    if t == 0:
        body = (f"I need to count the {phrase}. Going over the image, I find {_join(items)}. "
                f"That is {_number(n)} in total.")
    elif t == 1:
        if named:
            sentences = [f"{CONNECTORS[i % len(CONNECTORS)]} {item}." for i, item in enumerate(items)]
        else:
            sentences = [_group_sentence(i, at, k) for i, (at, k) in enumerate(groups)]
        body = f"The question is about {phrase}, so I look for each of them. {' '.join(sentences)} So I count {n}."
    else:
        opener = w.pick(("Let me find the", "I will look for the", "First I locate the"))
        body = f"{opener} {phrase}. I can see {_number(n)} of them: {_join(items)}. Counting them gives {n}."
    return body, str(n)


def _yes_no(w: _Writer) -> tuple[str, str]:
    scene, r = w.scene, w.scene.reading
    a, b = scene.by_id[r.target], scene.by_id[r.anchor]
    na, nb = r.names[a.id], r.names[b.id]
    answer, fact = scene.answer()
    axis = 0 if r.relation in ("left", "right") else 1
    actual = RELATION_PHRASES.get(fact, "not clearly " + RELATION_PHRASES[r.relation])
    asked = RELATION_PHRASES[r.relation]
    t = w.template % 3
    if t == 0:
        opener = w.pick(("First I find", "To start, I locate", "I begin with"))
        body = (f"{opener} the {na}: it is {w.where(a)}. Then the {nb}: it is {w.where(b)}. "
                f"The {na} is {actual} the {nb}, so it {'is' if answer == 'yes' else 'is not'} {asked} it.")
    elif t == 1:
        direction = "horizontal" if axis == 0 else "vertical"
        body = (f"The {nb} is {w.where(b)}, and the {na} is {w.where(a)}. Comparing their {direction} positions, "
                f"the {na} lies {actual} the {nb}. The answer is {answer}.")
    else:
        body = (f"Locating the two objects: the {na} {w.where(a)} and the {nb} {w.where(b)}. "
                f"Since the {na} is {actual} the {nb}, the statement that it is {asked} it is "
                f"{'true' if answer == 'yes' else 'false'}.")
    return body, answer


def _choice(w: _Writer) -> tuple[str, str]:
    scene, r = w.scene, w.scene.reading
    a, b = scene.by_id[r.target], scene.by_id[r.anchor]
    na, nb = r.names[a.id], r.names[b.id]
    letter, fact = scene.answer()
    rel = RELATION_PHRASES.get(fact, fact)
    t = w.template % 3
    if t == 0:
        lead = w.pick(("Mostly", "Above all", "Most clearly"))
        body = (f"I locate the {na} {w.where(a)} and the {nb} {w.where(b)}. {lead}, the {na} is {rel} the {nb}, "
                f"which is option {letter} ({fact}).")
    elif t == 1:
        body = (f"The reference object is the {nb}, {w.where(b)}. The {na} is {w.where(a)}, so it lies {rel} "
                f"the {nb}. That matches option {letter}.")
    else:
        body = (f"Where is the {na}? It is {w.where(a)}. The {nb} is {w.where(b)}. The clearest direction from "
                f"the {nb} to the {na} is {fact}, option {letter}.")
    return body, letter


def _closer(w: _Writer) -> tuple[str, str]:
    scene, r = w.scene, w.scene.reading
    z = scene.by_id[r.anchor]
    x, y = (scene.by_id[i] for i in r.others)
    letter, near_name = scene.answer()
    near = x if r.names[x.id] == near_name else y
    far = y if near is x else x
    nz, nn, nf = r.names[z.id], r.names[near.id], r.names[far.id]
    t = w.template % 3
    if t == 0:
        lead = w.pick(("", "Let me place the objects. ", "I look at where everything is. "))
        body = (f"{lead}The {nz} is {w.where(z)}. The {nn} is {w.where(near)}, while the {nf} is {w.where(far)}. "
                f"The {nn} is clearly nearer to the {nz} than the {nf} is, so the answer is the {nn}, option {letter}.")
    elif t == 1:
        body = (f"I compare distances to the {nz} ({w.where(z)}). The {nf} sits {w.where(far)}, farther away; "
                f"the {nn} sits {w.where(near)}, closer. Option {letter}.")
    else:
        body = (f"Finding the three objects: the {nz} {w.where(z)}, the {nn} {w.where(near)} and the {nf} "
                f"{w.where(far)}. Of the two candidates, the {nn} is the one closer to the {nz}, option {letter}.")
    return body, letter


def _larger(w: _Writer) -> tuple[str, str]:
    scene, r = w.scene, w.scene.reading
    letter, pick_name = scene.answer()
    x, y = (scene.by_id[i] for i in r.others)
    pick = x if r.names[x.id] == pick_name else y
    other = y if pick is x else x
    npk, no = r.names[pick.id], r.names[other.id]
    t = w.template % 3
    if t == 0:
        lead = w.pick(("", "Comparing the two objects: ", "I check both sizes. "))
        body = (f"{lead}The {npk} is {w.where(pick)} and looks {pick.size}; the {no} is {w.where(other)} and looks "
                f"{other.size}. So the {npk} is the {r.comparison} one, option {letter}.")
    elif t == 1:
        body = (f"I compare the two sizes. The {no} ({w.where(other)}) is {other.size}, the {npk} "
                f"({w.where(pick)}) is {pick.size}. The {r.comparison} of the two is the {npk}: option {letter}.")
    else:
        body = (f"Looking at the {npk} {w.where(pick)} and the {no} {w.where(other)}, the {npk} is clearly "
                f"{r.comparison}, which is option {letter}.")
    return body, letter


def _kth(w: _Writer) -> tuple[str, str]:
    scene, r = w.scene, w.scene.reading
    ranked = scene.ranked(r.members, r.order)
    target, anchor = scene.by_id[r.target], scene.by_id[r.anchor]
    na = r.names[anchor.id]
    letter, fact = scene.answer()
    listing = _join([f"the {o.name} {w.where(o)}" for o in ranked])
    span = ORDER_SPANS[r.order[:2]]
    rel = RELATION_PHRASES.get(fact, fact)
    t = w.template % 3
    if t == 2:
        body = (f"The question ranks the {r.phrase} {span.replace('from ', 'counting from ', 1)}. In that order they "
                f"are {listing}, which makes the {r.subject} the {target.name}. Next I find the {na}, "
                f"{w.where(anchor)}; the {target.name} lies {rel} it, so the answer is option {letter}.")
    elif t == 0:
        verb = w.pick(("I list", "I go through", "I order"))
        body = (f"{verb} the {r.phrase} {span}: {listing}. So the {r.subject} is the {target.name}. "
                f"The {na} is {w.where(anchor)}, and the {target.name} is {rel} it, option {letter}.")
    else:
        body = (f"Ordering the {r.phrase} {span} gives {listing}. The {r.subject} is therefore the {target.name}. "
                f"Compared with the {na} ({w.where(anchor)}), it is {rel} it. The answer is option {letter}.")
    return body, letter


def _exist(w: _Writer) -> tuple[str, str]:
    scene, reading = w.scene, w.scene.reading
    found = [scene.by_id[i] for i in reading.counted]
    phrase = reading.phrase if parse_concept(reading.phrase).plural else f"{article(reading.phrase)} {reading.phrase}"
    answer, _ = scene.answer()
    t = w.template % 3
    if not found:
        return (
            f"I look for {phrase} in the image. None of the objects is one, so the answer is no.",
            f"The question asks whether there are {phrase}. Checking every object, I find none: no.",
            f"Searching the image for {phrase}, I do not see a single one, so there is none.",
        )[t], answer
    items = _join([w.described(o, True) for o in found])
    if t == 0:
        body = f"I look for {phrase}. I find {items}, so yes, there is."
    elif t == 1:
        body = f"The question asks whether there are {phrase}. There is {items}. The answer is yes."
    else:
        body = f"Searching for {phrase}: {items}. At least one is there, so yes."
    return body, answer


def _attribute(w: _Writer) -> tuple[str, str]:
    scene, r = w.scene, w.scene.reading
    target = scene.by_id[r.target]
    value, _ = scene.answer()
    asked = r.attribute or "colour"
    t = w.template % 3
    if r.family == "attribute_relation":
        anchor = scene.by_id[r.anchor]
        na, side = r.names[anchor.id], RELATION_PHRASES[r.relation or "left"]
        if t == 0:
            body = (f"First I find the {na}: it is {w.where(anchor)}. The only object {side} it is the "
                    f"{target.name}, {w.where(target)}. Its {asked} is {value}.")
        elif t == 1:
            body = (f"The {na} is {w.where(anchor)}. Looking {side} it, I see just one object, "
                    f"{w.where(target)}: a {target.name}. So the {asked} is {value}.")
        else:
            body = (f"I locate the {na} {w.where(anchor)} and check what lies {side} it: only the "
                    f"{target.name} {w.where(target)}. The answer is {value}.")
        return body, value
    name = r.names[target.id]
    if t == 0:
        body = f"I look for the {name}: it is the {target.name}, {w.where(target)}. Its {asked} is {value}."
    elif t == 1:
        body = f"The question asks about the {name}. That is the object {w.where(target)}, a {target.name}, so {value}."
    else:
        body = f"Finding the {name} {w.where(target)}, I see it is a {target.name}. The answer is {value}."
    return body, value


WRITERS: dict[str, Callable[[_Writer], tuple[str, str]]] = {
    "count_colour_shape": _counting, "count_not_colour": _counting, "count_shape": _counting,
    "relation_yes_no": _yes_no, "relation_choice": _choice, "closer": _closer, "larger": _larger,
    "kth_relation": _kth, "count_phrased": _counting, "exist": _exist, "attribute": _attribute,
    "attribute_relation": _attribute,
}
WRITERS["spatial_phrased"] = lambda w: WRITERS[w.scene.reading.family](w)  # read as the family it rewords


def oracle_trace(scene: WorldScene, index: int) -> str:
    """Candidate `index` for the scene's question: `<think>...</think>` then the boxed answer."""
    writer = _Writer(scene, index)
    body, answer = WRITERS[scene.sample.meta["family"]](writer)
    return f"<think>{body}</think>\n\\boxed{{{answer}}}"


class WorldOracleTeacher:
    """Teacher interface over the scene graph; needs world samples (ValueError otherwise)."""

    backend = ORACLE_BACKEND
    model = ORACLE_MODEL

    def candidates(self, sample: Sample, image: Image.Image, k: int) -> list[Candidate]:
        scene = WorldScene(sample)
        out = []
        for i in range(k):
            start = time.perf_counter()
            text = oracle_trace(scene, i)
            out.append(Candidate(i, text, self.backend, self.model, time.perf_counter() - start,
                                 meta={"template": i % 3, "family": sample.meta["family"]}))
        return out
