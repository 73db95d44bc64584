"""The warm-up (vgt-tiny's pretraining, `tiny/warmup.py`): stage 1's target is the world-oracle's own count
listing of a tool reply, stage 2's are drills built exactly as agent SFT builds a trace, only the model's
tokens are trained, the shared-prefix forward is the plain one, and a few steps on the real tiny policy lower
the loss."""

from __future__ import annotations

import random
import re

import pytest
import torch

from vgt_agent.format import read_groundings
from vgt_agent.tiny.drills import FAMILIES
from vgt_agent.tiny.recipe import build_policy
from vgt_agent.tiny.vocab import world_vocabulary
from vgt_agent.tiny.warmup import (
    WarmupConfig,
    backward,
    by_length,
    copy_example,
    drill_batch,
    encode,
    exact_share,
    family_weights,
    forward,
    lr_factor,
    next_token_accuracy,
    warm_up,
)

WORDS = [w for w in world_vocabulary() if w.isalpha()]


@pytest.fixture(scope="module")
def policy():
    return build_policy(0)


def test_a_copy_example_lists_the_replys_points_in_order() -> None:
    rng = random.Random(3)
    sizes = set()
    for _ in range(60):
        context, target = copy_example(rng, WORDS, WarmupConfig())
        (reply,) = read_groundings(context)
        listed = read_groundings(target)
        assert [g.coords[0] for g in listed] == list(reply.coords)
        assert {g.phrase for g in listed} == {reply.phrase} and target.endswith(f"total {len(listed)}")
        assert 10 <= len(context.split("<obj>")[0].split()) <= 30
        sizes.add(len(listed))
    assert sizes == {1, 2, 3, 4, 5}  # stage 1 copies short lists only


def test_only_the_copy_targets_are_trained(policy) -> None:
    tok = policy[1].tokenizer
    pairs = [copy_example(random.Random(i), WORDS, WarmupConfig()) for i in range(4)]
    batch = encode(tok, pairs)
    for row, (context, target) in enumerate(pairs):
        trained = batch["input_ids"][row][batch["labels"][row] != -100]
        assert tok.decode(trained) == target
        assert batch["input_ids"][row, 0] == tok.bos_token_id
        pieces = (tok(text, add_special_tokens=False)["input_ids"] for text in (context, target))
        assert int(batch["attention_mask"][row].sum()) == 1 + sum(len(p) for p in pieces)


def test_a_drill_batch_trains_the_oracles_turns_only(policy) -> None:
    tok = policy[1].tokenizer
    batch = drill_batch(policy[1], random.Random(1), 6, "where")
    assert batch["pixel_values"].shape[0] == 6 and batch["token_type_ids"].sum() == 6  # one image token a row
    for row in range(6):
        trained = tok.decode(batch["input_ids"][row][batch["labels"][row] != -100])
        assert trained.startswith("<think> <ground>") and re.search(r"</think> \\boxed\{[A-D]\}<end_of_turn>$", trained)
        assert "<obj>" not in trained  # the tool's replies are read, not written


def test_drills_are_drawn_by_how_wrong_each_family_still_is(policy) -> None:
    weights = family_weights({"count": 1.0, "kth": 0.25, "where": 0.9}, floor=0.2)
    assert weights == pytest.approx({"count": 0.2, "kth": 0.75, "where": 0.2})
    tok = policy[1].tokenizer
    only_kth = {f: float(f == "kth") for f in FAMILIES}
    batch = drill_batch(policy[1], random.Random(4), 5, weights=only_kth)
    for row in range(5):
        assert re.search(r"most \w+", tok.decode(batch["input_ids"][row]))  # "the second leftmost circle"


def test_lr_warms_up_holds_then_anneals_over_the_last_share_of_steps_or_minutes() -> None:
    by_steps = WarmupConfig(max_steps=1000, warmup_steps=50, decay_share=0.2, min_lr_ratio=0.1)
    assert lr_factor(by_steps, 25, 0.0) == pytest.approx(0.5)
    assert lr_factor(by_steps, 50, 0.0) == lr_factor(by_steps, 800, 0.0) == 1.0
    assert lr_factor(by_steps, 900, 0.0) == pytest.approx(0.55) and lr_factor(by_steps, 1000, 0.0) == pytest.approx(0.1)
    by_time = WarmupConfig(max_steps=1000, warmup_steps=50, minutes=10)
    assert lr_factor(by_time, 100, 8 * 60) == 1.0 and lr_factor(by_time, 100, 9 * 60) == pytest.approx(0.55)
    assert lr_factor(by_time, 100, 11 * 60) == pytest.approx(0.1)
    assert lr_factor(WarmupConfig(max_steps=1000, warmup_steps=50, decay_share=0.0), 1000, 0.0) == 1.0


def test_the_shared_prefix_forward_is_the_plain_forward(policy) -> None:
    model, processor = policy
    batch = drill_batch(processor, random.Random(2), 4)
    start = processor.tokenizer.convert_tokens_to_ids("<start_of_image>")
    with torch.no_grad():
        shared, plain = forward(model, batch, start).loss, model(**batch).loss
    assert torch.allclose(shared, plain, atol=1e-5)
    assert 0.0 <= exact_share(model, batch, start) <= 1.0


def test_length_sorted_chunks_give_the_one_pass_gradient(policy) -> None:
    model, processor = policy
    batch = drill_batch(processor, random.Random(5), 8)
    start = processor.tokenizer.convert_tokens_to_ids("<start_of_image>")
    groups = by_length(batch, 3)
    assert sum(len(g["input_ids"]) for g in groups) == 8
    assert sum(g["input_ids"].numel() for g in groups) < batch["input_ids"].numel()  # less padding computed
    assert all(g["attention_mask"][:, -1].any() for g in groups)  # each cut to its own longest row
    grads = []
    for chunks in (1, 3):
        model.zero_grad()
        loss = backward(model, batch, start, chunks)
        grads.append((loss, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])))
    model.zero_grad()
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6, rtol=1e-4)


@pytest.mark.slow
def test_warm_up_trains_the_policy_in_place_and_reports() -> None:
    model, processor = build_policy(0)
    tok = processor.tokenizer
    cfg = WarmupConfig(max_steps=40, batch=8, filler_words=(5, 10), short_points=4, check_every=20, held_out=16)
    held = encode(tok, [copy_example(random.Random(99), WORDS, cfg) for _ in range(8)])
    before = model(**held).loss.item()
    seen: list[tuple[int, int]] = []
    metrics = warm_up(model, processor, WORDS, cfg, report=lambda step, total, info: seen.append((step, total)))
    assert metrics["steps"] == 40 and seen[-1] == (40, 40) and len(seen) == 40
    assert model(**held).loss.item() < before / 2 and 0.0 <= metrics["copy_accuracy"] <= 1.0
    assert metrics["stage_2_from"] is None and set(metrics["drill_exact"]) == set(FAMILIES)  # not copying yet
    start = tok.convert_tokens_to_ids("<start_of_image>")
    assert 0.0 <= next_token_accuracy(model, held, tok.convert_tokens_to_ids("["), start) <= 1.0


def test_stage_two_drills_once_copying_reaches_its_target(policy) -> None:
    model, processor = build_policy(0)
    cfg = WarmupConfig(max_steps=6, batch=2, filler_words=(3, 5), check_every=2, copy_target=0.0, held_out=4)
    infos: list[str] = []
    metrics = warm_up(model, processor, WORDS, cfg, report=lambda step, total, info: infos.append(info))
    assert metrics["stage_2_from"] == 2 and metrics["steps"] == 6
    assert infos[0].startswith("loss") and "copy" in infos[0] and "drills right" in infos[-1]
    done = warm_up(model, processor, WORDS, WarmupConfig(max_steps=5, drill_target=0.0, held_out=4))
    assert done["steps"] == 0  # the drill target is met before any step
    timed = warm_up(model, processor, WORDS, WarmupConfig(max_steps=50, minutes=1e-9, held_out=4))
    assert timed["steps"] == 0  # past the wall-time budget
