"""`world-oracle`: a rule that plays the model's part in the ask loop, the teacher of vgt-tiny.

Why: the tiny policy learns by imitation, and a teacher whose reasoning is short and regular is easy to
imitate step by step. The oracle sees ONLY what a model sees: the question text and the tool replies in
its own thought so far (never the scene graph, never pixels). It decides which phrases to ground, then
writes the reasoning over the returned coordinates and the answer:

- questions are read in any wording of the world's grammar (`world.phrasing`), case and punctuation free;
- counting: ground the counted phrase, re-point at each instance with an index, box the last index;
- existence: ground the phrase; anything found is yes, nothing is no;
- attributes (a colour or shape word): ground the object asked about, then halve the candidate values:
  ground its phrase restricted to the first half ("red or green or blue star", "largest circle or square")
  and keep that half when the grounder returns the object itself (`[118, 150] vs [118, 150]: same`), else
  the other half, until one value is left (at most 1 + 3 grounder calls). A side question ("what shape is
  left of the X") grounds the anchor X, then the extreme of each half on that side ("leftmost circle or
  square"), which is the asked object exactly when it lies on that side (`x: 212 vs 480, so left. left
  in`). Nothing found for the object: `unknown`;
- spatial families ground the objects the question names, then decide over the copied coordinates with
  single-digit arithmetic only, which a small model can learn where two-digit differences it does not:
  - left/right/above/below writes the two coordinates on the asked axis and the relation
    (`x: 412 vs 460, so left`);
  - dominant direction: the offset on each axis in hundreds (`x: 394 vs 811: 3 to 8 is 5`; a tie is decided
    by tens), the larger axis, then that axis's relation as above;
  - closer: each candidate's offsets from the anchor in hundreds and their single-digit sum, the smaller wins
    (ties by tens);
  - larger/smaller grounds "the largest of A and B" and compares its point with A's (same: A, other: B);
  - k-th grounds the ranked object as asked ("second leftmost circle": the grounder ranks), then its
    relation to the anchor;
  - a question whose answer hangs on a word (yes/no, an option letter) gets its answer table written after the
    decision, `so below. below yes, above no. below yes.`: the answer is then a copy of the token that followed
    the same word in the table (an induction step), never a comparison of two words.

Its answers can be wrong (a grounder miss, L1 instead of L2 distance); synthesis keeps only verified
correct traces. It is labelled `world-oracle` as backend and as model everywhere it appears (the distill
teacher of `synthesis/oracle.py`, which reads the scene graph, shares the backend name with model `scene-graph-v1`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image

from vgt_agent.backends.base import BackendError, Generation, Message, StreamCallback
from vgt_agent.format import parse, render_grounding
from vgt_agent.vocabulary import ORACLE
from vgt_agent.world import phrasing
from vgt_agent.world.concepts import EXTREME_WORDS, ORDER_WORDS
from vgt_agent.world.palette import COLOURS, SHAPES

NAME = ORACLE
Point = tuple[int, int]

_RESULT = re.compile(r"</ground>\s*(?:(<obj>.*?</obj>)|No (.*?) found\.)", re.S)
_OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}


@dataclass(frozen=True)
class Question:
    """What the oracle read from the question: its kind and the phrases it will ground."""

    kind: str  # count | exist | attribute | attribute_side | relation | where | closer | larger | kth | unknown
    phrases: tuple[str, ...]
    options: tuple[str, ...] = ()  # letter order: option i is letter chr(65 + i)
    word: str = ""  # relation asked, "larger"/"smaller", or the k-th order word
    attribute: str = ""  # attribute questions: "colour" or "shape"


def read_question(text: str) -> Question:
    """Parse a world question (as `format_question` shows it, options included) in any wording of the world's
    grammar (`world.phrasing`: case, spacing and final punctuation free); kind "unknown" when it fits none."""
    r = phrasing.read(text)
    if r is None:
        return Question("unknown", ())
    s = r.slots
    if r.intent == "count":
        return Question("count", (s["np"],))
    if r.intent == "count_not":
        return Question("count", (f"{s['np']} that are not {s['colour']}",))
    if r.intent == "exist":
        return Question("exist", (s["np"],))
    if r.intent in ("colour_of", "shape_of"):
        return Question("attribute", (s["np"],), attribute=r.intent.split("_")[0])
    if r.intent in ("colour_related", "shape_related"):
        return Question("attribute_side", (s["b"],), word=r.relation, attribute=r.intent.split("_")[0])
    if r.intent == "relation":
        return Question("relation", (s["x"], s["b"]), word=r.relation)
    if r.intent == "where":
        return Question("where", (s["x"], s["b"]), r.options)
    if r.intent == "closer":
        return Question("closer", (s["z"], s["x"], s["y"]), ("first", "second"))
    if r.intent == "larger":
        a, b = s["x"], s["y"]
        extreme = "largest" if r.comparison == "larger" else "smallest"
        return Question("larger", (a, b, f"the {extreme} of the {a} and the {b}"), ("first", "second"),
                        r.comparison)
    if r.intent == "kth":
        choices = (s["l1"], s["l2"]) if "l1" in s else (s["a1"], s["a2"])
        subject = " ".join(w for w in (s.get("nth"), s["order"], s["np"]) if w)  # "second leftmost circle"
        return Question("kth", (subject, s["b"]), choices, s["order"])
    return Question("unknown", ())


def tool_results(prefill: str) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(phrase, instances) for each tool reply in the thought so far, in order; none found -> []."""
    out = []
    for m in _RESULT.finditer(prefill):
        if m.group(1):
            groundings = parse(m.group(1), expect_answer=False).groundings
            g = groundings[0] if groundings else None
            out.append((g.phrase, [tuple(c) for c in g.coords]) if g else ("", []))
        else:
            out.append((m.group(2), []))
    return out


def centre(c: Sequence[int]) -> Point:
    """A point is itself; a box is its centre (the oracle reasons on positions only)."""
    return (c[0], c[1]) if len(c) == 2 else ((c[0] + c[2]) // 2, (c[1] + c[3]) // 2)


def _xy(p: Point) -> str:
    return f"[{p[0]}, {p[1]}]"


def _coarse(a: int, b: int) -> int:
    """|a - b| in tens of the 0..1000 scale, from the leading digits only (what a small model can copy)."""
    return abs(a // 10 - b // 10)


def _hundreds(a: int) -> int:
    """The hundreds digit of a 0..1000 coordinate (0 for two-digit numbers)."""
    return a // 100


def _axis_gap(axis: int, a: int, b: int) -> tuple[str, int]:
    """'x: 412 vs 600: 4 to 6 is 2': the offset in hundreds, from two single digits."""
    ha, hb = _hundreds(a), _hundreds(b)
    return f"{'xy'[axis]}: {a} vs {b}: {ha} to {hb} is {abs(ha - hb)}", abs(ha - hb)


def _letter(options: tuple[str, ...], word: str) -> str:
    return chr(65 + options.index(word)) if word in options else word


def _ground(phrase: str) -> str:
    return f"<ground> {phrase} </ground>"


def _end(answer: str) -> str:
    return f" </think> \\boxed{{{answer}}}"


# ---- spatial decisions ------------------------------------------------------------------------------------
Found = list[list[Point]]


def relation_text(axis: int, a: int, b: int, tie: str | None = None) -> tuple[str, str]:
    """'x: 412 vs 600, so left': a's relation to b on one axis, and the relation word (`tie`, when given, for
    equal coordinates; else they read as right/below)."""
    rel = tie if tie is not None and a == b else ("left", "above")[axis] if a < b else ("right", "below")[axis]
    return f"{'xy'[axis]}: {a} vs {b}, so {rel}", rel


def answer_table(q: Question) -> str:
    """`below yes, above no.` (a relation) or `left A, above B, right C, below D.` (options): each word the
    decision can end on, followed by the answer it means, so that answering is copying."""
    if q.kind == "relation":
        return f"{q.word} yes, {_OPPOSITE[q.word]} no."
    if q.kind in ("where", "kth") and q.options:
        return ", ".join(f"{word} {chr(65 + i)}" for i, word in enumerate(q.options)) + "."
    return ""


def looked_up(q: Question, decision: str, word: str, answer: str) -> str:
    """The decision ending on its word, the table, that word again with its entry, and the boxed answer."""
    return f"{decision}. {answer_table(q)} {word} {answer}." + _end(answer)


def _relation(q: Question, found: Found) -> str:
    a, b = found[0][0], found[1][0]
    axis = 0 if q.word in ("left", "right") else 1
    text, rel = relation_text(axis, a[axis], b[axis])
    return looked_up(q, text, rel, "yes" if rel == q.word else "no")


def _dominant_axis(a: Point, b: Point) -> tuple[str, int]:
    """'x: 394 vs 811: 3 to 8 is 5. y: 528 vs 454: 5 to 4 is 1. 5 > 1 so x.' and the axis (ties by tens)."""
    (tx, gx), (ty, gy) = _axis_gap(0, a[0], b[0]), _axis_gap(1, a[1], b[1])
    if gx != gy:  # the hundreds decide (the world asks only when one axis dominates 2:1)
        axis = 0 if gx > gy else 1
        return f"{tx}. {ty}. {max(gx, gy)} > {min(gx, gy)} so {'xy'[axis]}.", axis
    dx, dy = _coarse(a[0], b[0]), _coarse(a[1], b[1])  # a tie in hundreds: the tens decide
    axis = 0 if dx >= dy else 1
    return f"{tx}. {ty}. tie, by tens {dx} and {dy} so {'xy'[axis]}.", axis


def _where(q: Question, found: Found) -> str:
    a, b = found[0][0], found[1][0]
    head, axis = _dominant_axis(a, b)
    text, rel = relation_text(axis, a[axis], b[axis])
    return looked_up(q, f"{head} {text}", rel, _letter(q.options, rel))


def _closer(q: Question, found: Found) -> str:
    z, c1, c2 = found[0][0], found[1][0], found[2][0]
    parts, dist = [], []
    for name, c in (("first", c1), ("second", c2)):
        (tx, gx), (ty, gy) = _axis_gap(0, c[0], z[0]), _axis_gap(1, c[1], z[1])
        dist.append(gx + gy)
        parts.append(f"{name}: {tx}, {ty}, {gx} + {gy} = {gx + gy}.")
    if dist[0] != dist[1]:
        near = "first" if dist[0] < dist[1] else "second"
        decide = f"{min(dist)} < {max(dist)} so the {near}."
    else:  # a tie in hundreds: the tens decide
        tens = [_coarse(c[0], z[0]) + _coarse(c[1], z[1]) for c in (c1, c2)]
        near = "first" if tens[0] <= tens[1] else "second"
        decide = f"tie, by tens {tens[0]} and {tens[1]} so the {near}."
    return " ".join(parts) + f" {decide}" + _end("A" if near == "first" else "B")


def _larger(q: Question, found: Found) -> str:
    """The grounder's answer to "the largest of the A and the B" compared with the first object's point (the
    same equality test as the attribute halving): same, the first; other, the second."""
    a, pick = found[0][0], found[2][0]
    same = _same(pick, a)
    return (f"{_xy(pick)} vs {_xy(a)}: {'same' if same else 'other'}, so the {'first' if same else 'second'}."
            + _end("A" if same else "B"))


def _kth(q: Question, found: Found) -> str:
    """The k-th of the kind (the grounder ranks it: "second leftmost circle"), then its relation to the anchor on
    the other axis."""
    axis = 1 - ORDER_WORDS[q.word][0]
    text, rel = relation_text(axis, found[0][0][axis], found[1][0][axis])
    return looked_up(q, text, rel, _letter(q.options, rel))


_DECIDE: dict[str, Callable[[Question, Found], str]] = {
    "relation": _relation, "where": _where, "closer": _closer, "larger": _larger, "kth": _kth,
}


def count_listing(phrase: str, kind: str, coords: Sequence[Sequence[int]]) -> str:
    """A count as the teacher writes it: each instance copied from the tool reply, numbered, then the total."""
    listed = " ".join(f"{i} {render_grounding(phrase, kind, [c])}" for i, c in enumerate(coords, 1))
    return (listed + " " if listed else "") + f"total {len(coords)}"


def next_chunk(q: Question, results: list[tuple[str, list[tuple[int, ...]]]], kind: str = "point") -> str:
    """The oracle's next turn: a ground request, or the reasoning and the answer."""
    n = len(results)
    first = n == 0
    start = "<think> " if first else ""
    if q.kind == "unknown":
        return "<think> I cannot read this question. </think> \\boxed{unknown}"
    if q.kind in ("attribute", "attribute_side"):
        return start + _attribute(q, results)
    if n < len(q.phrases):
        return start + _ground(q.phrases[n])
    found = [[centre(c) for c in coords] for _, coords in results]
    if q.kind == "count":
        phrase, coords = results[0]
        return count_listing(phrase, kind, coords) + _end(str(len(coords)))
    if q.kind == "exist":
        coords = results[0][1]
        return (f"{len(coords)} found so yes." if coords else "none found so no.") + _end("yes" if coords else "no")
    missing = [q.phrases[i] for i, f in enumerate(found) if not f]
    if missing:
        return f"{missing[0]} not found." + _end("no" if q.kind == "relation" else "A")
    decide = _DECIDE.get(q.kind)
    if decide is None:
        raise BackendError(f"world-oracle: unhandled question kind {q.kind!r}")
    return decide(q, found)


# ---- attributes: which value's phrase returns the object, found by halving the values -------------------
VALUES: dict[str, tuple[str, ...]] = {"colour": tuple(COLOURS), "shape": SHAPES}
SIDE_WORDS = {"left": "left of", "right": "right of", "above": "above", "below": "below"}
SIDE_ORDER = {"left": "leftmost", "right": "rightmost", "above": "topmost", "below": "bottommost"}
SAME_POINT = 4  # coordinates (0..1000) within which two replies' instances are the same object


def value_phrase(attribute: str, values: Sequence[str]) -> str:
    """Any object with one of the values, after an order word: 'leftmost red or green shape', 'leftmost circle or
    square'."""
    return " or ".join(values) + (" shape" if attribute == "colour" else "")


def restricted(subject: str, attribute: str, values: Sequence[str]) -> str:
    """The asked object's phrase with its asked attribute restricted to the values, so the grounder returns the
    object itself when its value is among them: 'star' -> 'red or green or blue star', 'blue object' -> 'blue
    circle or blue square', 'largest shape' -> 'largest red or green shape' (the largest of those colours:
    the object, or a smaller one)."""
    words = subject.split()
    extreme = words[0] if words[0] in EXTREME_WORDS else None
    if attribute == "colour":
        noun = words[-1]
        return " ".join(w for w in (extreme, " or ".join(values), noun) if w)
    if extreme:
        return f"{extreme} {' or '.join(values)}"
    return " or ".join(f"{' '.join(words[:-1])} {v}" for v in values)


def _listed(values: Sequence[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def _same(p: Point, q: Point) -> bool:
    return max(abs(p[0] - q[0]), abs(p[1] - q[1])) <= SAME_POINT


def _attribute(q: Question, results: list[tuple[str, list[tuple[int, ...]]]]) -> str:
    """A colour or shape: ground the object (or the anchor), then halve the values: ground the object's phrase
    restricted to the first half ("red or green or blue star", `restricted`) and keep that half when the
    grounder returns the object itself (`[118, 150] vs [118, 150]: same`), else the other half; the last value
    left is the answer. A side question ("What shape is left of the red square?") asks for the extreme of
    the half on that side ("leftmost circle or square or triangle"): the world's asked object is the only one
    on that side of the anchor, so the half holds it exactly when that one instance lies on the side (not
    at the anchor: the anchor itself may be the half's extreme), one comparison read off a table
    (`left in, right out, same out.`)."""
    if not results:
        return _ground(q.phrases[0])
    if not results[0][1]:
        return f"{q.phrases[0]} not found." + _end("unknown")
    ref = centre(results[0][1][0])
    values = VALUES[q.attribute]
    said = (f"it is {_xy(ref)}." if q.kind == "attribute"
            else f"it is {SIDE_WORDS[q.word]} {_xy(ref)}. {q.word} in, {_OPPOSITE[q.word]} out, same out.")
    for _, coords in results[1:]:
        half, points = values[: len(values) // 2], [centre(c) for c in coords]
        if not points:
            hit, said = False, "none"
        elif q.kind == "attribute":  # the half's own object ("red or green or blue star"): it, or another
            hit = _same(points[0], ref)
            said = f"{_xy(points[0])} vs {_xy(ref)}: {'same' if hit else 'other'}"
        else:  # the half's extreme on that side: the asked object, another, or the anchor itself
            axis = 0 if q.word in ("left", "right") else 1
            text, rel = relation_text(axis, points[0][axis], ref[axis], tie="same")
            hit = rel == q.word
            said = f"{text}. {rel} {'in' if hit else 'out'}"
        values = half if hit else values[len(half):]
        said += f", so {_listed(values)}."
    if len(values) == 1:
        return said + _end(values[0])
    half = values[: len(values) // 2]
    if q.kind == "attribute":
        return f"{said} " + _ground(restricted(q.phrases[0], q.attribute, half))
    return f"{said} " + _ground(f"{SIDE_ORDER[q.word]} {value_phrase(q.attribute, half)}")


def _user_text(messages: Sequence[Message]) -> str:
    for m in messages:
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    raise BackendError("world-oracle: no user message")


class WorldOracleBackend:
    """`VLMBackend` whose "model" is the rule above; in-text protocol only, instant, deterministic."""

    name = NAME
    supports_function_calling = False

    model = NAME

    def __init__(self, kind: str = "point") -> None:
        self.kind = kind

    def generate(
        self,
        messages: Sequence[Message],
        images: Sequence[Image.Image] = (),
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        tools: list[dict] | None = None,
        stream: StreamCallback | None = None,
    ) -> Generation:
        """Continue the assistant prefill (if any) with the oracle's next turn."""
        if tools:
            raise BackendError("world-oracle speaks the in-text <ground> protocol only")
        started = time.perf_counter()
        prefill = messages[-1]["content"] if messages and messages[-1].get("role") == "assistant" else ""
        text = next_chunk(read_question(_user_text(messages)), tool_results(str(prefill)), self.kind)
        if stream is not None:
            stream(text)
        hit = "</ground>" if text.endswith("</ground>") and "</ground>" in stop else None
        return Generation(text=text, finish_reason="stop", backend=self.name, model=self.model, stop_sequence=hit,
                          completion_tokens=len(text.split()), latency_s=time.perf_counter() - started)
