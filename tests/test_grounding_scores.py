"""Grounding scores and routing on hand-built cases: the functions the RL rewards and `verify` share."""

from __future__ import annotations

import numpy as np
import pytest

from vgt_agent.format import Grounding
from vgt_agent.grounding_scores import ReferenceObject, object_scores, sample_grounding_score, score_grounding
from vgt_agent.routing import ReferenceName, TextRouter, first_per_reference, phrase_tokens

H = W = 100


def _disc(cx: int, cy: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


@pytest.fixture
def circles() -> ReferenceObject:
    return ReferenceObject("red circle", np.stack([_disc(20, 20, 8), _disc(70, 60, 10)]))


def _pt(*xy: tuple[int, int], phrase: str = "red circles", span=(0, 0)) -> Grounding:
    return Grounding(phrase, "point", tuple((x * 10, y * 10) for x, y in xy), span)  # 100 px image: x10 = norm


def test_points_perfect_shifted_extra_missing(circles: ReferenceObject) -> None:
    assert score_grounding(_pt((20, 20), (70, 60)), circles) == (1.0, True)
    assert score_grounding(_pt((20, 20)), circles).score == pytest.approx(2 / 3)  # tp1 fn1
    extra = score_grounding(_pt((20, 20), (70, 60), (90, 5)), circles)
    assert extra.score == pytest.approx(4 / 5) and not extra.verified  # tp2 fp1
    assert score_grounding(_pt((50, 95)), circles).score == 0.0
    # two points in one mask: only one can be matched
    assert score_grounding(_pt((20, 20), (21, 21)), circles).score == pytest.approx(2 / 4)


def test_boxes_union_iou(circles: ReferenceObject) -> None:
    ref = [tuple(int(v * 10) for v in b) for b in circles.boxes]
    perfect = Grounding("red circles", "box", tuple(ref))
    assert score_grounding(perfect, circles).score == pytest.approx(1.0)
    shifted = Grounding("red circles", "box", tuple((x1 + 150, y1, x2 + 150, y2) for x1, y1, x2, y2 in ref))
    s = score_grounding(shifted, circles)
    assert 0.0 < s.score < 0.5 and not s.verified
    one_big = Grounding("red circles", "box", ((0, 0, 1000, 1000),))
    assert score_grounding(one_big, circles).score == pytest.approx((17 * 17 + 21 * 21) / (H * W))


def test_absent_object_scores_perfect_only_when_nothing_is_grounded() -> None:
    empty = ReferenceObject("blue star", np.zeros((0, H, W), dtype=bool))
    assert score_grounding(Grounding("blue star", "point", ((500, 500),)), empty).score == 0.0


def test_router_exact_fuzzy_context_and_earliest() -> None:
    refs = [ReferenceName("red circle"), ReferenceName("blue square", "left"), ReferenceName("blue square", "right")]
    text = "First the red circles, then the blue square on the right."
    gs = [Grounding("the two red circles", "point", ((1, 1),)), Grounding("green star", "point", ((1, 1),)),
          Grounding("blue squares", "point", ((1, 1),), (31, 43))]
    routes = TextRouter().route(gs, refs, text)
    assert routes[0] == 0 and routes[1] is None and routes[2] == 2
    assert first_per_reference([0, 0, None, 2], 3) == [0, None, 3]
    assert phrase_tokens("The three boxes") == ("box",)


def test_sample_score_mean_over_references_and_several_tags_earliest_counts(circles: ReferenceObject) -> None:
    square = ReferenceObject("blue square", _disc(50, 50, 5)[None])
    good, bad = _pt((20, 20), (70, 60)), _pt((90, 5), phrase="red circle")
    # earliest tag routed to the circles is the bad one; the good later one is ignored
    assert object_scores([bad, good], [circles, square]) == [0.0, 0.0]
    assert sample_grounding_score([good, bad], [circles, square]) == pytest.approx(0.5)
    assert sample_grounding_score([good], []) is None
