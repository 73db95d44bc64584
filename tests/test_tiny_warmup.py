"""The warm-up (vgt-tiny's pretraining, `tiny/warmup.py`): its targets are the world-oracle's own count listing
of a tool reply and its own comparison of two replied points, only targets are trained, and a few steps on the
real tiny policy lower the loss."""

from __future__ import annotations

import random

import pytest

from vgt_agent.format import read_groundings
from vgt_agent.tiny.recipe import build_policy
from vgt_agent.tiny.vocab import world_vocabulary
from vgt_agent.tiny.warmup import (
    WarmupConfig,
    compare_example,
    copy_example,
    encode,
    example,
    next_token_accuracy,
    short_copy_example,
    warm_up,
)

WORDS = [w for w in world_vocabulary() if w.isalpha()]


def test_a_copy_example_lists_the_replys_points_in_order() -> None:
    rng = random.Random(3)
    for _ in range(20):
        context, target = copy_example(rng, WORDS, WarmupConfig())
        (reply,) = read_groundings(context)
        listed = read_groundings(target)
        assert [g.coords[0] for g in listed] == list(reply.coords) and 1 <= len(listed) <= 12
        assert {g.phrase for g in listed} == {reply.phrase} and target.endswith(f"total {len(listed)}")
        assert 60 <= len(context.split("<obj>")[0].split()) <= 120


def test_stage_one_copies_short_lists_only() -> None:
    rng = random.Random(7)
    sizes = {len(read_groundings(short_copy_example(rng, WORDS, WarmupConfig())[1])) for _ in range(60)}
    assert sizes == {1, 2, 3, 4, 5}


def test_a_compare_example_decides_on_the_asked_axis() -> None:
    rng = random.Random(5)
    kinds = set()
    for _ in range(40):
        context, target = compare_example(rng, WORDS, WarmupConfig())
        word = context.split("<obj>")[0].split()[-1]
        a, b = (g.coords[0] for g in read_groundings(context))
        axis = 0 if word in ("left", "right") else 1
        assert target.startswith(f"{'xy'[axis]}: {a[axis]} vs {b[axis]}, so ")
        less = ("left", "above")[axis]
        assert target.endswith(f"so {less}." if a[axis] < b[axis] else f"so {('right', 'below')[axis]}.")
        kinds.add(word)
    assert kinds == {"left", "right", "above", "below"}
    mixed = [example(rng, WORDS, WarmupConfig()) for _ in range(200)]
    assert 60 < sum(t.startswith(("x:", "y:")) for _, t in mixed) < 140


def test_only_the_targets_are_trained() -> None:
    _, processor = build_policy(0)
    tok = processor.tokenizer
    pairs = [make(random.Random(i), WORDS, WarmupConfig()) for i in range(3) for make in (copy_example,
                                                                                          compare_example)]
    batch = encode(tok, pairs)
    for row, (context, target) in enumerate(pairs):
        trained = batch["input_ids"][row][batch["labels"][row] != -100]
        assert tok.decode(trained) == target
        assert batch["input_ids"][row, 0] == tok.bos_token_id
        pieces = (tok(text, add_special_tokens=False)["input_ids"] for text in (context, target))
        assert int(batch["attention_mask"][row].sum()) == 1 + sum(len(p) for p in pieces)


@pytest.mark.slow
def test_warm_up_trains_the_policy_in_place_and_reports() -> None:
    model, processor = build_policy(0)
    tok = processor.tokenizer
    cfg = WarmupConfig(max_steps=40, batch=8, filler_words=(5, 10), max_points=4, check_every=20, held_out=16)
    held = encode(tok, [copy_example(random.Random(99), WORDS, cfg) for _ in range(8)])
    before = model(**held).loss.item()
    seen: list[tuple[int, int]] = []
    metrics = warm_up(model, tok, WORDS, cfg, report=lambda step, total, info: seen.append((step, total)))
    assert metrics["steps"] == 40 and seen[-1] == (40, 40) and len(seen) == 40
    assert model(**held).loss.item() < before / 2 and 0.0 <= metrics["copy_accuracy"] <= 1.0
    assert 0.0 <= metrics["compare_accuracy"] <= 1.0 and metrics["stage_2_from"] is None  # copying not formed yet
    assert 0.0 <= next_token_accuracy(model, held, tok.convert_tokens_to_ids("[")) <= 1.0


def test_warm_up_stops_once_copying_reaches_the_target() -> None:
    model, processor = build_policy(0)
    metrics = warm_up(model, processor.tokenizer, WORDS, WarmupConfig(max_steps=50, batch=2, filler_words=(3, 5),
                                                                     check_every=2, target=0.0, held_out=4))
    assert metrics["steps"] == 0  # the target is met before any step
