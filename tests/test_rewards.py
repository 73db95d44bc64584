"""Every GRPO reward on hand-built completions: perfect, shifted, extra, missing, malformed, several tags
routed to one object, truncated; plus the VLM router and the batched scoring paths the rewards use."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
from trl.trainer.utils import get_callable_name

from vgt_agent.backends.base import BackendError, Generation
from vgt_agent.format import find_boxed, parse, render_grounding
from vgt_agent.geometry import (
    encode_rle,
    match_points_to_masks,
    matched_point_count,
    points_in_masks,
    union_box_iou,
    union_box_ious,
)
from vgt_agent.grounding_scores import batch_grounding_scores, sample_grounding_score
from vgt_agent.reference_routing import ReferenceName, TextRouter, VLMRouter, parse_router_reply
from vgt_agent.training.references import counted_name, decode_references, references_json, specs_from_gold
from vgt_agent.training.rewards import (
    ANSWER_PROBLEMS,
    THINK_PROBLEMS,
    RewardWeights,
    answer_reward,
    base_reward,
    grounding_format_reward,
    grounding_reward,
    read_completion,
    reward_functions,
    reward_weights,
    think_reward,
    truncation_reward,
)

H = W = 100  # a 100-pixel image: normalised coordinates are pixels x 10


def _disc(cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


CIRCLES = [_disc(20, 20, 8), _disc(70, 60, 10)]
SQUARE = np.zeros((H, W), dtype=bool)
SQUARE[75:95, 10:30] = True
REFS = references_json([
    {"name": "red circle", "context": "counted", "rles": [encode_rle(m) for m in CIRCLES]},
    {"name": "blue square", "context": "anchor", "rles": [encode_rle(SQUARE)]},
], H, W)


def pt(phrase: str, *xy: tuple[int, int]) -> str:
    return render_grounding(phrase, "point", [(x * 10, y * 10) for x, y in xy])


def bx(phrase: str, *boxes: tuple[int, int, int, int]) -> str:
    return render_grounding(phrase, "box", [tuple(v * 10 for v in b) for b in boxes])


def thought(*tags: str, answer: str = "2") -> str:
    body = " ".join(f"I see the {t}." for t in tags)
    return f"<think>{body}</think> \\boxed{{{answer}}}"


PERFECT_POINTS = thought(pt("red circles", (20, 20), (70, 60)), pt("blue square", (20, 85)))
PERFECT_BOXES = thought(bx("red circles", (12, 12, 29, 29), (60, 50, 81, 71)), bx("blue square", (10, 75, 30, 95)))


def ground(*completions: str) -> list[float | None]:
    return grounding_reward(list(completions), [REFS] * len(completions))


# --- grounding reward ------------------------------------------------------------------------------------


def test_grounding_perfect_points_and_boxes() -> None:
    assert ground(PERFECT_POINTS, PERFECT_BOXES) == [1.0, pytest.approx(1.0)]


def test_grounding_shifted() -> None:
    shifted_points = thought(pt("red circles", (40, 20), (90, 60)), pt("blue square", (20, 85)))
    assert ground(shifted_points) == [pytest.approx(0.5)]  # circles missed, square hit
    shifted_boxes = thought(bx("red circles", (22, 12, 39, 29), (70, 50, 91, 71)), bx("blue square", (10, 75, 30, 95)))
    score = ground(shifted_boxes)[0]
    assert 0.5 < score < 0.8  # circles' union IoU is partial, the square is exact


def test_grounding_extra_tags_and_extra_points() -> None:
    extra_tag = thought(pt("green star", (50, 50)), pt("red circles", (20, 20), (70, 60)), pt("blue square", (20, 85)))
    assert ground(extra_tag) == [1.0]  # a tag routed to nothing is neither rewarded nor penalised
    extra_point = thought(pt("red circles", (20, 20), (70, 60), (50, 5)), pt("blue square", (20, 85)))
    assert ground(extra_point) == [pytest.approx((0.8 + 1.0) / 2)]  # F1 = 2*2 / (2*2 + 1 + 0)


def test_grounding_missing_object_scores_zero() -> None:
    assert ground(thought(pt("red circles", (20, 20), (70, 60)))) == [0.5]
    assert ground(thought(pt("red circles", (20, 20)))) == [pytest.approx((2 / 3 + 0) / 2)]
    assert ground("<think>No tags at all.</think> \\boxed{2}") == [0.0]


def test_grounding_malformed_tags_do_not_count() -> None:
    malformed = thought("<obj> red circles | [200, 200 </obj>", pt("blue square", (20, 85)))
    assert ground(malformed) == [0.5]
    out_of_range = thought("<obj> red circles | [200, 1200] </obj>", pt("blue square", (20, 85)))
    assert ground(out_of_range) == [0.5]


def test_grounding_several_tags_on_one_object_earliest_counts() -> None:
    bad_first = thought(pt("red circle", (50, 5)), pt("red circles", (20, 20), (70, 60)), pt("blue square", (20, 85)))
    good_first = thought(pt("red circles", (20, 20), (70, 60)), pt("red circle", (50, 5)), pt("blue square", (20, 85)))
    assert ground(bad_first, good_first) == [0.5, 1.0]


def test_grounding_cap_on_counted_tags() -> None:
    late = thought(*[pt("green star", (50, 50))] * 3, pt("red circles", (20, 20), (70, 60)))
    assert grounding_reward([late], [REFS], max_groundings=3) == [0.0]
    assert grounding_reward([late], [REFS], max_groundings=4) == [0.5]


def test_grounding_none_without_references_and_conversational_input() -> None:
    empty = references_json([], H, W)
    conversational = [[{"role": "assistant", "content": PERFECT_POINTS}]]
    assert grounding_reward([PERFECT_POINTS, PERFECT_POINTS], [empty, None]) == [None, None]
    assert grounding_reward(conversational, [REFS]) == [1.0]


def test_batched_scores_equal_one_by_one() -> None:
    refs = decode_references(REFS)
    texts = [PERFECT_POINTS, PERFECT_BOXES, thought(pt("red circle", (50, 5))),
             thought(bx("blue square", (0, 0, 5, 5)))]
    batch = batch_grounding_scores([parse(t).groundings for t in texts], [refs] * len(texts), texts)
    assert batch == [pytest.approx(sample_grounding_score(parse(t).groundings, refs, t)) for t in texts]


def test_vectorised_geometry_matches_scalar() -> None:
    rng = np.random.default_rng(3)
    preds = [rng.uniform(0, 30, (int(rng.integers(0, 6)), 4)) for _ in range(300)]
    refs = [rng.uniform(0, 30, (int(rng.integers(0, 6)), 4)) for _ in range(300)]
    assert union_box_ious(preds, refs) == pytest.approx([union_box_iou(p, r) for p, r in zip(preds, refs, strict=True)])
    masks = np.stack([_disc(20, 20, 12), _disc(30, 20, 12), _disc(70, 60, 10)])  # the first two overlap
    for _ in range(200):
        points = rng.uniform(0, 100, (int(rng.integers(0, 6)), 2))
        assert matched_point_count(points_in_masks(points, masks)) == match_points_to_masks(points, masks).tp


# --- the other components ---------------------------------------------------------------------------------


def test_answer_reward_per_answer_type() -> None:
    completions = ["<think>two</think> \\boxed{two}", "\\boxed{3}", "\\boxed{(B)}", "\\boxed{Yes.}",
                   "no box, answer: 2"]
    golds = ["2", "2", "B", "no", "2"]
    kinds = ["count", "count", "choice", "yes_no", "count"]
    choices = [[], [], ["left", "right"], [], []]
    assert answer_reward(completions, golds, kinds, choices) == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert answer_reward(["\\boxed{2}"], [None], [""]) == [None]


def test_think_reward() -> None:
    good = "<think>reasoning</think> \\boxed{2}"
    unclosed = "<think>reasoning \\boxed{2}"
    inside = "<think>reasoning \\boxed{2}</think>"
    two_answers = "<think>r</think> \\boxed{2} \\boxed{3}"
    assert think_reward([good, unclosed, inside, two_answers, "\\boxed{2}"]) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert think_reward(["\\boxed{2}", good], variant=["direct", "direct"]) == [1.0, 0.0]


def test_think_reward_agrees_with_the_parsed_think_block() -> None:
    """`think_reward` looks for the think block in the source text instead of re-rendering the parse."""
    rng = random.Random(5)
    fragments = ["<think>", "</think>", "\\boxed{2}", "\\boxed{", "}", " so ", pt("red circle", (20, 20)),
                 "<obj> a | [1, 2 </obj>", "<ground> cup </ground>"]
    bodies = ["".join(rng.choice(fragments) for _ in range(rng.randint(0, 6))) for _ in range(3000)]
    texts = [f"<think>{body}</think> \\boxed{{2}}" if i % 2 else body for i, body in enumerate(bodies)]

    def by_rendering(text: str) -> float:
        parsed = parse(text)
        if {p.code for p in parsed.problems} & (THINK_PROBLEMS | ANSWER_PROBLEMS) or parsed.think is None:
            return 0.0
        boxed = find_boxed(text)
        return float(bool(boxed) and boxed[-1][1][0] > text.find("</think>"))

    assert think_reward(texts) == [by_rendering(t) for t in texts]


def test_each_completion_is_read_once_whichever_reward_reads_first() -> None:
    read_completion.cache_clear()
    alone = read_completion(PERFECT_POINTS).groundings  # the grounding reward first: groundings read alone
    assert alone == parse(PERFECT_POINTS).groundings
    assert read_completion(PERFECT_POINTS).groundings is alone
    read_completion.cache_clear()
    thought = read_completion(PERFECT_POINTS).thought  # a format reward first: the groundings come from it
    assert read_completion(PERFECT_POINTS).groundings is thought.groundings


def test_grounding_format_reward() -> None:
    malformed = thought("<obj> red circles | [200, 200 </obj>", pt("blue square", (20, 85)))
    box_order = thought("<obj> blue square | [300, 300, 100, 100] </obj>")
    completions = [PERFECT_POINTS, PERFECT_BOXES, malformed, box_order, "<think>plain</think> \\boxed{2}"]
    assert grounding_format_reward(completions, ["point"] * 5) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert grounding_format_reward([PERFECT_BOXES], ["box"]) == [1.0]
    assert grounding_format_reward(completions[-1:] + [PERFECT_POINTS], ["plain", "plain"]) == [1.0, 0.0]


def test_truncation_reward() -> None:
    ids = [[7, 8, 1], [7, 8, 9], [7, 106], []]
    assert truncation_reward(["a"] * 4, ids, eos_token_ids=[1, 106]) == [0.0, -1.0, 0.0, -1.0]
    assert truncation_reward(["a"], None) == [0.0]


def test_base_reward_weights() -> None:
    ids = [[5, 1], [5, 5]]
    kwargs = {"gold_answer": ["2", "2"], "answer_type": ["count", "count"], "completion_ids": ids, "eos_token_ids": [1]}
    assert base_reward([PERFECT_POINTS] * 2, variant=["point"] * 2, **kwargs) == [pytest.approx(1.2),
                                                                                pytest.approx(0.2)]
    plain = "<think>two red circles</think> \\boxed{2}"
    assert base_reward([plain] * 2, variant=["plain"] * 2, **kwargs) == [pytest.approx(1.1), pytest.approx(0.1)]
    weights = RewardWeights(answer=2.0, think=0.0, grounding_format=0.0, truncation=0.5)
    assert base_reward([PERFECT_POINTS] * 2, variant=["point"] * 2, weights=weights, **kwargs) == [2.0, 1.5]


def test_reward_functions_for_trl() -> None:
    funcs = reward_functions("box", RewardWeights(grounding=0.7), eos_token_ids=[1])
    weights = reward_weights("box", RewardWeights(grounding=0.7))
    names = [get_callable_name(f) for f in funcs]
    assert names == ["base_reward", "grounding_reward", "answer_reward", "think_reward", "grounding_format_reward",
                     "truncation_reward"]
    assert weights == [1.0, 0.7, 0.0, 0.0, 0.0, 0.0]
    funcs = reward_functions("plain")
    assert [get_callable_name(f) for f in funcs] == ["base_reward", "answer_reward", "think_reward",
                                                      "truncation_reward"]
    assert reward_weights("plain") == [1.0, 0.0, 0.0, 0.0]
    columns = {"gold_answer": ["2"], "answer_type": ["count"], "choices": [[]], "variant": ["box"],
               "references": [REFS], "completion_ids": [[5, 1]], "trainer_state": None}
    box_funcs = reward_functions("box", eos_token_ids=[1])
    assert [f(completions=[PERFECT_BOXES], **columns) for f in box_funcs] == [
        [pytest.approx(1.2)], [pytest.approx(1.0)], [1.0], [1.0], [1.0], [0.0]]


# --- references -------------------------------------------------------------------------------------------


def test_reference_specs_from_gold() -> None:
    gold = [{"name": "medium red circle", "role": "counted", "rle": encode_rle(CIRCLES[0])},
            {"name": "small red circle", "role": "counted", "rle": encode_rle(CIRCLES[1])},
            {"name": "blue square", "role": "anchor", "rle": None, "box": (10, 75, 30, 95)}]
    specs = specs_from_gold(gold, H, W, "How many red circles are there?")
    assert [(s["name"], s["context"], len(s["rles"])) for s in specs] == [("red circle", "counted", 2),
                                                                          ("blue square", "anchor", 1)]
    refs = decode_references(references_json(specs, H, W))
    assert np.array_equal(refs[1].masks[0], SQUARE)  # a box-only gold object becomes its rectangle
    assert specs_from_gold([{"name": "cup", "role": "target"}], H, W) is None  # no mask, no box
    question = "How many shapes are not yellow?"
    assert counted_name(["purple hexagon", "red triangle"], question) == "shapes are not yellow"


# --- routers ---------------------------------------------------------------------------------------------


class ScriptedBackend:
    """A VLMBackend whose replies are scripted; counts calls."""

    name, model, supports_function_calling = "scripted", "scripted", False

    def __init__(self, reply: str | None) -> None:
        self.reply, self.calls, self.prompts = reply, 0, []

    def generate(self, messages, images=(), **_: object) -> Generation:
        self.calls += 1
        self.prompts.append(messages[-1]["content"])
        if self.reply is None:
            raise BackendError("server down", unreachable=True)
        return Generation(self.reply, "stop", self.name, self.model)


def test_vlm_router_routes_caches_and_falls_back() -> None:
    refs = [ReferenceName("red circle", "counted"), ReferenceName("blue square")]
    text = thought(pt("the shiny things", (20, 20)), pt("blue square", (20, 85)), pt("green star", (5, 5)))
    gs = parse(text).groundings
    backend = ScriptedBackend("1: 1\n3: none")  # tag 2 unanswered -> text router
    router = VLMRouter(backend)
    assert router.route(gs, refs, text) == [0, 1, None]
    assert router.route(gs, refs, text) == [0, 1, None] and backend.calls == 1
    assert "1. red circle (counted)" in backend.prompts[0] and '"the shiny things"' in backend.prompts[0]
    down = ScriptedBackend(None)
    router_down = VLMRouter(down)
    for _ in range(2):  # a failed request falls back to the text router and is retried next time
        assert router_down.route(gs, refs, text) == TextRouter().route(gs, refs, text)
    assert down.calls == 2
    routed = grounding_reward([text], [REFS], router=VLMRouter(ScriptedBackend("1: 1\n2: 2\n3: none")))
    assert routed == [pytest.approx((2 / 3 + 1.0) / 2)]
    assert grounding_reward([text], [REFS]) == [pytest.approx(0.5)]  # the text router cannot route "shiny things"


def test_router_reply_parser() -> None:
    reply = "Tag 1 -> reference 2\n- 2: none\n3: 9\n2: 1\nnonsense\n4) object #1"
    assert parse_router_reply(reply, 4, 2) == {0: 1, 1: None, 3: 0}


def test_references_are_decoded_once_per_value() -> None:
    decode_references.cache_clear()
    for _ in range(5):
        grounding_reward([PERFECT_POINTS] * 8, [REFS] * 8)
    assert decode_references.cache_info().misses == 1


@pytest.mark.parametrize("variant", ["point", "box", "plain", "direct"])
def test_every_variant_scores_a_batch(variant: str) -> None:
    funcs = reward_functions(variant, eos_token_ids=[1])
    assert len(funcs) == len(reward_weights(variant))
    call = functools.partial(dict, gold_answer=["2"] * 2, answer_type=["count"] * 2, choices=[[], []],
                             variant=[variant] * 2, references=[REFS] * 2, completion_ids=[[1], [2]])
    for f in funcs:
        out = f(completions=[PERFECT_POINTS, "garbage <obj> |"], **call())
        assert len(out) == 2 and all(v is None or isinstance(v, float) for v in out)
