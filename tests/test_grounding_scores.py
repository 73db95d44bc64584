"""Grounding scores and routing on hand-built cases: the functions the RL rewards and `verify` share."""

from __future__ import annotations

import numpy as np
import pytest

from vgt_agent.format import Grounding, parse, render_grounding
from vgt_agent.geometry import match_points_to_masks, pixel_from_norm_boxes, pixel_from_norm_points, union_box_iou
from vgt_agent.grounding_scores import (
    ReferenceObject,
    _pixel_coords,
    object_scores,
    sample_grounding_score,
    score_grounding,
    score_groundings,
)
from vgt_agent.reference_routing import ReferenceName, TextRouter, first_per_reference, phrase_tokens

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


def test_batched_scoring_equals_the_geometry_one_pair_at_a_time() -> None:
    """`score_groundings` (stacked coordinates, one containment matrix, one union-IoU call) gives what the
    geometry gives for each pair alone: F1 bit for bit, and boxes converted to pixels bit for bit."""
    rng = np.random.default_rng(11)
    overlapping = np.stack([_disc(20, 20, 12), _disc(30, 20, 12), _disc(70, 60, 10)])
    refs = [ReferenceObject("a", overlapping), ReferenceObject("b", _disc(50, 50, 5)[None]),
            ReferenceObject("c", np.zeros((0, H, W), dtype=bool))]
    pairs = []
    for _ in range(400):
        n = int(rng.integers(1, 5))
        if rng.random() < 0.5:  # points, most near the discs so that some are contested
            centres = rng.choice([200, 250, 250, 300, 700, 500], (n, 2)) + rng.integers(-60, 61, (n, 2))
            kind, coords = "point", [tuple(int(v) for v in np.clip(c, 0, 1000)) for c in centres]
        else:
            xs, ys = (np.sort(rng.choice(1001, (n, 2), replace=False), axis=1).tolist() for _ in "xy")
            kind, coords = "box", [(x1, y1, x2, y2) for (x1, x2), (y1, y2) in zip(xs, ys, strict=True)]
        # as the parser leaves it (coordinates read lazily) or built directly
        g = parse(render_grounding("x", kind, coords)).groundings[0] if rng.random() < 0.5 else Grounding(
            "x", kind, tuple(coords))
        pairs.append((g, refs[int(rng.integers(len(refs)))]))

    scores = score_groundings(pairs)

    for (g, ref), (score, verified) in zip(pairs, scores, strict=True):
        if g.kind == "point":
            match = match_points_to_masks(pixel_from_norm_points(np.asarray(g.coords, float), W, H), ref.masks)
            assert (score, verified) == (match.f1, match.tp > 0 and match.fp == 0)
        else:
            assert score == pytest.approx(union_box_iou(pixel_from_norm_boxes(np.asarray(g.coords, float), W, H),
                                                        ref.boxes))
    boxes = [(g, ref) for g, ref in pairs if g.kind == "box"]
    pixels, sizes = _pixel_coords(boxes)
    expected = [pixel_from_norm_boxes(np.asarray(g.coords, float), W, H) for g, _ in boxes]
    assert np.array_equal(pixels, np.concatenate(expected)) and sizes == [len(e) for e in expected]


def test_memoised_routing_equals_the_plain_loop() -> None:
    """TextRouter memoises each phrase's candidate references; the routes are those of the plain loop."""
    from vgt_agent.reference_routing import _content_tokens, _similarity

    def plain_route(g: Grounding, refs: list[ReferenceName], text: str, router: TextRouter) -> int | None:
        tokens, names = phrase_tokens(g.phrase), [phrase_tokens(r.name) for r in refs]
        exact = [i for i, t in enumerate(names) if t and t == tokens]
        if len(exact) == 1:
            return exact[0]
        best, best_score = None, 0.0
        near = set(_content_tokens(text[max(0, g.span[0] - router.context_chars): g.span[1] + router.context_chars]))
        for i in exact or range(len(refs)):
            similarity = _similarity(tokens, names[i])
            if similarity >= router.min_similarity:
                score = similarity + 0.01 * len(near & set(_content_tokens(refs[i].context)))
                if score > best_score:
                    best, best_score = i, score
        return best

    rng = np.random.default_rng(5)
    words = ["red", "blue", "circle", "circles", "square", "the", "two", "big", "star", "round", "left", "right"]
    refs = [ReferenceName("red circle"), ReferenceName("blue square", "left"), ReferenceName("blue square", "right"),
            ReferenceName("big red star", "right")]
    for router in (TextRouter(), TextRouter(min_similarity=0.3)):
        for _ in range(300):
            text = " ".join(rng.choice(words, 30))
            gs = []
            for _ in range(5):
                start = int(rng.integers(0, len(text)))
                gs.append(Grounding(" ".join(rng.choice(words, int(rng.integers(1, 4)))), "point", ((1, 1),),
                                    (start, start + 5)))
            assert router.route(gs, refs, text) == [plain_route(g, refs, text, router) for g in gs]
